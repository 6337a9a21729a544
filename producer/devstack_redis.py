"""Redis helpers for :mod:`producer.devstack`: find, command line, and a raw-socket PING.

Standard library only: no redis-py, so the dev stack runs where only the producer's
minimal dependencies (or none) are installed.
"""

from __future__ import annotations

import shutil
import socket
import time
from pathlib import Path

from producer.devstack_process import ManagedProcess, ProcessExitedError

__all__ = ["find_redis_server", "redis_argv", "redis_ping", "wait_for_redis"]


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
    binary: str, port: int, run_dir: Path, appendonly: bool, password: str | None
) -> list[str]:
    """A foreground, loopback-only redis-server command line, configured by arguments."""
    argv = [
        binary,
        "--port", str(port),
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


def redis_ping(port: int, password: str | None = None, timeout: float = 1.0) -> bool:
    """True when a Redis server on 127.0.0.1:``port`` answers PING (RESP; AUTH first)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if password is not None and not _command(sock, "AUTH", password).startswith(b"+OK"):
                return False
            return _command(sock, "PING").startswith(b"+PONG")
    except OSError:
        return False


def wait_for_redis(
    proc: ManagedProcess, port: int, password: str | None, timeout: float = 15.0
) -> None:
    """Wait until ``proc`` answers PING; fails fast, with its log tail, if it exits."""
    deadline = time.monotonic() + timeout
    while not redis_ping(port, password):
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
