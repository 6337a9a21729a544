"""Files named by path in a request: checked, then uploaded with purpose "assistants".

Every file is checked (exists, regular, within ``AGENT_MAX_UPLOAD_BYTES``) before any is
uploaded, so a bad path fails the job before anything is created server-side.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import openai

from worker.assistant.api import classified

DEFAULT_MAX_UPLOAD_BYTES = 20 * 1024 * 1024


class FileProblem(ValueError):
    """A named file cannot be uploaded; the job fails with this message."""


def max_upload_bytes() -> int:
    return int(os.environ.get("AGENT_MAX_UPLOAD_BYTES", str(DEFAULT_MAX_UPLOAD_BYTES)))


def check_files(paths: Sequence[str], limit: int) -> list[tuple[str, Path]]:
    """(name, path) of regular files within ``limit`` bytes; FileProblem names the first bad one."""
    checked: list[tuple[str, Path]] = []
    for name in paths:
        path = Path(name)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise FileProblem(f"file {name!r} cannot be read: {exc.strerror}") from None
        if not path.is_file():
            raise FileProblem(f"file {name!r} is not a regular file")
        if size > limit:
            raise FileProblem(f"file {name!r} has {size} bytes; the limit is {limit}")
        checked.append((name, path))
    return checked


def upload_files(
    client: openai.OpenAI, paths: Sequence[str], limit: int, already: dict[str, str]
) -> dict[str, str]:
    """Upload the files not uploaded yet; returns ``{file_id: name}`` for all of them.

    ``already`` holds the uploads of an earlier (interrupted) attempt, by file id.
    """
    uploaded = dict(already)
    done_names = set(already.values())
    for name, path in check_files(paths, limit):
        if name in done_names:
            continue
        with classified(f"uploading {path.name}"):
            created = client.files.create(
                file=(path.name, path.read_bytes()), purpose="assistants"
            )
        uploaded[created.id] = name
    return uploaded
