"""Import the tool modules a deployment configures; importing a module registers its tools."""

from __future__ import annotations

import importlib

ENV_VAR = "AGENT_TOOL_MODULES"


def parse_module_list(spec: str | None) -> list[str]:
    """Module names from a comma-separated list; blanks and repeats dropped, order kept."""
    if not spec:
        return []
    names = (part.strip() for part in spec.split(","))
    return list(dict.fromkeys(name for name in names if name))


def load_tool_modules(spec: str | None) -> list[str]:
    """Import every module named in ``spec`` (the value of ``AGENT_TOOL_MODULES``).

    Returns the names imported. A module that cannot be imported, for whatever reason
    (missing, syntax error, a tool definition rejected at decoration time), raises an
    ImportError naming the module and the env var, so a misconfigured worker fails at
    start-up with an actionable message.
    """
    loaded: list[str] = []
    for name in parse_module_list(spec):
        try:
            importlib.import_module(name)
        except Exception as exc:
            raise ImportError(
                f"cannot import tool module {name!r} listed in {ENV_VAR}: "
                f"{type(exc).__name__}: {exc}",
                name=name,
            ) from exc
        loaded.append(name)
    return loaded
