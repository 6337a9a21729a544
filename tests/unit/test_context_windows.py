"""Context windows: built-in figures, AGENT_CONTEXT_WINDOW(S), logged once per model."""

from __future__ import annotations

import logging

import pytest

from worker import context_windows as cw


@pytest.fixture(autouse=True)
def _fresh(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENT_CONTEXT_WINDOW", raising=False)
    monkeypatch.delenv("AGENT_CONTEXT_WINDOWS", raising=False)
    monkeypatch.setattr(cw, "_logged", set())


def test_known_models_keep_their_windows() -> None:
    assert cw.context_window("gpt-4o-mini") == (128_000, "built-in table")
    assert cw.context_window("gpt-4o-2024-08-06") == (128_000, "built-in table")
    assert cw.context_window("gpt-4") == (8_192, "built-in table")


def test_unknown_models_take_agent_context_window(monkeypatch: pytest.MonkeyPatch) -> None:
    assert cw.context_window("llama-3.1-70b") == (4000, "AGENT_CONTEXT_WINDOW")
    monkeypatch.setenv("AGENT_CONTEXT_WINDOW", "32768")
    assert cw.context_window("llama-3.1-70b") == (32_768, "AGENT_CONTEXT_WINDOW")
    assert cw.context_window("gpt-4o") == (128_000, "built-in table")  # known: unchanged


def test_per_model_overrides_win_by_longest_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "AGENT_CONTEXT_WINDOWS", " qwen2.5=32768, qwen2.5-coder=131072 ,gpt-4o=64000"
    )
    assert cw.context_window("qwen2.5-7b-instruct") == (32_768, "AGENT_CONTEXT_WINDOWS")
    assert cw.context_window("qwen2.5-coder-32b") == (131_072, "AGENT_CONTEXT_WINDOWS")
    assert cw.context_window("gpt-4o-mini") == (64_000, "AGENT_CONTEXT_WINDOWS")
    assert cw.context_window("mistral") == (4000, "AGENT_CONTEXT_WINDOW")
    # A model name may itself contain "=": the tokens are after the last one.
    monkeypatch.setenv("AGENT_CONTEXT_WINDOWS", "org/m=v2=9000")
    assert cw.context_window("org/m=v2") == (9000, "AGENT_CONTEXT_WINDOWS")


@pytest.mark.parametrize("spec", ["qwen", "qwen=", "=4000", "qwen=abc", "qwen=0", "q=-5"])
def test_malformed_overrides_name_the_entry(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    monkeypatch.setenv("AGENT_CONTEXT_WINDOWS", f"gpt-4o=1000,{spec}")
    with pytest.raises(ValueError, match="AGENT_CONTEXT_WINDOWS"):
        cw.context_window("x")


@pytest.mark.parametrize("value", ["abc", "0", "-1"])
def test_malformed_default_is_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AGENT_CONTEXT_WINDOW", value)
    with pytest.raises(ValueError, match="AGENT_CONTEXT_WINDOW"):
        cw.context_window("x")


def test_the_assumed_window_is_logged_once_per_model(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AGENT_CONTEXT_WINDOWS", "mine=20000")
    caplog.set_level(logging.INFO, logger="worker.context_windows")
    for _ in range(3):
        assert cw.window_for("vllm-model") == 4000
        assert cw.window_for("mine-7b") == 20_000
    lines = [r for r in caplog.records if r.name == "worker.context_windows"]
    assert len(lines) == 2
    unknown = next(r for r in lines if "vllm-model" in r.getMessage())
    assert unknown.levelno == logging.WARNING
    assert "4000 tokens assumed" in unknown.getMessage()
    assert "AGENT_CONTEXT_WINDOWS=vllm-model=<tokens>" in unknown.getMessage()
    known = next(r for r in lines if "mine-7b" in r.getMessage())
    assert "AGENT_CONTEXT_WINDOWS" in known.getMessage()
