"""CLI pieces for model parameters, image input, session listing and history import.

``build_parser`` in producer/cli.py calls :func:`add_request_flags` on ``submit`` and
:func:`add_session_commands`; ``submit`` merges :func:`request_flag_fields` into its
request, ``history`` hands ``--import`` to :func:`run_import`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from producer.client import AgentClient
from producer.contracts import ChatMessage, JobResult
from producer.exit_codes import EXIT_OK, EXIT_SESSION_BUSY, EXIT_USAGE
from producer.history_import import InvalidHistory, SessionBusy


class FlagError(ValueError):
    """A flag that cannot make a request field (exits with the usage code)."""


def add_request_flags(submit: argparse.ArgumentParser) -> None:
    group = submit.add_argument_group("model parameters", "sent to every model call of the turn")
    group.add_argument("--temperature", type=float, help="0 to 2")
    group.add_argument("--top-p", type=float, dest="top_p", help="0 to 1")
    group.add_argument("--max-tokens", type=int, dest="max_tokens",
                       help="most tokens one model call may generate")
    group.add_argument("--seed", type=int)
    group.add_argument("--stop", action="append", metavar="TEXT",
                       help="a stop sequence (repeatable, at most 4)")
    group.add_argument("--parallel-tool-calls", dest="parallel_tool_calls",
                       action=argparse.BooleanOptionalAction, default=None,
                       help="let the model call several tools at once (or not)")
    group.add_argument("--json-object", action="store_true",
                       help="the answer must be a JSON object (response_format json_object)")
    group.add_argument("--json-schema", metavar="FILE",
                       help="the answer must match this JSON Schema (a file; the result "
                       "carries `parsed`)")
    submit.add_argument("--image", action="append", metavar="URL",
                        help="attach an image (https:// or data: URL; repeatable)")
    submit.add_argument("--metadata", action="append", metavar="KEY=VALUE",
                        help="stored with the job (repeatable)")
    submit.add_argument("--webhook-url", help="POSTed the signed result when the job ends")


def request_flag_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The request fields the flags above set (None for those not given)."""
    fields: dict[str, Any] = {
        name: getattr(args, name)
        for name in ("temperature", "top_p", "max_tokens", "seed", "parallel_tool_calls",
                     "webhook_url")
    }
    fields["stop"] = args.stop
    if args.json_schema and args.json_object:
        raise FlagError("give --json-object or --json-schema, not both")
    if args.json_object:
        fields["response_format"] = {"type": "json_object"}
    if args.json_schema:
        path = Path(args.json_schema)
        fields["response_format"] = {"type": "json_schema", "json_schema": {
            "name": _schema_name(path), "schema": _read_json(path), "strict": True}}
    if args.metadata:
        pairs = [item.partition("=") for item in args.metadata]
        if any(not sep for _, sep, _ in pairs):
            raise FlagError("--metadata takes KEY=VALUE")
        fields["metadata"] = {key: value for key, _, value in pairs}
    if args.image:
        fields["message"] = [{"type": "text", "text": args.message}] + [
            {"type": "image_url", "image_url": {"url": url}} for url in args.image
        ]
    return fields


def _schema_name(path: Path) -> str:
    name = "".join(c if c.isalnum() or c in "_-" else "_" for c in path.stem)
    return name[:64] or "answer"


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise FlagError(f"cannot read JSON from {path}: {exc}") from None


def add_session_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    history: argparse.ArgumentParser,
) -> None:
    history.add_argument("--limit", type=int, help="only the newest N messages")
    history.add_argument("--before", type=int, metavar="POSITION",
                         help="only messages before this position (0 is the oldest)")
    history.add_argument("--import", dest="import_file", metavar="FILE",
                         help="seed the session: append the messages of a JSON file (a list "
                         "of messages, or {\"messages\": [...]}; - reads stdin)")
    jobs = commands.add_parser("jobs", help="list a session's recent jobs")
    jobs.add_argument("--session", required=True)
    jobs.add_argument("--limit", type=int, default=20)
    jobs.add_argument("--json", action="store_true")


def run_jobs(client: AgentClient, args: argparse.Namespace) -> int:
    if args.limit < 1:
        raise FlagError("--limit must be at least 1")
    found = client.jobs_of(args.session, args.limit)
    if args.json:
        print(json.dumps([job.model_dump(mode="json") for job in found], indent=2))
        return EXIT_OK
    if not found:
        print(f"session {args.session}: no jobs")
    for job in found:
        print(describe_job_line(job))
    return EXIT_OK


def describe_job_line(job: JobResult) -> str:
    from datetime import datetime

    when = datetime.fromtimestamp(job.created_at).strftime("%Y-%m-%d %H:%M:%S")
    outcome = job.error if job.error else (job.response or "")
    outcome = " ".join(outcome.split())
    if len(outcome) > 60:
        outcome = outcome[:57] + "..."
    return f"{job.job_id}  {when}  {job.status.value:<9}  {outcome}".rstrip()


def run_import(client: AgentClient, args: argparse.Namespace) -> int:
    source = sys.stdin.read() if args.import_file == "-" else _read_text(args.import_file)
    try:
        data = json.loads(source)
    except ValueError as exc:
        print(f"error: {args.import_file} is not JSON: {exc}", file=sys.stderr)
        return EXIT_USAGE
    messages = data.get("messages") if isinstance(data, dict) else data
    if not isinstance(messages, list):
        print("error: expected a JSON list of messages, or {\"messages\": [...]}",
              file=sys.stderr)
        return EXIT_USAGE
    try:
        total = client.import_history(args.session, messages)
    except InvalidHistory as exc:
        print(f"error: invalid history: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SessionBusy as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_SESSION_BUSY
    print(f"session {args.session}: imported {len(messages)} messages ({total} stored)")
    return EXIT_OK


def _read_text(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as exc:
        raise FlagError(f"cannot read {path}: {exc}") from None


def content_text(message: ChatMessage) -> str:
    """A message's content for one line of `history`: text parts, images as [image]."""
    if isinstance(message.content, list):
        return " ".join(getattr(p, "text", "[image]") for p in message.content)
    return message.content or ""
