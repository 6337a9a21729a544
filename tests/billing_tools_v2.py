"""A second version of tests/billing_tools.py with a different schema (a conflict)."""

from __future__ import annotations

from worker.tools import tool


@tool(queue="tools.billing")
def lookup_customer(customer_id: str, include_invoices: bool = False) -> str:
    """Look up a customer (a newer, incompatible version).

    Args:
        customer_id: The customer id, now a string.
        include_invoices: Whether to list invoices.
    """
    return f"v2 customer {customer_id}"
