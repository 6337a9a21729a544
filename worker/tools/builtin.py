"""Tools every worker has: arithmetic, (fake) weather and the time."""

from __future__ import annotations

import ast
import math
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.tools.registry import tool

# Limits that keep the calculator from being a denial-of-service tool ("9**9**9").
MAX_EXPRESSION_CHARS = 500
MAX_EXPONENT = 10_000
MAX_RESULT_DIGITS = 300  # |result| must stay below 10**300
_MAX_RESULT = 10**MAX_RESULT_DIGITS

Number = int | float

_BINARY_OPS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Mod: "%",
    ast.Pow: "**",
}


def _checked(value: complex | Number) -> Number:
    """Reject results that are not finite real numbers of a sane size."""
    if isinstance(value, complex):
        raise ValueError("the result is not a real number")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("the result is too large")
    if abs(value) >= _MAX_RESULT:
        raise ValueError(f"the result is too large (limit 10**{MAX_RESULT_DIGITS})")
    return value


def _power(base: Number, exponent: Number) -> Number:
    if abs(exponent) > MAX_EXPONENT:
        raise ValueError(f"the exponent {exponent} is too large (limit {MAX_EXPONENT})")
    # Estimate the size before computing, so 9**9999 is refused without being built.
    if base != 0 and exponent * math.log10(abs(base)) >= MAX_RESULT_DIGITS:
        raise ValueError(f"the result is too large (limit 10**{MAX_RESULT_DIGITS})")
    return _checked(base**exponent)


def _apply(op: ast.operator, left: Number, right: Number) -> Number:
    if isinstance(op, ast.Pow):
        return _power(left, right)
    if isinstance(op, ast.Add):
        return _checked(left + right)
    if isinstance(op, ast.Sub):
        return _checked(left - right)
    if isinstance(op, ast.Mult):
        return _checked(left * right)
    if isinstance(op, (ast.Div, ast.FloorDiv, ast.Mod)) and right == 0:
        raise ValueError("division by zero")
    if isinstance(op, ast.Div):
        return _checked(left / right)
    if isinstance(op, ast.FloorDiv):
        return _checked(left // right)
    if isinstance(op, ast.Mod):
        return _checked(left % right)
    raise ValueError(_unsupported_operator(op))


def _unsupported_operator(op: ast.AST) -> str:
    if isinstance(op, ast.BitXor):
        return "'^' is not supported; use ** for powers"
    return f"operator {type(op).__name__} is not supported; use + - * / // % **"


def _evaluate(node: ast.AST) -> Number:
    """Walk the parsed expression, allowing only numbers and arithmetic."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body)
    if isinstance(node, ast.Constant):
        value = node.value
        # True/False are ints to Python but not numbers to a user.
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _checked(value)
        raise ValueError(f"only numbers are allowed, not {value!r}")
    if isinstance(node, ast.BinOp):
        if type(node.op) not in _BINARY_OPS:
            raise ValueError(_unsupported_operator(node.op))
        return _apply(node.op, _evaluate(node.left), _evaluate(node.right))
    if isinstance(node, ast.UnaryOp):
        operand = _evaluate(node.operand)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise ValueError(_unsupported_operator(node.op))
    if isinstance(node, ast.Name):
        raise ValueError(f"unknown name {node.id!r}: only numbers and operators are allowed")
    if isinstance(node, ast.Call):
        raise ValueError("function calls are not allowed")
    if isinstance(node, ast.Attribute):
        raise ValueError("attribute access is not allowed")
    raise ValueError(f"unsupported syntax: {type(node).__name__}")


def _format_number(value: Number) -> str:
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # 6/3 -> "2", not "2.0"
        return repr(value)
    return str(value)


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression like '12 * (3 + 4)'.

    Supports numbers, + - * / // % ** (power), unary minus and parentheses.

    Args:
        expression: The arithmetic expression to evaluate.
    """
    text = expression.strip()
    if not text:
        raise ValueError("the expression is empty")
    if len(text) > MAX_EXPRESSION_CHARS:
        raise ValueError(f"the expression is longer than {MAX_EXPRESSION_CHARS} characters")
    try:
        tree = ast.parse(text, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        reason = exc.msg if isinstance(exc, SyntaxError) else type(exc).__name__
        raise ValueError(f"invalid expression {shown!r}: {reason}") from exc
    try:
        return _format_number(_evaluate(tree))
    except ZeroDivisionError as exc:  # e.g. 0 ** -1
        raise ValueError("division by zero") from exc
    except (OverflowError, RecursionError) as exc:
        raise ValueError("the expression is too large to evaluate") from exc


# Fixed, made-up readings so demos and tests are reproducible.
_WEATHER: dict[str, tuple[str, int]] = {
    "paris": ("Sunny", 18),
    "london": ("Light rain", 12),
    "tokyo": ("Cloudy", 21),
    "new york": ("Partly cloudy", 16),
    "berlin": ("Overcast", 10),
    "madrid": ("Sunny", 24),
    "rome": ("Clear", 22),
    "sydney": ("Windy", 19),
    "cairo": ("Hot and sunny", 33),
    "lima": ("Hazy", 17),
    "moscow": ("Snow", -4),
    "beijing": ("Smoggy", 15),
    "mumbai": ("Humid", 31),
    "toronto": ("Chilly", 5),
    "mexico city": ("Thunderstorms", 20),
    "buenos aires": ("Mild", 18),
    "nairobi": ("Pleasant", 23),
    "singapore": ("Tropical showers", 30),
    "san francisco": ("Foggy", 14),
    "amsterdam": ("Drizzle", 11),
    "reykjavik": ("Freezing wind", -1),
}


@tool
def get_weather(city: str) -> str:
    """Get the current weather for a city.

    Args:
        city: City name, e.g. "Paris" or "New York".
    """
    name = city.strip()
    reading = _WEATHER.get(" ".join(name.casefold().split()))
    if reading is None:
        raise ValueError(f"no weather station for {name!r}")
    condition, celsius = reading
    return f"{condition}, {celsius} °C"


@tool
def get_time(timezone: str = "UTC") -> str:
    """Get the current date and time (ISO 8601) in a timezone.

    Args:
        timezone: IANA timezone name such as "Europe/Paris" or "America/New_York".
    """
    name = timezone.strip()
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown timezone {name!r}") from exc
    return datetime.now(zone).isoformat(timespec="seconds")
