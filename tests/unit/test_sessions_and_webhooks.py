"""History import (validation, refused while a job holds the session), session listing and
history pages (fakeredis), webhook signing and the delivery-time address check."""

from __future__ import annotations

import socket
import time
from typing import Any

import fakeredis
import pytest

from producer import keys
from producer.contracts import (
    TASK_WEBHOOK_DELIVER,
    ChatMessage,
    JobEvent,
    JobResult,
    JobStatus,
)
from producer.history_import import InvalidHistory, SessionBusy, import_history, parse_history
from producer.jobstore import JobStore
from producer.session_listing import history_page, page_bounds
from producer.webhook_policy import AllowedHosts
from worker.webhooks import WebhookRefused, resolve_checked, secret_key, sign

CALL = {"id": "c1", "name": "calculator", "arguments": '{"expression": "1+1"}'}


def conversation() -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": "2"},
        {"role": "assistant", "content": "2"},
    ]


@pytest.mark.parametrize(("messages", "problem"), [
    ([], "give at least one message"),
    ([{"role": "robot", "content": "x"}], "messages.0.role: Input should be"),
    ([{"role": "tool", "tool_call_id": "c1", "content": "2"}], "messages.0: a tool message "
     "must answer a call"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [CALL]},
      {"role": "user", "content": "q2"}], "messages.2: tool calls c1 are not answered"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [CALL]}],
     "the last tool calls (c1) have no tool messages"),
    ([{"role": "user", "content": "q"}, {"role": "assistant", "tool_calls": [CALL]},
      {"role": "tool", "tool_call_id": "c9", "content": "2"}], "'c9' was not called"),
    ([{"role": "user", "tool_calls": [CALL]}], "only assistant messages make tool calls"),
    ([{"role": "user"}], "messages.0.content: a user message needs content"),
    ([{"role": "user", "content": "q", "tool_call_id": "c1"}], "tool_call_id only on tool"),
])
def test_imported_messages_are_checked_as_the_model_api_would(
    messages: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(InvalidHistory) as caught:
        parse_history(messages)
    assert problem in str(caught.value)


def test_import_appends_and_is_refused_while_a_job_holds_the_session() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    old = ChatMessage(role="user", content="old")
    r.rpush(keys.session_messages("s1"), old.model_dump_json())
    assert import_history(r, "s1", conversation()) == 6
    raw = r.lrange(keys.session_messages("s1"), 0, -1)
    stored = [ChatMessage.model_validate_json(m) for m in raw]
    assert [m.role for m in stored] == ["user", "system", "user", "assistant", "tool", "assistant"]
    assert stored[3].tool_calls and stored[3].tool_calls[0].id == "c1"
    r.rpush(keys.session_jobs("s1"), "job-1")  # a queued or running job
    with pytest.raises(SessionBusy, match="has a job queued or running"):
        import_history(r, "s1", conversation())
    r.set(keys.session_mode("s2"), "assistants")
    with pytest.raises(SessionBusy, match="assistant-mode session"):
        import_history(r, "s2", conversation())
    assert r.llen(keys.session_messages("s1")) == 6  # nothing appended by the refusals


def test_history_pages_count_back_from_the_newest() -> None:
    assert page_bounds(10, None, None) == (0, 10)
    assert page_bounds(10, 3, None) == (7, 10)
    assert page_bounds(10, 3, 7) == (4, 7)
    assert page_bounds(10, 3, 2) == (0, 2)
    assert page_bounds(10, None, 50) == (0, 10)
    r = fakeredis.FakeRedis(decode_responses=True)
    for i in range(5):
        r.rpush(keys.session_messages("s"), ChatMessage(role="user", content=f"m{i}")
                .model_dump_json())
    page = history_page(r, "s", limit=2)
    assert (page.start, page.total, [m.content for m in page.messages]) == (3, 5, ["m3", "m4"])
    older = history_page(r, "s", limit=2, before=page.start)
    assert [m.content for m in older.messages] == ["m1", "m2"]


def test_signature_matches_the_standard_webhooks_test_vector() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries).
    secret = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert secret is not None
    signature = sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert secret_key("plain") == b"plain" and secret_key("") is None


def test_delivery_refuses_names_that_resolve_to_internal_addresses(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    allowed = AllowedHosts.parse("hooks.example.com,localhost,127.0.0.2")
    assert str(resolve_checked("http://127.0.0.2:9/x", allowed)) == "127.0.0.2"
    with pytest.raises(WebhookRefused, match=r"resolves to .*, which is not a public address"):
        resolve_checked("http://localhost:9/x", allowed)
    with pytest.raises(WebhookRefused, match="not in AGENT_WEBHOOK_ALLOWED_HOSTS"):
        resolve_checked("http://127.0.0.3:9/x", allowed)

    def rebinding(*_: Any, **__: Any) -> list[Any]:  # a listed name now points inside
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.1.2.3", 443)),
                (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::ffff:169.254.169.254", 443, 0, 0))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    with pytest.raises(WebhookRefused, match=r"10\.1\.2\.3"):
        resolve_checked("https://hooks.example.com/x", allowed)
    listed = AllowedHosts.parse("hooks.example.com,10.0.0.0/8,169.254.169.254")
    assert str(resolve_checked("https://hooks.example.com/x", listed)) == "10.1.2.3"


class SentTasks:
    """Stands in for the Celery app: records what would be published."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str]] = []

    def send_task(self, name: str, *, kwargs: dict[str, Any], task_id: str,
                  **_: Any) -> None:
        self.sent.append((name, kwargs, task_id))


def ended(job_id: str) -> tuple[JobResult, JobEvent]:
    now = time.time()
    job = JobResult(job_id=job_id, session_id="s1", status=JobStatus.SUCCEEDED,
                    created_at=now, updated_at=now)
    return job, JobEvent(job_id=job_id, kind="succeeded", at=now)


def test_ending_a_job_enqueues_its_webhook_once_whoever_ends_it_how_often() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    store = JobStore(r)
    tasks = SentTasks()
    store.celery = tasks  # type: ignore[assignment]
    r.set(keys.job_webhook("job-with-hook"), "https://hooks.example.com/x")
    assert store.finish(*ended("job-with-hook")) is True
    assert store.finish(*ended("job-with-hook")) is False  # a redelivered copy
    store.fail("job-with-hook", "late failure")  # a sweep finding it ended
    assert tasks.sent == [
        (TASK_WEBHOOK_DELIVER, {"job_id": "job-with-hook"}, "job-with-hook-webhook")]
    assert store.finish(*ended("job-without")) is True
    assert len(tasks.sent) == 1  # no webhook_url: nothing to send


def test_a_crash_between_sending_and_marking_sends_again_on_the_next_attempt() -> None:
    r = fakeredis.FakeRedis(decode_responses=True)
    store = JobStore(r)
    tasks = SentTasks()
    store.celery = tasks  # type: ignore[assignment]
    r.set(keys.job_webhook("j1"), "https://hooks.example.com/x")
    store.finish(*ended("j1"))
    r.delete(keys.webhook_sent("j1"))  # as if the process died before the mark
    store.finish(*ended("j1"))  # the redelivered task ends it again: sent again
    assert [t[2] for t in tasks.sent] == ["j1-webhook", "j1-webhook"]  # same task id
