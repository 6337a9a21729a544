"""A small ``multipart/form-data`` parser (what ``openai``'s ``files.create`` sends)."""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message

from simulator.errors import bad_request


@dataclass(frozen=True)
class Part:
    """One form field; ``filename`` is set for file fields."""

    name: str
    data: bytes
    filename: str | None = None
    content_type: str | None = None


def _header_params(value: str) -> Message:
    message = Message()
    message["content-disposition"] = value
    return message


def _boundary(content_type: str) -> bytes:
    message = Message()
    message["content-type"] = content_type
    if message.get_content_type() != "multipart/form-data":
        raise bad_request("Expected a multipart/form-data body.")
    boundary = message.get_param("boundary")
    if not isinstance(boundary, str) or not boundary:
        raise bad_request("The multipart/form-data body has no boundary.")
    return boundary.encode("latin-1")


def _parse_part(raw: bytes) -> Part:
    head, sep, data = raw.partition(b"\r\n\r\n")
    if not sep:
        raise bad_request("Malformed multipart/form-data part.")
    headers: dict[str, str] = {}
    for line in head.decode("utf-8", "replace").split("\r\n"):
        key, colon, value = line.partition(":")
        if colon:
            headers[key.strip().lower()] = value.strip()
    disposition = _header_params(headers.get("content-disposition", ""))
    name = disposition.get_param("name", header="content-disposition")
    filename = disposition.get_param("filename", header="content-disposition")
    if not isinstance(name, str):
        raise bad_request("A multipart/form-data part has no name.")
    return Part(
        name=name,
        data=data,
        filename=filename if isinstance(filename, str) else None,
        content_type=headers.get("content-type"),
    )


def parse_form(content_type: str, body: bytes) -> dict[str, Part]:
    """The fields of a ``multipart/form-data`` body by name (the last one wins)."""
    delimiter = b"--" + _boundary(content_type)
    fields: dict[str, Part] = {}
    position = body.find(delimiter)
    if position < 0:
        raise bad_request("Malformed multipart/form-data body: no boundary found.")
    position += len(delimiter)
    while True:
        if body.startswith(b"--", position):
            return fields
        if not body.startswith(b"\r\n", position):
            raise bad_request("Malformed multipart/form-data body.")
        start = position + 2
        end = body.find(b"\r\n" + delimiter, start)
        if end < 0:
            raise bad_request("Malformed multipart/form-data body: unterminated part.")
        part = _parse_part(body[start:end])
        fields[part.name] = part
        position = end + 2 + len(delimiter)
