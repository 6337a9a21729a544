"""Guards for every test: nothing may reach a real model API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def no_real_model_api(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Point the official client at a closed local port unless a test sets its own URL.

    Integration tests hand their workers the simulator's URL explicitly; anything else that
    builds an ``openai.OpenAI()`` from the environment fails fast instead of going out.
    """
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-never-sent")
    yield
