"""Builds the route table: each feature module contributes ``register(router, state)``.

To add an endpoint family (``/v1/assistants``, ``/v1/threads/...``, ``/v1/responses``),
write a module with a ``register`` function and append it to :data:`FEATURES`.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator import control, endpoints, faults, files, responses, runs, streaming
from simulator.routing import Router
from simulator.state import SimState

Register = Callable[[Router, SimState], None]

FEATURES: tuple[Register, ...] = (
    endpoints.register,
    control.register,
    faults.register,
    files.register,  # /v1/files
    runs.register,  # the Assistants API: /v1/assistants, /v1/threads/... (and /_sim/runs)
    responses.register,  # /v1/responses (and /_sim/responses)
    streaming.register,  # /_sim/stream (chunking and faults of stream=true)
)


def build_router(state: SimState) -> Router:
    """A router with every feature's routes, bound to ``state``."""
    router = Router()
    for register in FEATURES:
        register(router, state)
    return router
