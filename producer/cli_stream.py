"""``celery-agents submit ... --stream``: print the answer as the model writes it.

Without ``--json``: the text as it arrives, then the tool sources and the usage (a step
that starts over after a worker crash prints a marker line, then its text again). With
``--json``: one JSON object per line, each job event as it happens (``delta`` events carry
the text), then the job record.
"""

from __future__ import annotations

import argparse
import json
import sys

from producer.client import AgentClient, JobTimeout
from producer.contracts import JobResult
from producer.exit_codes import EXIT_TIMEOUT, exit_code_for
from producer.progress import describe_result
from producer.streaming import StreamReset


def add_stream_flag(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("--stream", action="store_true", default=None,
                        help="stream the answer as it is written (implies --wait)")


def run_stream(client: AgentClient, job_id: str, args: argparse.Namespace) -> int:
    """Follow a streamed job to its end; the exit code of its outcome."""
    try:
        if args.json:
            for event in client.events(job_id, timeout=args.timeout):
                print(event.model_dump_json(), flush=True)
        else:
            for piece in client.stream(job_id, timeout=args.timeout):
                if isinstance(piece, StreamReset):
                    print(f"\n[step {piece.step} starts over]", flush=True)
                else:
                    print(piece, end="", flush=True)
            print()
        result = client.wait(job_id, timeout=0.5)
    except JobTimeout:
        print(json.dumps({"job_id": job_id, "status": "timeout"}) if args.json
              else f"timed out after {args.timeout} s; job {job_id} goes on", file=sys.stderr)
        return EXIT_TIMEOUT
    print(result.model_dump_json() if args.json else _after_text(result))
    return exit_code_for(result.status)


def _after_text(result: JobResult) -> str:
    """Status, error, sources and usage: the text itself was printed already."""
    lines = describe_result(result).splitlines()
    return "\n".join(line for line in lines if not line.startswith("response: "))
