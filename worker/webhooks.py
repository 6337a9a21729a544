"""Delivering a finished job to its webhook_url: signed, SSRF-checked, no redirects.

Standard Webhooks (https://www.standardwebhooks.com): the body is
``{"type": "job.<status>", "timestamp": <ISO 8601>, "data": <JobResult>}`` and three
headers sign it: ``webhook-id`` (the job id, the same on every attempt, so a receiver
drops repeats), ``webhook-timestamp`` (Unix seconds of this attempt) and
``webhook-signature`` = ``v1,`` + base64(HMAC-SHA256(secret, f"{id}.{timestamp}.{body}")).
``AGENT_WEBHOOK_SECRET`` lives in the worker's environment only; a ``whsec_`` prefix
marks a base64 key (as Standard Webhooks libraries generate them), any other value is
used as its UTF-8 bytes.

Before each attempt the URL is checked against ``AGENT_WEBHOOK_ALLOWED_HOSTS`` again and
its name resolved; every address must be public or listed (producer/webhook_policy.py).
The connection goes to the address that was checked (no second lookup a rebinding DNS
server could answer differently), and a redirect is an unsuccessful attempt, not followed.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import json
import os
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urlsplit

from producer.contracts import JobResult
from producer.webhook_policy import AllowedHosts, IPAddress, url_host_port

MAX_RESPONSE_BYTES = 64 * 1024


class WebhookRefused(Exception):
    """The URL may not be called (not allowed, or resolves to a forbidden address);
    trying again will not help."""


@dataclass(frozen=True)
class WebhookSettings:
    secret: bytes | None
    allowed: AllowedHosts
    timeout: float
    max_attempts: int
    backoff_base: float

    @classmethod
    def from_env(cls) -> WebhookSettings:
        env = os.environ
        return cls(
            secret=secret_key(env.get("AGENT_WEBHOOK_SECRET", "")),
            allowed=AllowedHosts.from_env(),
            timeout=float(env.get("AGENT_WEBHOOK_TIMEOUT", "10")),
            max_attempts=int(env.get("AGENT_WEBHOOK_MAX_ATTEMPTS", "10")),
            backoff_base=float(env.get("AGENT_WEBHOOK_BACKOFF", "1")),
        )


def secret_key(value: str) -> bytes | None:
    if not value:
        return None
    if value.startswith("whsec_"):
        return base64.b64decode(value.removeprefix("whsec_"))
    return value.encode()


def sign(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one attempt."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def payload(job: JobResult) -> bytes:
    body = {
        "type": f"job.{job.status.value}",
        "timestamp": datetime.fromtimestamp(job.updated_at, UTC).isoformat(),
        "data": job.model_dump(mode="json"),
    }
    return json.dumps(body, separators=(",", ":")).encode()


def resolve_checked(url: str, allowed: AllowedHosts) -> IPAddress:
    """The address to connect to, after checking the host and every address it has."""
    host, port = url_host_port(url)
    if not allowed.host_allowed(host, port):
        raise WebhookRefused(f"host {host}:{port} is not in AGENT_WEBHOOK_ALLOWED_HOSTS")
    try:
        return ipaddress.ip_address(host.strip("[]"))  # a listed literal address
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConnectionError(f"cannot resolve {host}: {exc}") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
            address = address.ipv4_mapped
        if not (address.is_global or allowed.address_listed(address, port)):
            raise WebhookRefused(
                f"{host} resolves to {address}, which is not a public address and not "
                "listed in AGENT_WEBHOOK_ALLOWED_HOSTS"
            )
        addresses.append(address)
    if not addresses:
        raise ConnectionError(f"{host} has no address")
    return addresses[0]


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to a checked address; the Host header keeps the URL's name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._address = str(address)

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    """TLS to a checked address, verifying the certificate for the URL's name."""

    def __init__(self, host: str, port: int, address: IPAddress, timeout: float) -> None:
        self._tls = ssl.create_default_context()
        super().__init__(host, port, timeout=timeout, context=self._tls)
        self._address = str(address)

    def connect(self) -> None:
        raw = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._tls.wrap_socket(raw, server_hostname=self.host)


def post(url: str, job: JobResult, settings: WebhookSettings, now: float | None = None) -> int:
    """One signed delivery attempt; returns the HTTP status.

    Raises WebhookRefused (do not retry) or OSError/HTTPException (retry).
    """
    if settings.secret is None:
        raise WebhookRefused("AGENT_WEBHOOK_SECRET is not set on this worker; webhooks "
                             "are never sent unsigned")
    address = resolve_checked(url, settings.allowed)
    parts = urlsplit(url)
    host, port = url_host_port(url)
    body = payload(job)
    timestamp = int(now if now is not None else time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "celery-agents-webhook",
        "webhook-id": job.job_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(settings.secret, job.job_id, timestamp, body),
    }
    connection_class = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
    connection = connection_class(host, port, address, settings.timeout)
    try:
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return response.status
    finally:
        connection.close()


def backoff(attempt: int, base: float, ceiling: float) -> float:
    """Countdown before attempt ``attempt + 1`` (0-based ``attempt`` just failed)."""
    return float(min(ceiling, base * 2.0**attempt))
