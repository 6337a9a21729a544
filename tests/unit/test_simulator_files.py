"""``/v1/files`` of the simulator, driven by the real ``openai`` client."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from simulator import SimulatorServer, start_server
from simulator.errors import ApiError
from simulator.files import MAX_FILE_BYTES
from simulator.multipart import parse_form
from tests.unit.sim_runs_helpers import API_KEY, control, stats


@pytest.fixture(scope="module")
def server() -> Iterator[SimulatorServer]:
    sim = start_server(api_key=API_KEY)
    yield sim
    sim.stop()


@pytest.fixture(scope="module")
def client(server: SimulatorServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key=API_KEY, max_retries=0, timeout=20)


def test_upload_retrieve_list_content_delete(
    server: SimulatorServer, client: openai.OpenAI
) -> None:
    before = stats(server)
    data = bytes(range(256)) * 10 + b"\r\n--not-a-boundary\r\n"
    uploaded = client.files.create(file=("notes.bin", data), purpose="assistants")
    assert uploaded.id.startswith("file-")
    assert (uploaded.bytes, uploaded.filename, uploaded.purpose) == (
        len(data),
        "notes.bin",
        "assistants",
    )
    assert uploaded.status == "processed"
    assert client.files.retrieve(uploaded.id) == uploaded
    assert client.files.content(uploaded.id).content == data
    other = client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch")
    ids = [f.id for f in client.files.list()]
    assert ids.index(other.id) < ids.index(uploaded.id)  # newest first
    assert [f.id for f in client.files.list(purpose="batch")] == [
        f.id for f in client.files.list() if f.purpose == "batch"
    ]
    deleted = client.files.delete(uploaded.id)
    assert (deleted.id, deleted.deleted) == (uploaded.id, True)
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(uploaded.id)
    with pytest.raises(openai.NotFoundError):
        client.files.delete(uploaded.id)
    after = stats(server)
    assert after["file_uploaded"] - before["file_uploaded"] == 2
    assert after["file_deleted"] - before["file_deleted"] == 1


def test_upload_errors(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="purpose"):
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="too large"):
        client.files.create(file=("big.bin", b"\0" * (MAX_FILE_BYTES + 1)), purpose="assistants")
    with pytest.raises(openai.BadRequestError, match="empty"):
        client.files.create(file=("empty.txt", b""), purpose="assistants")


def test_upload_needs_multipart_and_auth(server: SimulatorServer) -> None:
    status, body = control(server, "POST", "/v1/files", {"purpose": "assistants"})
    assert status == 400
    assert body["error"]["type"] == "invalid_request_error"
    unauthenticated = openai.OpenAI(base_url=server.url, api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        unauthenticated.files.list()


def test_parse_form() -> None:
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="a b.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nline1\r\nline2\r\n--XyZ--\r\n"
    )
    form = parse_form("multipart/form-data; boundary=XyZ", body)
    assert form["purpose"].data == b"assistants"
    assert form["file"].filename == "a b.txt"
    assert form["file"].data == b"line1\r\nline2"
    assert form["file"].content_type == "text/plain"
    for content_type, bad in [
        ("application/json", body),
        ("multipart/form-data", body),
        ("multipart/form-data; boundary=XyZ", b"--XyZ\r\nno end"),
        ("multipart/form-data; boundary=other", body),
    ]:
        with pytest.raises(ApiError):
            parse_form(content_type, bad)
