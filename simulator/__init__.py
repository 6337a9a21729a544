"""An OpenAI-compatible simulator server for demos, integration tests and benchmarks.

Start one in-process with :func:`start_server` or as ``python -m simulator``.
"""

from simulator.server import SimulatorServer, start_server

__all__ = ["SimulatorServer", "start_server"]
