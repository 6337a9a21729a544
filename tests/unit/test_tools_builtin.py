"""Built-in tools: a calculator that cannot be abused, fake weather, the time."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from worker.tools.builtin import calculator, get_time, get_weather


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("12 * (3 + 4)", "84"),
        ("2 + 3 * 4", "14"),
        ("(2 + 3) * 4", "20"),
        ("2 ** 3 ** 2", "512"),  # right-associative
        ("-2 ** 2", "-4"),  # power binds tighter than unary minus
        ("(-2) ** 2", "4"),
        ("10 - 4 - 3", "3"),  # left-associative
        ("6 / 3", "2"),  # integer-valued result without ".0"
        ("7 / 2", "3.5"),
        ("7 // 2", "3"),
        ("-7 // 2", "-4"),
        ("7 % 3", "1"),
        ("2 ** -1", "0.5"),
        ("1.5 * 2", "3"),
        ("0.1 + 0.2", "0.30000000000000004"),
        ("+5", "5"),
        ("1_000 * 3", "3000"),
        ("2 ** 100", "1267650600228229401496703205376"),
    ],
)
def test_calculator_arithmetic(expression: str, expected: str) -> None:
    assert calculator(expression) == expected


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("__import__('os').system('true')", "function calls are not allowed"),
        ("abs(-1)", "function calls are not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("(1).real", "attribute access is not allowed"),
        ("'a' * 3", "only numbers are allowed"),
        ("True + 1", "only numbers are allowed"),
        ("[1, 2]", "unsupported syntax: List"),
        ("1 if 1 else 2", "unsupported syntax: IfExp"),
        ("lambda: 1", "unsupported syntax: Lambda"),
        ("2 ^ 3", "use ** for powers"),
        ("1 << 2", "operator LShift is not supported"),
        ("~1", "operator Invert is not supported"),
        ("1 < 2", "unsupported syntax: Compare"),
        ("1 +", "invalid expression '1 +': invalid syntax"),
        ("import os", "invalid expression"),
        ("", "the expression is empty"),
        ("1/0", "division by zero"),
        ("1 // 0", "division by zero"),
        ("1 % 0.0", "division by zero"),
        ("0 ** -1", "division by zero"),
        ("(-8) ** 0.5", "not a real number"),
    ],
)
def test_calculator_rejects(expression: str, fragment: str) -> None:
    with pytest.raises(ValueError) as info:
        calculator(expression)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    "expression",
    [
        "9**9**9",
        "10 ** 100000",
        "2 ** 5000",
        "(9**300) ** 10000",  # 2.8 million digits: refused before it is computed
        "10**200 * 10**200",
        "1e308 * 10",
        "1e999",
        "9" * 400,
    ],
)
def test_calculator_limits_huge_numbers_quickly(expression: str) -> None:
    started = time.perf_counter()
    with pytest.raises(ValueError, match="too large"):
        calculator(expression)
    assert time.perf_counter() - started < 1.0


def test_calculator_limits_exponent() -> None:
    # 1 ** n stays small, but a huge exponent is refused outright.
    with pytest.raises(ValueError, match="exponent 100000 is too large"):
        calculator("1 ** 100000")
    assert calculator("1 ** 10000") == "1"


def test_calculator_rejects_long_and_deep_expressions() -> None:
    with pytest.raises(ValueError, match="longer than 500"):
        calculator("1+" * 300 + "1")
    assert calculator("(" * 150 + "1" + ")" * 150) == "1"
    assert calculator("-" * 499 + "1") == "-1"
    with pytest.raises(ValueError, match="too many nested parentheses"):
        calculator("(" * 240 + "1" + ")" * 240)


@pytest.mark.parametrize("city", ["Paris", "paris", "  PARIS ", "new   york", "Lima"])
def test_weather_known_cities_case_insensitive(city: str) -> None:
    report = get_weather(city)
    assert report.endswith(" °C") and ", " in report
    assert get_weather(city) == report  # deterministic


def test_weather_sample_value_and_variety() -> None:
    assert get_weather("Paris") == "Sunny, 18 °C"
    cities = [
        "Paris",
        "London",
        "Tokyo",
        "New York",
        "Berlin",
        "Madrid",
        "Rome",
        "Sydney",
        "Cairo",
        "Lima",
    ]
    assert len({get_weather(c) for c in cities}) > 5


def test_weather_unknown_city() -> None:
    with pytest.raises(ValueError) as info:
        get_weather("Atlantis")
    assert str(info.value) == "no weather station for 'Atlantis'"


def test_time_in_timezone() -> None:
    stamp = datetime.fromisoformat(get_time("Asia/Tokyo"))
    offset = stamp.utcoffset()
    assert offset is not None and offset.total_seconds() == 9 * 3600
    utc = datetime.fromisoformat(get_time())
    offset = utc.utcoffset()
    assert offset is not None and offset.total_seconds() == 0
    assert abs(utc.timestamp() - time.time()) < 5


@pytest.mark.parametrize("zone", ["Mars/Olympus", "", "../../etc/passwd", "/etc/localtime"])
def test_time_unknown_zone(zone: str) -> None:
    with pytest.raises(ValueError, match="unknown timezone"):
        get_time(zone)
