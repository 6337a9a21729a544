"""Tokens of a message content that may be a list of text and image parts.

OpenAI bills an image by its detail: ``low`` costs 85 tokens; ``high`` (and ``auto``,
which picks high for large images) 85 plus 170 per 512-px tile of the scaled image. The
worker does not fetch images to learn their size, so it assumes a 1024x1024 image:
4 tiles, 765 tokens. That is an estimate for fitting the memory window, not a bill.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from producer.request_params import ImagePart, TextPart

LOW_DETAIL_IMAGE_TOKENS = 85
HIGH_DETAIL_IMAGE_TOKENS = 85 + 170 * 4  # an assumed 1024x1024 image: 2x2 tiles
PART_OVERHEAD_TOKENS = 1


def image_tokens(part: ImagePart) -> int:
    if part.image_url.detail == "low":
        return LOW_DETAIL_IMAGE_TOKENS
    return HIGH_DETAIL_IMAGE_TOKENS


def content_tokens(
    content: str | Sequence[TextPart | ImagePart], count: Callable[[str], int]
) -> int:
    """Tokens of a text, or of each part of a list (text counted, images estimated)."""
    if isinstance(content, str):
        return count(content)
    total = 0
    for part in content:
        total += PART_OVERHEAD_TOKENS
        total += count(part.text) if isinstance(part, TextPart) else image_tokens(part)
    return total
