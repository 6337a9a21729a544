"""Model parameters, content parts and webhook URLs of a request: types and their checks.

Part of the contract (imported by producer/contracts/), so pydantic and the standard
library only. Limits follow what OpenAI's Chat Completions API accepts, so a request the
producer accepts is one the model server accepts too.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

# OpenAI: at most 4 stop sequences; metadata at most 16 pairs, keys 64 and values 512 chars.
MAX_STOP_SEQUENCES = 4
MAX_METADATA_PAIRS = 16
MAX_METADATA_KEY_CHARS = 64
MAX_METADATA_VALUE_CHARS = 512
MAX_WEBHOOK_URL_CHARS = 2048
SEED_RANGE = (-(2**63), 2**63 - 1)
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
# The model parameters a chat request can set; each reaches the model only when set.
MODEL_PARAMETERS = (
    "temperature", "top_p", "max_tokens", "parallel_tool_calls", "seed", "stop",
    "response_format",
)
_SCHEMA_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_DATA_IMAGE_RE = re.compile(r"^data:image/(png|jpeg|gif|webp);base64,[A-Za-z0-9+/=\s]+$")


def max_image_url_chars() -> int:
    """Longest image URL (a data: URL holds the whole image) (``AGENT_MAX_IMAGE_URL_CHARS``)."""
    return int(os.environ.get("AGENT_MAX_IMAGE_URL_CHARS", str(2_000_000)))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(_Strict):
    """A text content part (Chat Completions ``{"type": "text", "text": ...}``)."""

    type: Literal["text"]
    text: str


class ImageURL(_Strict):
    url: str = Field(description="https:// or http:// URL, or a data:image/...;base64 URL")
    detail: Literal["auto", "low", "high"] | None = None

    @field_validator("url")
    @classmethod
    def _url_form(cls, value: str) -> str:
        limit = max_image_url_chars()
        if len(value) > limit:
            raise ValueError(f"image URL is {len(value)} characters; the limit is {limit}")
        if value.startswith("data:"):
            if not _DATA_IMAGE_RE.match(value):
                raise ValueError(
                    "a data URL must be data:image/(png|jpeg|gif|webp);base64,<data>"
                )
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("image URL must be http(s)://host/... or a data:image URL")
        return value


class ImagePart(_Strict):
    """An image content part (``{"type": "image_url", "image_url": {"url": ...}}``)."""

    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


def content_chars(content: str | list[TextPart | ImagePart] | None) -> int:
    """Characters of text in a content (image parts are limited by their own rule)."""
    if content is None:
        return 0
    if isinstance(content, str):
        return len(content)
    return sum(len(p.text) for p in content if isinstance(p, TextPart))


def check_content_parts(value: list[TextPart | ImagePart]) -> None:
    """A list of parts must hold something: at least one image or non-blank text."""
    if not value:
        raise ValueError("a list of content parts must not be empty")
    if not any(isinstance(p, ImagePart) or p.text.strip() for p in value):
        raise ValueError("content parts hold neither text nor an image")


def check_stop(value: str | list[str] | None) -> str | list[str] | None:
    if value is None:
        return None
    sequences = [value] if isinstance(value, str) else value
    if isinstance(value, list) and not 1 <= len(value) <= MAX_STOP_SEQUENCES:
        raise ValueError(f"give 1 to {MAX_STOP_SEQUENCES} stop sequences, not {len(value)}")
    if any(not s for s in sequences):
        raise ValueError("stop sequences must not be empty")
    return value


def check_metadata(value: dict[str, str] | None) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) > MAX_METADATA_PAIRS:
        raise ValueError(f"{len(value)} pairs; at most {MAX_METADATA_PAIRS}")
    for key, item in value.items():
        if not key or len(key) > MAX_METADATA_KEY_CHARS:
            raise ValueError(f"key {key[:80]!r} must be 1 to {MAX_METADATA_KEY_CHARS} characters")
        if len(item) > MAX_METADATA_VALUE_CHARS:
            raise ValueError(
                f"value of {key!r} is {len(item)} characters; at most {MAX_METADATA_VALUE_CHARS}"
            )
    return value


def check_response_format(value: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Chat Completions ``response_format`` shapes: text, json_object, json_schema."""
    if value is None:
        return None
    kind = value.get("type")
    if kind not in RESPONSE_FORMAT_TYPES:
        raise ValueError(f"type must be one of {', '.join(RESPONSE_FORMAT_TYPES)}")
    if kind != "json_schema":
        if set(value) != {"type"}:
            raise ValueError(f"type {kind!r} takes no other fields")
        return value
    spec = value.get("json_schema")
    if set(value) != {"type", "json_schema"} or not isinstance(spec, dict):
        raise ValueError("type 'json_schema' needs json_schema: {name, schema, strict}")
    unknown = set(spec) - {"name", "schema", "strict", "description"}
    if unknown:
        raise ValueError(f"json_schema: unknown fields {sorted(unknown)}")
    if not isinstance(spec.get("name"), str) or not _SCHEMA_NAME_RE.match(spec["name"]):
        raise ValueError("json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$")
    if "schema" in spec and not isinstance(spec["schema"], dict):
        raise ValueError("json_schema.schema must be a JSON Schema object")
    if "strict" in spec and not isinstance(spec["strict"], bool | None):
        raise ValueError("json_schema.strict must be a boolean")
    return value


def wants_json(response_format: dict[str, Any] | None) -> bool:
    """Whether the final answer must be a JSON object (and the result carries it parsed)."""
    if not response_format:
        return False
    return response_format.get("type") in ("json_object", "json_schema")


def check_webhook_url(value: str | None) -> str | None:
    """The URL's form only; which hosts may be called is checked by producer/webhook_policy."""
    if value is None:
        return None
    if len(value) > MAX_WEBHOOK_URL_CHARS:
        raise ValueError(f"at most {MAX_WEBHOOK_URL_CHARS} characters")
    try:
        parts = urlsplit(value)
        _ = parts.port  # raises for a port that is not a number
    except ValueError as exc:
        raise ValueError(f"not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("must not carry credentials (user:password@)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return value


class ModelParameters(_Strict):
    """Mixin of a chat request's model parameters, validated as OpenAI validates them."""

    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature, 0 to 2"
    )
    top_p: float | None = Field(default=None, ge=0, le=1, description="Nucleus sampling, 0 to 1")
    max_tokens: int | None = Field(
        default=None, ge=1, le=1_000_000,
        description="Most tokens one model call may generate (sent as max_completion_tokens "
        "unless AGENT_MAX_TOKENS_PARAM=max_tokens)",
    )
    parallel_tool_calls: bool | None = Field(
        default=None, description="Let the model call several tools at once (sent with tools)"
    )
    seed: int | None = Field(
        default=None, ge=SEED_RANGE[0], le=SEED_RANGE[1], description="Best-effort determinism"
    )
    stop: str | list[str] | None = Field(
        default=None, description=f"Up to {MAX_STOP_SEQUENCES} sequences that end generation"
    )
    response_format: dict[str, Any] | None = Field(
        default=None,
        description="text, json_object or json_schema ({name, schema, strict}); with a JSON "
        "format the result also carries `parsed`",
    )
    metadata: dict[str, str] | None = Field(
        default=None,
        description=f"Up to {MAX_METADATA_PAIRS} string pairs stored with the job (not sent "
        "to the model)",
    )
    webhook_url: str | None = Field(
        default=None,
        description="POSTed the signed job record when the job ends; its host must be in "
        "AGENT_WEBHOOK_ALLOWED_HOSTS",
    )

    @field_validator("stop")
    @classmethod
    def _stop(cls, value: str | list[str] | None) -> str | list[str] | None:
        return check_stop(value)

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        return check_metadata(value)

    @field_validator("response_format")
    @classmethod
    def _response_format(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_response_format(value)

    @field_validator("webhook_url")
    @classmethod
    def _webhook_url(cls, value: str | None) -> str | None:
        return check_webhook_url(value)

    def model_parameters_set(self) -> list[str]:
        """Names of the model parameters this request sets."""
        return [name for name in MODEL_PARAMETERS if getattr(self, name) is not None]
