"""Import the tool modules a deployment configures; importing a module registers its tools.

``AGENT_TOOL_MODULES`` is a comma-separated list of modules; ``module=queue`` puts the
module's tools (those that name no queue themselves) on a queue of their own, so only
the workers consuming it serve them.
"""

from __future__ import annotations

import importlib

from worker.tools.registry import queue_for_module

ENV_VAR = "AGENT_TOOL_MODULES"


def parse_module_list(spec: str | None) -> list[str]:
    """Module entries from a comma-separated list; blanks and repeats dropped, order kept."""
    if not spec:
        return []
    names = (part.strip() for part in spec.split(","))
    return list(dict.fromkeys(name for name in names if name))


def split_entry(entry: str) -> tuple[str, str | None]:
    """``"pkg.mod=tools.billing"`` -> ``("pkg.mod", "tools.billing")``; no queue: None."""
    module, sep, queue = entry.partition("=")
    return module.strip(), (queue.strip() or None) if sep else None


def load_tool_modules(spec: str | None) -> list[str]:
    """Import every module named in ``spec`` (the value of ``AGENT_TOOL_MODULES``).

    Returns the names imported. A module that cannot be imported, for whatever reason
    (missing, syntax error, a tool definition rejected at decoration time), raises an
    ImportError naming the module and the env var, so a misconfigured worker fails at
    start-up with an actionable message.
    """
    loaded: list[str] = []
    for entry in parse_module_list(spec):
        name, queue = split_entry(entry)
        try:
            with queue_for_module(queue):
                importlib.import_module(name)
        except Exception as exc:
            raise ImportError(
                f"cannot import tool module {name!r} listed in {ENV_VAR}: "
                f"{type(exc).__name__}: {exc}",
                name=name,
            ) from exc
        loaded.append(name)
    return loaded
