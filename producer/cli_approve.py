"""``celery-agents approve JOB CALL_ID [--deny] [--reason TEXT]`` and the pending-approval
lines ``status`` prints.

Exit codes: 0 the decision was recorded; 1 it was refused (unknown call, the call was
decided already, the job ended); 6 unknown job. A refused decision changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from producer.approvals import ApprovalError, UnknownJob
from producer.client import AgentClient
from producer.contracts import Approval
from producer.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_UNKNOWN_JOB


def add_approve_command(commands: Any) -> None:
    """Register the ``approve`` subcommand on the CLI's subparsers."""
    approve = commands.add_parser(
        "approve", help="approve (or --deny) a tool call that waits for approval"
    )
    approve.add_argument("job_id")
    approve.add_argument("call_id", help="the call id of an approval_required event")
    approve.add_argument("--deny", action="store_true", help="decline the call")
    approve.add_argument("--reason", help="why (the model reads it for a declined call)")
    approve.add_argument("--json", action="store_true", help="machine-readable output")


def add_approval_flags(submit: argparse.ArgumentParser) -> None:
    """``submit`` flags for the request's approval fields."""
    submit.add_argument("--require-approval", action="append", dest="require_approval",
                        metavar="TOOL",
                        help="calls of this tool wait for a person's decision (repeatable)")
    submit.add_argument("--approval-timeout", type=float, dest="approval_timeout_seconds",
                        help="a call undecided this many seconds counts as declined")


def approval_fields(args: argparse.Namespace) -> dict[str, Any]:
    return {"require_approval": args.require_approval,
            "approval_timeout_seconds": args.approval_timeout_seconds}


def run_approve(client: AgentClient, args: argparse.Namespace) -> int:
    try:
        decision = client.approve(args.job_id, args.call_id, approved=not args.deny,
                                  reason=args.reason, decided_by="cli")
    except ApprovalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN_JOB if isinstance(exc, UnknownJob) else EXIT_FAILED
    if args.json:
        print(decision.model_dump_json(indent=2))
    else:
        verdict = "approved" if decision.approved else "declined"
        why = f": {decision.reason}" if decision.reason else ""
        print(f"tool call {decision.call_id} ({decision.tool_name}) of job {args.job_id} "
              f"{verdict}{why}")
    return EXIT_OK


def describe_pending(approvals: list[Approval]) -> list[str]:
    """One line per call still waiting for a decision (``status`` and ``watch``)."""
    return [
        f"waiting for approval: {a.call_id} {a.tool_name}({a.arguments})"
        + (f", declined at {a.timeout_at:.0f} unless decided" if a.timeout_at else "")
        for a in approvals if not a.decided
    ]


def pending_json(approvals: list[Approval]) -> str:
    return json.dumps([a.model_dump(mode="json") for a in approvals if not a.decided])
