"""A tool module for a guarded worker (tests of the tool registry and routing).

Loaded with ``AGENT_TOOL_MODULES="tests.billing_tools=tools.billing"``: its tools go to
the ``tools.billing`` queue, so only the worker consuming it runs them.
"""

from __future__ import annotations

import os

from worker.tools import tool


@tool
def lookup_customer(customer_id: int) -> str:
    """Look up a customer's plan (needs the billing secret, held by one worker only).

    Args:
        customer_id: The customer number.
    """
    held = "yes" if os.environ.get("BILLING_TEST_SECRET") else "no"
    return f"customer {customer_id}: plan gold (secret held: {held}, pid {os.getpid()})"
