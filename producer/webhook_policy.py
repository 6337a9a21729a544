"""Which webhook URLs may be called: ``AGENT_WEBHOOK_ALLOWED_HOSTS``.

A comma-separated list of entries; each is a host name (``hooks.example.com``), a
subdomain wildcard (``*.example.com``), an IP address, or an IP network in CIDR form
(``10.0.5.0/24``); a name or address may carry a port (``hooks.example.com:8443``;
without one any port is allowed). Empty (the default): no webhooks.

The producer checks the URL's host against the list and refuses the request with a
clear message. The worker checks again before each delivery and also resolves the name:
an address that a name resolves to must be public, unless it lies in an address or
network listed too. So a listed name that starts resolving to an internal address (DNS
rebinding) is refused rather than called (worker/webhooks.py).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookRefused(ValueError):
    """A webhook_url whose host is not allowed (the message names the field)."""


@dataclass(frozen=True)
class AllowedHosts:
    names: frozenset[tuple[str, int | None]]  # (name, port or None)
    wildcards: frozenset[tuple[str, int | None]]  # (".example.com", port or None)
    networks: tuple[tuple[IPNetwork, int | None], ...]

    @classmethod
    def parse(cls, text: str) -> AllowedHosts:
        names: set[tuple[str, int | None]] = set()
        wildcards: set[tuple[str, int | None]] = set()
        networks: list[tuple[IPNetwork, int | None]] = []
        for raw in text.split(","):
            entry = raw.strip().lower()
            if not entry:
                continue
            host, port = _split_port(entry)
            try:
                networks.append((ipaddress.ip_network(host.strip("[]"), strict=False), port))
                continue
            except ValueError:
                pass
            if host.startswith("*."):
                wildcards.add((host[1:], port))
            else:
                names.add((host, port))
        return cls(frozenset(names), frozenset(wildcards), tuple(networks))

    @classmethod
    def from_env(cls) -> AllowedHosts:
        return cls.parse(os.environ.get("AGENT_WEBHOOK_ALLOWED_HOSTS", ""))

    @property
    def empty(self) -> bool:
        return not (self.names or self.wildcards or self.networks)

    def host_allowed(self, host: str, port: int) -> bool:
        """Whether a URL's host (a name or an IP literal) and port are listed."""
        host = host.lower().strip("[]")
        address = _address(host)
        if address is not None:
            return self.address_listed(address, port)
        if (host, None) in self.names or (host, port) in self.names:
            return True
        return any(host.endswith(suffix) and allowed in (None, port)
                   for suffix, allowed in self.wildcards)

    def address_listed(self, address: IPAddress, port: int) -> bool:
        return any(address in network and allowed in (None, port)
                   for network, allowed in self.networks)


def _split_port(entry: str) -> tuple[str, int | None]:
    if entry.startswith("["):  # [v6]:port
        host, _, rest = entry.partition("]")
        return host + "]", int(rest[1:]) if rest.startswith(":") else None
    if entry.count(":") == 1:
        host, _, port = entry.partition(":")
        return host, int(port)
    return entry, None  # a name, or an IPv6 address without brackets


def _address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def url_host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.hostname or "", port


def webhook_refusal(url: str | None, allowed: AllowedHosts | None = None) -> str | None:
    """Why ``url`` may not be called, or None when it may (or there is none)."""
    if url is None:
        return None
    allowed = allowed or AllowedHosts.from_env()
    if allowed.empty:
        return ("webhook_url: webhooks are off here; list the hosts that may be called in "
                "AGENT_WEBHOOK_ALLOWED_HOSTS")
    host, port = url_host_port(url)
    if not allowed.host_allowed(host, port):
        return (f"webhook_url: host {host}:{port} is not in AGENT_WEBHOOK_ALLOWED_HOSTS")
    return None


def check_webhook(url: str | None) -> None:
    """Raise WebhookRefused when ``url`` may not be called."""
    reason = webhook_refusal(url)
    if reason:
        raise WebhookRefused(reason)
