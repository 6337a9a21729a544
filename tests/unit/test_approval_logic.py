"""Pure approval logic (turns and runs) and the decision scripts (fakeredis with Lua)."""

from __future__ import annotations

import threading
import time

import fakeredis
import pytest
from pydantic import ValidationError

from producer import keys
from producer.approvals import (
    AlreadyDecided,
    ApprovalStore,
    JobEnded,
    UnknownCall,
    UnknownJob,
)
from producer.contracts import (
    Approval,
    ChatRequest,
    JobEvent,
    JobResult,
    JobStatus,
    ToolCall,
    ToolOutput,
)
from worker.approval import new_approvals, settle, timeout_reason, tools_needing_approval
from worker.assistant import logic as run_logic
from worker.assistant.logic import RunSnapshot
from worker.assistant.state import new_run_state
from worker.tools import ToolRegistry, tool
from worker.turn import (
    ModelReply,
    apply_decisions,
    apply_model_reply,
    apply_tool_outputs,
    new_turn,
)

TOOLS = ["calculator", "pay"]


def call(call_id: str, name: str) -> ToolCall:
    return ToolCall(id=call_id, name=name, arguments='{"x": 1}')


def out(c: ToolCall, content: str) -> ToolOutput:
    return ToolOutput(tool_name=c.name, tool_call_id=c.id, arguments=c.arguments,
                      content=content)


def decided(c: ToolCall, approved: bool, reason: str | None = None) -> Approval:
    return Approval(job_id="job-0001", call_id=c.id, tool_name=c.name, arguments=c.arguments,
                    requested_at=1.0, decided=True, approved=approved, reason=reason,
                    decided_by="python", decided_at=2.0)


def turn(max_calls: int = 5):  # type: ignore[no-untyped-def]
    request = ChatRequest(session_id="s1", message="pay it", max_function_calls=max_calls)
    return new_turn("job-0001", request, "m", 1000, TOOLS, 0, approval_tools=["pay"])


def test_tool_flag_and_request_list_decide_which_calls_wait() -> None:
    registry = ToolRegistry()

    @tool(registry=registry, requires_approval=True)
    def wire(amount: int) -> str:
        """Wire money."""
        return "sent"

    flagged = [t.name for t in registry if t.requires_approval]
    assert flagged == ["wire"]
    assert tools_needing_approval(flagged, ["calculator", "gone"], ["wire", "calculator"]) == [
        "wire", "calculator",
    ]


def test_request_field_is_validated() -> None:
    with pytest.raises(ValidationError, match="require_approval"):
        ChatRequest(session_id="s", message="m", tools=["calculator"], require_approval=["pay"])
    with pytest.raises(ValidationError, match="invalid tool name"):
        ChatRequest(session_id="s", message="m", require_approval=["no spaces"])
    with pytest.raises(ValidationError, match="approval_timeout_seconds"):
        ChatRequest(session_id="s", message="m", approval_timeout_seconds=0)


def test_a_reply_with_a_call_needing_approval_waits_and_early_calls_settle() -> None:
    calc, pay = call("c1", "calculator"), call("p1", "pay")
    state = apply_model_reply(turn(), ModelReply(tool_calls=[pay, calc]))
    assert state.phase == "approval" and state.awaiting == ["p1"]
    with pytest.raises(ValueError, match="not decided"):
        apply_decisions(state, {}, {"c1": out(calc, "2")})
    # declined: the model reads the reason; the early output is kept; nothing runs
    resumed = apply_decisions(state, {"p1": decided(pay, False, "too much")},
                              {"c1": out(calc, "2")})
    assert resumed.phase == "tools" and resumed.runnable_calls() == []
    done = apply_tool_outputs(resumed, [], frozenset())
    assert [m.content for m in done.messages if m.role == "tool"] == [
        "Tool call pay declined by the approver: too much", "2",
    ]
    assert [s.is_error for s in done.sources] == [True, False]
    assert done.phase == "model" and done.function_calls == 2


def test_approved_calls_run_after_the_decision_in_call_order() -> None:
    calc, pay = call("c1", "calculator"), call("p1", "pay")
    state = apply_model_reply(turn(), ModelReply(tool_calls=[calc, pay]))
    resumed = apply_decisions(state, {"p1": decided(pay, True)}, {"c1": out(calc, "2")})
    assert [c.id for c in resumed.runnable_calls()] == ["p1"]
    done = apply_tool_outputs(resumed, [out(pay, "paid")], frozenset())
    assert [s.content for s in done.sources] == ["2", "paid"]


def test_calls_refused_by_the_budget_are_not_asked_for() -> None:
    state = apply_model_reply(turn(max_calls=1), ModelReply(
        tool_calls=[call("c1", "calculator"), call("p1", "pay")]))
    assert state.phase == "tools" and state.awaiting == [] and "p1" in state.refused


def test_no_approval_tools_means_no_wait() -> None:
    request = ChatRequest(session_id="s1", message="x")
    state = new_turn("job-0001", request, "m", 1000, TOOLS, 0)
    assert apply_model_reply(state, ModelReply(tool_calls=[call("p1", "pay")])).phase == "tools"


def test_a_run_round_waits_for_decisions_before_it_is_submitted() -> None:
    request = ChatRequest(session_id="s1", message="x", mode="assistant")
    state = new_run_state(job_id="job-0001", request=request, model="m", tool_names=TOOLS,
                          created_at=0.0, approval_tools=["pay"])
    calc, pay = call("c1", "calculator"), call("p1", "pay")
    waiting = run_logic.apply_snapshot(
        state, RunSnapshot(status="requires_action", tool_calls=(calc, pay)), 1.0, 5.0)
    assert waiting.phase == "approval" and waiting.awaiting == ["p1"]
    resumed = run_logic.apply_decisions(waiting, {"p1": decided(pay, False)},
                                        {"c1": out(calc, "2")})
    assert resumed.phase == "tools" and resumed.runnable_calls() == []
    ordered = run_logic.ordered_outputs(resumed, [])
    assert [o.content for o in ordered] == [
        "2", "Tool call pay declined by the approver: no reason given",
    ]


def test_settle_needs_every_early_output() -> None:
    calc, pay = call("c1", "calculator"), call("p1", "pay")
    with pytest.raises(ValueError, match="no output"):
        settle([calc, pay], ["p1"], {"p1": decided(pay, True)}, {})


def test_timeout_reason_names_the_timeout() -> None:
    [item] = new_approvals("job-0001", [call("p1", "pay")], ["p1"], 100.0, 30.0)
    assert item.timeout_at == 130.0
    assert timeout_reason(item) == "no decision within the approval timeout of 30 s"


# The scripts


@pytest.fixture
def store() -> ApprovalStore:
    client = fakeredis.FakeRedis(decode_responses=True)
    job = JobResult(job_id="job-0001", session_id="s1", status=JobStatus.RUNNING,
                    created_at=1.0, updated_at=1.0)
    client.set(keys.job("job-0001"), job.model_dump_json())
    approvals = new_approvals("job-0001", [call("c1", "calculator"), call("p1", "pay"),
                                           call("p2", "pay")], ["p1", "p2"], time.time(), None)
    waiting = job.model_copy(update={"status": JobStatus.WAITING_APPROVAL})
    s = ApprovalStore(client)
    assert s.open(waiting, approvals, None) == 2
    assert s.open(waiting, approvals, None) == 2  # a redelivered open writes nothing
    return s


def events(store: ApprovalStore) -> list[JobEvent]:
    entries = store.redis.xrange(keys.job_events("job-0001"))
    return [JobEvent.model_validate_json(fields["event"]) for _, fields in entries]


def test_open_writes_entries_record_and_one_event_per_call(store: ApprovalStore) -> None:
    assert [a.call_id for a in store.pending("job-0001")] == ["p1", "p2"]
    raw = store.redis.get(keys.job("job-0001"))
    assert JobResult.model_validate_json(raw).status == JobStatus.WAITING_APPROVAL
    required = events(store)
    assert [(e.kind, e.detail) for e in required] == [
        ("approval_required", {"call_id": c, "tool_name": "pay", "arguments": '{"x": 1}'})
        for c in ("p1", "p2")
    ]


def test_one_decision_per_call_wins_and_the_last_leaves_none(store: ApprovalStore) -> None:
    first = store.decide("job-0001", "p1", True, None, "alice")
    assert first.undecided == 1 and first.approval.approved and first.approval.reason is None
    with pytest.raises(AlreadyDecided, match="already approved by alice"):
        store.decide("job-0001", "p1", False, "no", "bob")
    last = store.decide("job-0001", "p2", False, "too much", "cli")
    assert last.undecided == 0
    decided_events = [e for e in events(store) if e.kind == "approval_decided"]
    assert [(e.detail["call_id"], e.detail["approved"], e.detail["decided_by"])
            for e in decided_events] == [("p1", True, "alice"), ("p2", False, "cli")]
    assert decided_events[1].detail["reason"] == "too much"


def test_bad_decisions_change_nothing(store: ApprovalStore) -> None:
    with pytest.raises(UnknownCall):
        store.decide("job-0001", "c1", True, None, "x")  # needed no approval
    with pytest.raises(UnknownJob):
        store.decide("job-9999", "p1", True, None, "x")
    store.redis.set(keys.job_final("job-0001"), "1")
    with pytest.raises(JobEnded):
        store.decide("job-0001", "p1", True, None, "x")
    assert len(store.pending("job-0001")) == 2
    assert [e.kind for e in events(store)] == ["approval_required"] * 2


def test_approve_and_deny_at_once_exactly_one_wins(store: ApprovalStore) -> None:
    outcomes: list[str] = []
    barrier = threading.Barrier(8)

    def decide(approved: bool) -> None:
        barrier.wait()
        try:
            store.decide("job-0001", "p1", approved, None, "t")
            outcomes.append("won")
        except AlreadyDecided:
            outcomes.append("409")

    threads = [threading.Thread(target=decide, args=(i % 2 == 0,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["409"] * 7 + ["won"]


def test_watch_and_progress_show_what_waits() -> None:
    from producer.cli_approve import describe_pending
    from producer.progress import describe_event
    from producer.watch import Progress

    asked = JobEvent(job_id="job-0001", kind="approval_required", at=1.0,
                     detail={"call_id": "p1", "tool_name": "pay", "arguments": "{}"})
    answered = JobEvent(job_id="job-0001", kind="approval_decided", at=2.0,
                        detail={"call_id": "p1", "tool_name": "pay", "approved": False,
                                "reason": "no", "decided_by": "cli"})
    progress = Progress()
    progress.apply(asked)
    assert "awaiting approval 1 (pay p1)" in progress.line(now=3.0)
    assert describe_event(asked) == "  waiting for approval: pay({}) call p1"
    progress.apply(answered)
    assert "awaiting approval" not in progress.line(now=3.0)
    assert describe_event(answered) == "  pay (p1) declined by cli: no"
    [item] = new_approvals("job-0001", [call("p1", "pay")], ["p1"], 100.0, None)
    assert describe_pending([item]) == ['waiting for approval: p1 pay({"x": 1})']


def test_a_racing_approver_hears_the_call_was_decided_even_after_the_job_ended(
    store: ApprovalStore,
) -> None:
    store.decide("job-0001", "p1", False, "no", "alice")
    store.redis.set(keys.job_final("job-0001"), "1")  # the turn went on and ended at once
    with pytest.raises(AlreadyDecided, match="declined by alice"):
        store.decide("job-0001", "p1", True, None, "bob")
    with pytest.raises(JobEnded):  # an undecided call of an ended job
        store.decide("job-0001", "p2", True, None, "bob")
