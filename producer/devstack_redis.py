"""Redis helpers for :mod:`producer.devstack`: find, command line, and a raw-socket PING.

Standard library only: no redis-py, so the dev stack runs where only the producer's
minimal dependencies (or none) are installed.
"""

from __future__ import annotations

import shutil
import socket
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

from producer.devstack_process import ManagedProcess, ProcessExitedError

__all__ = ["RedisTLS", "find_redis_server", "redis_argv", "redis_ping", "wait_for_redis"]


@dataclass(frozen=True)
class RedisTLS:
    """PEM files for a TLS-only redis-server: its certificate and key, and the CA that
    signed it (which clients use to verify the server)."""

    cert_file: Path
    key_file: Path
    ca_file: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))


def find_redis_server() -> str:
    """Path of ``redis-server`` on PATH; RuntimeError naming the apt package if missing."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            "redis-server not found on PATH; install the Debian package `redis-server` "
            "(apt-get install -y redis-server, or run scripts/setup.sh)"
        )
    return binary


def redis_argv(
    binary: str, port: int, run_dir: Path, appendonly: bool, password: str | None,
    tls: RedisTLS | None = None,
) -> list[str]:
    """A foreground, loopback-only redis-server command line, configured by arguments.

    With ``tls`` the server speaks TLS only (``--tls-port``; the plain port is off) and
    does not ask clients for certificates.
    """
    ports = ["--port", str(port)]
    if tls is not None:
        ports = [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(tls.cert_file),
            "--tls-key-file", str(tls.key_file),
            "--tls-ca-cert-file", str(tls.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip
    argv = [
        binary,
        *ports,
        "--bind", "127.0.0.1",
        "--dir", str(run_dir),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--daemonize", "no",
    ]  # fmt: skip
    if password is not None:
        argv += ["--requirepass", password]
    return argv


def _command(sock: socket.socket, *args: str) -> bytes:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    sock.sendall(b"".join(parts))
    reply = b""
    while not reply.endswith(b"\r\n"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        reply += chunk
    return reply


def redis_ping(
    port: int, password: str | None = None, timeout: float = 1.0, tls: RedisTLS | None = None
) -> bool:
    """True when a Redis server on 127.0.0.1:``port`` answers PING (RESP; AUTH first)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
            sock = raw
            if tls is not None:
                sock = tls.client_context().wrap_socket(raw, server_hostname="127.0.0.1")
            if password is not None and not _command(sock, "AUTH", password).startswith(b"+OK"):
                return False
            return _command(sock, "PING").startswith(b"+PONG")
    except OSError:
        return False


def wait_for_redis(
    proc: ManagedProcess, port: int, password: str | None, timeout: float = 15.0,
    tls: RedisTLS | None = None,
) -> None:
    """Wait until ``proc`` answers PING; fails fast, with its log tail, if it exits."""
    deadline = time.monotonic() + timeout
    while not redis_ping(port, password, tls=tls):
        if not proc.alive:
            raise ProcessExitedError(
                f"redis-server exited with status {proc.returncode} before answering "
                f"PING on port {port}; log {proc.log_path} ends:\n{proc.log_tail()}"
            )
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"redis-server on port {port} did not answer PING within {timeout:g}s; "
                f"log {proc.log_path} ends:\n{proc.log_tail()}"
            )
        time.sleep(0.05)
