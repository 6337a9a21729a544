"""``/v1/files``: upload (multipart), retrieve, content, delete and list, kept in memory."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from simulator.common import new_id, page
from simulator.errors import ApiError, bad_request
from simulator.multipart import parse_form
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_FILES = 10_000
PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")


@dataclass(frozen=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


class FileStore:
    """Uploaded files by id, oldest first; at most ``max_files`` (the oldest is dropped)."""

    def __init__(self, max_files: int = MAX_FILES) -> None:
        self._lock = threading.Lock()
        self._files: OrderedDict[str, StoredFile] = OrderedDict()
        self._max_files = max_files

    def add(self, filename: str, purpose: str, data: bytes) -> StoredFile:
        stored = StoredFile(new_id("file-"), filename, purpose, data, int(time.time()))
        with self._lock:
            self._files[stored.id] = stored
            while len(self._files) > self._max_files:
                self._files.popitem(last=False)
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        with self._lock:
            return self._files.get(file_id)

    def exists(self, file_id: str) -> bool:
        with self._lock:
            return file_id in self._files

    def delete(self, file_id: str) -> bool:
        with self._lock:
            return self._files.pop(file_id, None) is not None

    def all(self) -> list[StoredFile]:
        with self._lock:
            return list(self._files.values())


def file_not_found(file_id: str) -> ApiError:
    return ApiError(404, f"No such File object: {file_id}", param="id")


def register(router: Router, state: SimState) -> None:
    """Add the ``/v1/files`` routes (files live in ``state.files``)."""

    def _get(file_id: str) -> StoredFile:
        stored = state.files.get(file_id)
        if stored is None:
            raise file_not_found(file_id)
        return stored

    def upload(request: Request) -> Response:
        form = parse_form(request.headers.get("content-type", ""), request.body)
        part = form.get("file")
        if part is None or part.filename is None:
            raise bad_request("Missing required parameter: 'file'.", param="file")
        purpose_part = form.get("purpose")
        purpose = purpose_part.data.decode("utf-8", "replace") if purpose_part else ""
        if not purpose:
            raise bad_request("Missing required parameter: 'purpose'.", param="purpose")
        if purpose not in PURPOSES:
            raise bad_request(
                f"Invalid value for 'purpose': {purpose!r}. Supported values are: "
                + ", ".join(repr(p) for p in PURPOSES)
                + ".",
                param="purpose",
                code="invalid_value",
            )
        if len(part.data) > MAX_FILE_BYTES:
            raise bad_request(
                f"File is too large: {len(part.data)} bytes; the simulator accepts at most "
                f"{MAX_FILE_BYTES} bytes per file.",
                param="file",
            )
        if not part.data:
            raise bad_request("File is empty.", param="file")
        stored = state.files.add(part.filename or "upload", purpose, part.data)
        state.stats.incr("file_uploaded")
        return json_response(stored.body())

    def retrieve(request: Request) -> Response:
        state.stats.incr("file_retrieved")
        return json_response(_get(request.params["file_id"]).body())

    def content(request: Request) -> Response:
        stored = _get(request.params["file_id"])
        return Response(status=200, body=stored.data, content_type="application/octet-stream")

    def delete(request: Request) -> Response:
        file_id = request.params["file_id"]
        if not state.files.delete(file_id):
            raise file_not_found(file_id)
        state.stats.incr("file_deleted")
        return json_response({"id": file_id, "object": "file", "deleted": True})

    def list_files(request: Request) -> Response:
        purpose = request.query_one("purpose")
        files = [f for f in state.files.all() if not purpose or f.purpose == purpose]
        state.stats.incr("file_listed")
        return json_response(
            page(files, request, lambda f: f.id, lambda f: f.body(), default_limit=100)
        )

    router.add("POST", "/v1/files", upload)
    router.add("GET", "/v1/files", list_files)
    router.add("GET", "/v1/files/{file_id}", retrieve)
    router.add("GET", "/v1/files/{file_id}/content", content)
    router.add("DELETE", "/v1/files/{file_id}", delete)
