"""docker/entrypoint.sh: which model server and key the image's processes end up with."""

from __future__ import annotations

import subprocess

import pytest

from producer.devstack import PROJECT_ROOT

ENTRYPOINT = PROJECT_ROOT / "docker" / "entrypoint.sh"
SHOW = 'echo "${OPENAI_API_KEY-UNSET}|${OPENAI_BASE_URL-UNSET}|${OPENAI_ORG_ID-UNSET}"'


def run(**env: str) -> list[str]:
    done = subprocess.run(["sh", str(ENTRYPOINT), "sh", "-c", SHOW], capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", **env}, timeout=10, check=True)
    return done.stdout.strip().split("|")


@pytest.mark.parametrize(("env", "expected"), [
    # A real key and the operator's server: used as given (compose dropped it before).
    ({"OPENAI_API_KEY": "sk-real", "OPENAI_BASE_URL": "http://llm:8000/v1"},
     ["sk-real", "http://llm:8000/v1", "UNSET"]),
    # Compose passes unset settings as "": unset, or the client would use "" as its URL.
    ({"OPENAI_API_KEY": "sk-real", "OPENAI_BASE_URL": "", "OPENAI_ORG_ID": ""},
     ["sk-real", "UNSET", "UNSET"]),
    # No key, but a server of one's own (Ollama, vLLM need none): that server.
    ({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "http://ollama:11434/v1"},
     ["sk-simulator-placeholder", "http://ollama:11434/v1", "UNSET"]),
    # Neither: the simulator.
    ({"OPENAI_API_KEY": "", "OPENAI_BASE_URL": "", "SIMULATOR_URL": "http://sim:8000/v1"},
     ["sk-simulator-placeholder", "http://sim:8000/v1", "UNSET"]),
])
def test_entrypoint_picks_the_model_server(env: dict[str, str], expected: list[str]) -> None:
    assert run(**env) == expected
