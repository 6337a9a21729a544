"""Seeding a session's memory with an existing conversation.

Like LlamaIndex's ``from_tools(chat_history=...)``: the messages are appended to the
session's memory as if earlier turns had produced them, and later turns see them through
the memory window. They are checked as the model API would check them: known roles, and
each tool message answering a call of the assistant message just before it; every call
answered before the conversation moves on.

Importing is refused while a job of the session is queued or running: that job's turn
would otherwise be split by the imported messages. The check and the append are one
script, so a job admitted at the same moment is either before it (refused) or after.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import redis
from pydantic import TypeAdapter, ValidationError

from producer import keys
from producer.contracts import ChatMessage, describe_validation_error, max_message_chars
from producer.request_params import content_chars


class InvalidHistory(ValueError):
    """The messages are not a conversation the model API would accept."""


class SessionBusy(RuntimeError):
    """A job of the session is queued or running, or the session's history lives in an
    assistant-mode thread or response chain."""


def max_import_messages() -> int:
    """Most messages one import takes (``AGENT_MAX_IMPORT_MESSAGES``, default 1000)."""
    return int(os.environ.get("AGENT_MAX_IMPORT_MESSAGES", "1000"))


# KEYS: session jobs, session messages, session mode; ARGV: session ttl, messages json...
# Returns the stored message count, -1 while a job holds the session, -2 for an
# assistant-mode session.
_IMPORT_SCRIPT = """
if redis.call('LLEN', KEYS[1]) > 0 then
  return -1
end
if redis.call('EXISTS', KEYS[3]) == 1 then
  return -2
end
for i = 2, #ARGV do
  redis.call('RPUSH', KEYS[2], ARGV[i])
end
if tonumber(ARGV[1]) > 0 then
  redis.call('EXPIRE', KEYS[2], ARGV[1])
end
return redis.call('LLEN', KEYS[2])
"""

_MESSAGES = TypeAdapter(list[ChatMessage])


def parse_history(messages: Sequence[ChatMessage | Mapping[str, Any]]) -> list[ChatMessage]:
    """Validate ``messages``; raises InvalidHistory naming the message and the problem."""
    limit = max_import_messages()
    if not messages:
        raise InvalidHistory("messages: give at least one message")
    if len(messages) > limit:
        raise InvalidHistory(f"messages: {len(messages)} messages; at most {limit} per import")
    try:
        parsed = _MESSAGES.validate_python(
            [m.model_dump() if isinstance(m, ChatMessage) else m for m in messages]
        )
    except ValidationError as exc:
        raise InvalidHistory(f"messages.{describe_validation_error(exc, '; messages.')}") from None
    check_sequence(parsed)
    return parsed


def check_sequence(messages: Sequence[ChatMessage]) -> None:
    """Roles and the pairing of tool calls with tool messages."""
    pending: list[str] = []
    text_limit = max_message_chars()
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if content_chars(message.content) > text_limit:
            raise InvalidHistory(f"{where}.content: longer than {text_limit} characters")
        if message.role == "tool":
            if message.tool_call_id is None or message.tool_call_id not in pending:
                raise InvalidHistory(
                    f"{where}: a tool message must answer a call of the assistant message "
                    f"before it (tool_call_id {message.tool_call_id!r} was not called)"
                )
            if message.content is None:
                raise InvalidHistory(f"{where}.content: a tool message needs content")
            pending.remove(message.tool_call_id)
            continue
        if pending:
            raise InvalidHistory(
                f"{where}: tool calls {', '.join(pending)} are not answered by tool messages "
                "before it"
            )
        if message.tool_call_id is not None:
            raise InvalidHistory(f"{where}: tool_call_id only on tool messages")
        if message.tool_calls:
            if message.role != "assistant":
                raise InvalidHistory(f"{where}: only assistant messages make tool calls")
            ids = [call.id for call in message.tool_calls]
            if len(set(ids)) != len(ids) or not all(ids):
                raise InvalidHistory(f"{where}.tool_calls: call ids must be unique and set")
            pending = ids
        elif message.content is None or message.content == []:
            raise InvalidHistory(f"{where}.content: a {message.role} message needs content")
    if pending:
        raise InvalidHistory(
            f"messages: the last tool calls ({', '.join(pending)}) have no tool messages"
        )


def import_history(
    client: redis.Redis, session_id: str, messages: Sequence[ChatMessage | Mapping[str, Any]]
) -> int:
    """Append ``messages`` to the session's memory; returns how many it now holds.

    Raises InvalidHistory (nothing stored) or SessionBusy.
    """
    parsed = parse_history(messages)
    script = client.register_script(_IMPORT_SCRIPT)
    stored = int(script(
        keys=[keys.session_jobs(session_id), keys.session_messages(session_id),
              keys.session_mode(session_id)],
        args=[keys.session_ttl_seconds(),
              *(m.model_dump_json(exclude_none=True) for m in parsed)],
    ))
    if stored == -1:
        raise SessionBusy(
            f"session {session_id} has a job queued or running; import its history when "
            "the session is idle"
        )
    if stored == -2:
        raise SessionBusy(
            f"session {session_id} is an assistant-mode session (its history lives on the "
            "server); only chat sessions can be seeded"
        )
    return stored
