"""Tools the model may call: typed Python functions, a registry, and safe execution.

Importing this package registers the built-in tools in ``default_registry``.
"""

from worker.tools.execute import execute_tool_call, format_validation_error, to_content
from worker.tools.loader import ENV_VAR, load_tool_modules, parse_module_list
from worker.tools.registry import Tool, ToolRegistry, UnknownToolError, default_registry, tool
from worker.tools.schema import parse_docstring

# Imported for its side effect: registering calculator, get_weather and get_time.
from worker.tools import builtin  # isort: skip

__all__ = [
    "ENV_VAR",
    "Tool",
    "ToolRegistry",
    "UnknownToolError",
    "builtin",
    "default_registry",
    "execute_tool_call",
    "format_validation_error",
    "load_tool_modules",
    "parse_docstring",
    "parse_module_list",
    "to_content",
    "tool",
]
