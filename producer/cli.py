"""The ``celery-agents`` command line.

Exit codes (producer/exit_codes.py, README "Exit codes"): 0 the job succeeded (or the
command did its work), 1 the job failed, 2 bad usage or invalid input, 3 the job has not
ended (still queued or running, or waiting timed out), 4 Redis unreachable, 5 the job was
cancelled, 6 unknown job, 7 nothing to cancel (the job had ended), 141 output pipe closed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from producer.cli_approve import (
    add_approval_flags,
    add_approve_command,
    approval_fields,
    describe_pending,
    run_approve,
)
from producer.cli_sessions import (
    FlagError,
    add_request_flags,
    add_session_commands,
    content_text,
    request_flag_fields,
    run_import,
    run_jobs,
)
from producer.cli_stream import add_stream_flag, run_stream
from producer.cli_tools import add_tools_command, run_tools
from producer.client import AgentClient, InvalidSessionId, JobNotFound, JobTimeout
from producer.contracts import (
    JobResult,
    JobStatus,
    describe_validation_error,
)
from producer.exit_codes import (
    EXIT_ALREADY_ENDED,
    EXIT_BROKEN_PIPE,
    EXIT_NO_REDIS,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNKNOWN_JOB,
    EXIT_USAGE,
    exit_code_for,
)
from producer.ops_cli import OPS_COMMANDS, add_ops_commands, run_ops_command
from producer.progress import describe_event, describe_result
from producer.reachability import RedisUnavailable, require_redis
from producer.tool_registry import UnknownTools
from producer.webhook_policy import WebhookRefused


class UsageError(Exception):
    """Bad input from the command line; exits with code 2."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="celery-agents", description="Run OpenAI function-calling agents on Celery."
    )
    parser.add_argument("--redis-url", help="default: $REDIS_URL or redis://127.0.0.1:6379/0")
    commands = parser.add_subparsers(dest="command", required=True)

    submit = commands.add_parser("submit", help="submit a chat request")
    submit.add_argument("message")
    submit.add_argument("--session", required=True, help="session id (memory is per session)")
    submit.add_argument("--tool", action="append", dest="tools", metavar="NAME",
                        help="allow this tool (repeatable; default: all registered tools)")
    submit.add_argument("--system-prompt")
    submit.add_argument("--tool-choice", default="auto",
                        help="auto, none, required or a tool name (first model call only)")
    submit.add_argument("--max-function-calls", type=int, default=5)
    submit.add_argument("--token-limit", type=int)
    submit.add_argument("--model")
    submit.add_argument("--deadline", type=float, dest="deadline_seconds",
                        help="fail the job past this many seconds (default $AGENT_JOB_DEADLINE)")
    assistant = submit.add_argument_group(
        "assistant mode", "a server-side run polled by the workers (--mode assistant)"
    )
    assistant.add_argument("--mode", choices=["chat", "assistant"], default=None,
                           help="chat (default) or assistant")
    assistant.add_argument("--protocol", choices=["responses", "assistants"],
                           help="Responses API in background mode (default) or Assistants API")
    assistant.add_argument("--assistant-id", help="use this existing assistant")
    assistant.add_argument("--assistant-name", help="name of the assistant to define")
    assistant.add_argument("--instructions", help="the assistant's instructions")
    assistant.add_argument("--builtin-tool", action="append", dest="builtin_tools",
                           choices=["code_interpreter", "file_search"],
                           help="pass a built-in tool through (repeatable)")
    assistant.add_argument("--run-instructions",
                           help="replace the assistant's instructions for this run only")
    assistant.add_argument("--file", action="append", dest="files", metavar="PATH",
                           help="a file the worker uploads and attaches (repeatable)")
    assistant.add_argument("--file-id", action="append", dest="file_ids", metavar="ID",
                           help="attach an uploaded file (repeatable)")
    assistant.add_argument("--thread-id", help="continue this thread (protocol assistants)")
    assistant.add_argument("--poll-interval", type=float,
                           help="seconds before the second poll (it grows from there)")
    submit.add_argument("--wait", action="store_true", help="wait for the result")
    submit.add_argument("--timeout", type=float, default=300.0, help="seconds to wait")
    submit.add_argument("--json", action="store_true", help="machine-readable output")
    add_stream_flag(submit)  # --stream (producer/cli_stream.py)
    add_request_flags(submit)  # model parameters, --image, --metadata, --webhook-url
    add_approval_flags(submit)  # --require-approval, --approval-timeout

    cancel = commands.add_parser("cancel", help="cancel a queued or running job")
    cancel.add_argument("job_id")
    cancel.add_argument("--json", action="store_true")

    status = commands.add_parser("status", help="show a job's status and result")
    status.add_argument("job_id")
    status.add_argument("--json", action="store_true")

    history = commands.add_parser("history", help="show a session's stored messages")
    history.add_argument("session")
    history.add_argument("--json", action="store_true")
    add_session_commands(commands, history)  # jobs; history --limit/--before/--import

    reset = commands.add_parser("reset", help="delete a session's memory")
    reset.add_argument("session")

    demo = commands.add_parser("demo", help="start a local stack and run demo requests")
    demo.add_argument("--keep-logs", action="store_true", help="print where the logs are")
    add_ops_commands(commands)  # gateway, dev, watch
    add_approve_command(commands)
    add_tools_command(commands)  # the tool registry (producer/cli_tools.py)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _run(args)
    except (UsageError, InvalidSessionId, FlagError, WebhookRefused, UnknownTools) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RedisUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_NO_REDIS
    except JobNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNKNOWN_JOB
    except BrokenPipeError:
        # `... | head` closed our stdout: no traceback; point stdout at /dev/null so the
        # interpreter's final flush does not raise again (the Python docs' recipe).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _run(args: argparse.Namespace) -> int:
    if args.command in OPS_COMMANDS:
        return run_ops_command(args)
    if args.command == "demo":
        from producer.demo import run_demo

        return run_demo(keep_logs=args.keep_logs)
    with AgentClient(args.redis_url) as client:
        # The first connect fails fast: a refused connect here means no Redis at that
        # URL, not a restart to wait out (established calls keep their retries).
        require_redis(client.jobs.redis, _url_of(client, args.redis_url))
        handler = {"submit": _submit, "status": _status, "history": _history,
                   "reset": _reset, "cancel": _cancel, "approve": run_approve,
                   "jobs": run_jobs, "tools": run_tools}[args.command]
        return handler(client, args)


def _url_of(client: AgentClient, given: str | None) -> str:
    return given or os.environ.get("REDIS_URL") or str(client.celery.conf.broker_url)


def _submit(client: AgentClient, args: argparse.Namespace) -> int:
    request: dict[str, Any] = {
        "session_id": args.session,
        "message": args.message,
        "tools": args.tools,
        "system_prompt": args.system_prompt,
        "tool_choice": args.tool_choice,
        "max_function_calls": args.max_function_calls,
        "token_limit": args.token_limit,
        "model": args.model,
        "deadline_seconds": args.deadline_seconds,
        "stream": args.stream,
        **_assistant_fields(args),
        **request_flag_fields(args),  # producer/cli_sessions.py
        **approval_fields(args),  # producer/cli_approve.py
    }
    try:
        job_id = client.submit({k: v for k, v in request.items() if v is not None})
    except ValidationError as exc:
        raise UsageError(f"invalid request: {describe_validation_error(exc)}") from None
    if args.stream:
        return run_stream(client, job_id, args)
    if not args.wait:
        print(json.dumps({"job_id": job_id}) if args.json else job_id)
        return EXIT_OK
    try:
        if args.json:
            result = client.wait(job_id, args.timeout)
        else:
            print(f"job {job_id}")
            for event in client.events(job_id, timeout=args.timeout):
                print(f"  {describe_event(event)}", flush=True)
            result = client.wait(job_id, timeout=0.1)
    except JobTimeout:
        print(json.dumps({"job_id": job_id, "status": "timeout"}) if args.json
              else f"timed out after {args.timeout} s; job {job_id} goes on", file=sys.stderr)
        return EXIT_TIMEOUT
    _print_result(result, args.json)
    return exit_code_for(result.status)


def _assistant_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The assistant-mode fields given on the command line (validation names misuse)."""
    spec = {
        "assistant_id": args.assistant_id,
        "name": args.assistant_name,
        "instructions": args.instructions,
        "builtin_tools": args.builtin_tools,
    }
    fields: dict[str, Any] = {
        "mode": args.mode,
        "protocol": args.protocol,
        "assistant": {k: v for k, v in spec.items() if v is not None} or None,
        "run_instructions": args.run_instructions,
        "files": args.files,
        "file_ids": args.file_ids,
        "thread_id": args.thread_id,
        "poll_interval": args.poll_interval,
    }
    return fields


def _status(client: AgentClient, args: argparse.Namespace) -> int:
    result = client.status(args.job_id)
    if result is None:
        raise JobNotFound(args.job_id)
    _print_result(result, args.json)
    if result.status == JobStatus.WAITING_APPROVAL and not args.json:
        print("\n".join(describe_pending(client.approvals(args.job_id, pending_only=True))))
    return exit_code_for(result.status)


def _cancel(client: AgentClient, args: argparse.Namespace) -> int:
    before = client.status(args.job_id)
    if before is None:
        raise JobNotFound(args.job_id)
    result = before if before.status.terminal else client.cancel(args.job_id)
    if result is None:
        raise JobNotFound(args.job_id)
    if before.status.terminal or result.status != JobStatus.CANCELLED:
        # Say so: a bare "status: succeeded" with exit 1 read as a failed cancel.
        if args.json:
            print(json.dumps({**result.model_dump(mode="json"), "already_ended": True},
                             indent=2))
        else:
            print(f"job {args.job_id} had already ended ({result.status}); nothing to cancel")
            print(describe_result(result))
        return EXIT_ALREADY_ENDED
    _print_result(result, args.json)
    return EXIT_OK


def _history(client: AgentClient, args: argparse.Namespace) -> int:
    if args.import_file:
        return run_import(client, args)
    messages = client.history(args.session, limit=args.limit, before=args.before)
    if args.json:
        print(json.dumps([m.model_dump(mode="json") for m in messages], indent=2))
        return EXIT_OK
    if not messages:
        print(f"session {args.session}: no messages")
    for message in messages:
        text = content_text(message)  # image parts shown as [image]
        if message.tool_calls:
            calls = ", ".join(f"{c.name}({c.arguments})" for c in message.tool_calls)
            text = f"{text} [calls {calls}]".strip()
        if message.tool_call_id:
            text = f"[{message.tool_call_id}] {text}"
        print(f"{message.role:>9}: {text}")
    return EXIT_OK


def _reset(client: AgentClient, args: argparse.Namespace) -> int:
    deleted = client.reset(args.session)
    print(f"session {args.session}: " + ("memory deleted" if deleted else "had no memory"))
    return EXIT_OK


def _print_result(result: JobResult, as_json: bool) -> None:
    if as_json:
        print(result.model_dump_json(indent=2))
    else:
        print(describe_result(result))


if __name__ == "__main__":
    sys.exit(main())
