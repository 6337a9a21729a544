"""Pure helpers that pull facts out of message text for the demo policy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

KNOWN_CITIES: tuple[str, ...] = (
    "Amsterdam",
    "Atlantis",  # fictional: the demo's weather tool answers it with an error
    "Bangkok",
    "Beijing",
    "Berlin",
    "Buenos Aires",
    "Cairo",
    "Dubai",
    "Istanbul",
    "Lima",
    "Lisbon",
    "London",
    "Los Angeles",
    "Madrid",
    "Mexico City",
    "Moscow",
    "Mumbai",
    "Nairobi",
    "New York",
    "Paris",
    "Reykjavik",
    "Rome",
    "San Francisco",
    "Seoul",
    "Singapore",
    "Sydney",
    "Tokyo",
    "Toronto",
    "Vienna",
)

_CITY_RE = re.compile(
    r"\b(" + "|".join(re.escape(c) for c in sorted(KNOWN_CITIES, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
_CANONICAL_CITY = {c.lower(): c for c in KNOWN_CITIES}
# "weather in Springfield" for a city not in the list.
_PLACE_RE = re.compile(r"\b(?:in|for|at)\s+([A-Z][a-zA-Z'-]+(?:\s+[A-Z][a-zA-Z'-]+)*)")

# A run of numbers, operators and parentheses; checked for balance and an operator below.
_ARITH_CANDIDATE_RE = re.compile(r"[(\-]*\d[\d\s.+\-*/%^()\u00d7\u00f7]*")
_HAS_OPERATOR_RE = re.compile(r"[\d)]\s*(?:\*\*|[-+*/%^\u00d7\u00f7])\s*[-(]*\d")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
_WORD_RE = re.compile(r"[a-z0-9]+")

_NAME_INTRO_RE = re.compile(
    r"\b(?i:my name is|my name's|call me)\s+([A-Za-z][\w'-]*(?:\s+[A-Z][\w'-]*)*)"
)
_NAME_QUESTION_RE = re.compile(
    r"\b(?:what(?:'s| is)\s+my name|do you (?:know|remember) my name|who am i)\b",
    re.IGNORECASE,
)


def content_text(content: Any) -> str:
    """The text of a message ``content``: a string or a list of ``{"type": "text"}`` parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
        return "\n".join(texts)
    return ""


def _balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _trim(candidate: str) -> str:
    text = candidate.strip()
    # Drop a dangling operator or dot at the end ("5 + 3 -", "2+2.").
    while text and text[-1] not in "0123456789)":
        text = text[:-1].rstrip()
    # Drop unmatched outer parentheses ("(so 2+2" / "2+2)").
    while text.count(")") > text.count("(") and text.endswith(")"):
        text = text[:-1].rstrip()
    while text.count("(") > text.count(")") and text.startswith("("):
        text = text[1:].lstrip()
    return text


def find_arithmetic(text: str) -> str | None:
    """The first arithmetic expression in ``text`` ("12 * (3 + 4)"), or ``None``."""
    for match in _ARITH_CANDIDATE_RE.finditer(text):
        candidate = _trim(match.group(0))
        if candidate and _balanced(candidate) and _HAS_OPERATOR_RE.search(candidate):
            return candidate
    return None


def find_cities(text: str) -> list[str]:
    """Known cities mentioned in ``text``, in order of mention, without repeats.

    When no known city is mentioned, a capitalised place after "in"/"for"/"at" is used.
    """
    cities: list[str] = []
    for match in _CITY_RE.finditer(text):
        city = _CANONICAL_CITY[match.group(1).lower()]
        if city not in cities:
            cities.append(city)
    if not cities:
        for match in _PLACE_RE.finditer(text):
            place = match.group(1)
            if place not in cities:
                cities.append(place)
    return cities


def first_number(text: str) -> float | None:
    """The first number in ``text``, or ``None``."""
    match = _NUMBER_RE.search(text)
    return float(match.group(0)) if match else None


def words(text: str) -> set[str]:
    """Lower-case words of ``text`` (letters and digits)."""
    return set(_WORD_RE.findall(text.lower()))


def mentions_word(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word, ignoring case."""
    return re.search(rf"\b{re.escape(word)}\b", text, re.IGNORECASE) is not None


def introduced_name(text: str) -> str | None:
    """X in "my name is X" (also "call me X"), or ``None``."""
    match = _NAME_INTRO_RE.search(text)
    return match.group(1).strip(" .,!?'\"") if match else None


def asks_for_name(text: str) -> bool:
    """Whether ``text`` asks the assistant to recall the user's name."""
    return _NAME_QUESTION_RE.search(text) is not None


def last_introduced_name(texts: Sequence[str]) -> str | None:
    """The most recent name introduced in ``texts`` (oldest first), or ``None``."""
    for text in reversed(texts):
        name = introduced_name(text)
        if name:
            return name
    return None
