"""Flower against the real workers, looked at in a real headless Chromium (Selenium)."""

from __future__ import annotations

import base64
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from producer.client import AgentClient
from producer.devstack import DevStack
from producer.devstack_services import start_flower
from tests.integration.conftest import OUTPUT_DIR, Simulator, tool_call

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
USER, PASSWORD = "ops", "pw-" + uuid.uuid4().hex[:16]
# The metrics worth a dashboard (docs/operations.md lists what each means).
FLOWER_METRICS = (
    "flower_events_total",
    "flower_task_runtime_seconds",
    "flower_task_prefetch_time_seconds",
    "flower_worker_prefetched_tasks",
    "flower_worker_online",
    "flower_worker_number_of_currently_executing_tasks",
)


@pytest.fixture(scope="module")
def flower(stack: DevStack) -> Iterator[str]:
    url = start_flower(stack, basic_auth=f"{USER}:{PASSWORD}")
    # Flower listens before its event receiver is connected: a worker heartbeat in its
    # metrics proves it receives events, so no task of the tests goes unseen.
    deadline = time.monotonic() + 20
    while 'flower_worker_online{worker="agents@' not in requests.get(f"{url}/metrics").text:
        assert time.monotonic() < deadline, "Flower received no worker heartbeat in 20 s"
        time.sleep(0.2)
    yield url
    next(p for p in stack.processes if p.name.startswith("flower") and p.alive).stop()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    for binary in (CHROMIUM, CHROMEDRIVER):
        assert Path(binary).exists(), f"{binary} missing: scripts/setup.sh installs it"
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1600,1000",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def flower_tasks(flower: str, job_id: str) -> list[dict[str, object]]:
    rsp = requests.get(f"{flower}/api/tasks", auth=(USER, PASSWORD), timeout=10)
    rsp.raise_for_status()
    return [t for t in rsp.json().values() if job_id in str(t.get("kwargs"))]


def test_flower_lists_a_jobs_tasks_in_a_real_browser_behind_basic_auth(
    flower: str, browser: webdriver.Chrome, client: AgentClient, sim: Simulator,
    model: str, session: str,
) -> None:
    sim.script(
        model,
        {"tool_calls": [tool_call("calculator", {"expression": "2 + 3"}, "c1")]},
        {"content": "5"},
    )
    job_id = client.submit({"session_id": session, "message": "2 + 3?", "model": model})
    assert client.wait(job_id, timeout=30).status == "succeeded"
    other = client.run({"session_id": session, "message": "again", "model": model + "-b"},
                       timeout=30)
    assert other.status == "succeeded"

    # Flower learns of tasks from events: wait until it has the job's three (the start,
    # which makes the first model call itself, the tool, the second model call)
    deadline = time.monotonic() + 20
    while len(flower_tasks(flower, job_id)) < 3 and time.monotonic() < deadline:
        time.sleep(0.3)
    names = sorted(str(t["name"]) for t in flower_tasks(flower, job_id))
    for name in ("agents.turn.start", "agents.model.step", "agents.tool.run"):
        assert name in names, names
    assert names.count("agents.model.step") == 1, names

    # Without credentials: refused. Read-only: it cannot start tasks.
    assert requests.get(f"{flower}/tasks", timeout=10).status_code == 401
    assert requests.get(f"{flower}/api/tasks", timeout=10).status_code == 401
    refused = requests.post(f"{flower}/api/task/async-apply/agents.turn.start",
                            auth=(USER, PASSWORD), json={}, timeout=10)
    assert refused.status_code == 403

    # The browser sends basic auth on every request (page and its XHRs) via CDP.
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                            {"headers": {"Authorization": f"Basic {token}"}})
    browser.get(f"{flower}/tasks")
    WebDriverWait(browser, 20).until(lambda d: job_id in d.find_element(By.TAG_NAME, "body").text)
    rows = [row.text for row in browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
            if job_id in row.text]
    shot = OUTPUT_DIR / "flower"
    shot.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot / "tasks.png"))
    listed = " ".join(rows)
    for name in ("agents.turn.start", "agents.model.step", "agents.tool.run"):
        assert name in listed, (name, rows)
    # arguments are the redacted summaries, with the job id, not message bodies
    assert f"job={job_id} session={session}" in listed
    assert f"job={job_id} step=1" in listed
    assert "(tool outputs)" in listed
    assert "2 + 3?" not in listed  # the user's message is never shown

    # the workers page knows both workers
    browser.get(f"{flower}/workers")
    WebDriverWait(browser, 20).until(lambda d: "tools@" in d.find_element(By.TAG_NAME, "body").text)
    body = browser.find_element(By.TAG_NAME, "body").text
    assert "agents@" in body
    browser.save_screenshot(str(shot / "workers.png"))


def test_flower_metrics_are_served_for_prometheus(flower: str, client: AgentClient,
                                                  session: str) -> None:
    client.run({"session_id": session, "message": "What is 6 * 7?"}, timeout=30)
    deadline = time.monotonic() + 15
    text = ""
    while time.monotonic() < deadline:
        text = requests.get(f"{flower}/metrics", timeout=10).text  # open, as Prometheus scrapes
        if 'task="agents.model.step"' in text and "flower_task_runtime_seconds_bucket" in text:
            break
        time.sleep(0.3)
    for metric in FLOWER_METRICS:
        assert f"# TYPE {metric} " in text, metric
    # producers send task-sent events (task_send_sent_event), so queued tasks show
    (OUTPUT_DIR / "flower").mkdir(parents=True, exist_ok=True)
    (OUTPUT_DIR / "flower" / "metrics.txt").write_text(text)
    events = [line for line in text.splitlines() if line.startswith("flower_events_total{")]
    assert any('type="task-sent"' in line and "agents.turn.start" in line for line in events), \
        events
    assert 'flower_worker_online{worker="agents@' in text
