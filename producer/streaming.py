"""Reading a job's streamed text, the same way in both clients.

``stream()`` of either client yields the text of ``delta`` events as plain ``str``
pieces, and a :class:`StreamReset` when a step streams again from its start (its
worker crashed, or its model call was retried): drop the text shown for that step
(``reset.step``); what comes after is the step's text from its beginning.
"""

from __future__ import annotations

from dataclasses import dataclass

from producer.contracts import JobEvent


@dataclass(frozen=True)
class StreamReset:
    """Yielded by ``stream()`` instead of text: step ``step`` starts over; drop the text
    shown for it so far. Not a ``str``, so ``isinstance(piece, str)`` tells them apart."""

    step: int


StreamItem = str | StreamReset


def stream_item(event: JobEvent) -> StreamItem | None:
    """The text piece or reset an event carries, or None for other events."""
    if event.kind == "delta":
        text = event.detail.get("text")
        return text if isinstance(text, str) and text else None
    if event.kind == "delta_reset":
        step = event.step if event.step is not None else event.detail.get("step", 0)
        return StreamReset(step=int(step))
    return None


class StreamFollower:
    """Turns a job's events into what ``stream()`` yields (one per client call).

    A job that streamed no text at all (submitted without ``stream``, or answered by a
    ``return_direct`` tool) yields its whole response once, at the end, so ``stream()``
    always delivers the answer.
    """

    def __init__(self) -> None:
        self.streamed = False

    def feed(self, event: JobEvent) -> StreamItem | None:
        item = stream_item(event)
        if isinstance(item, str):
            self.streamed = True
        return item

    def needs_response(self, event: JobEvent) -> bool:
        """After the terminal ``event``: should the job's response be yielded whole?"""
        return event.kind == "succeeded" and not self.streamed
