"""HTTP plumbing: a threading HTTP/1.1 server that dispatches through the route table.

Standard library only. Keep-alive connections, one daemon thread per connection, a
Content-Length on every response. Request bodies and the Authorization header are never
logged; with ``verbose`` only method, path and status are.
"""

from __future__ import annotations

import contextlib
import hmac
import sys
import threading
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socket import SHUT_RDWR, socket
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from simulator.app import build_router
from simulator.errors import ApiError
from simulator.faults import DropConnection
from simulator.routing import Request, Response, Router, error_response
from simulator.state import SimState
from simulator.streaming import StreamingResponse, write_stream

MAX_BODY_BYTES = 32 * 1024 * 1024
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)


class _SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # the listen backlog: 100+ clients may connect at once

    def __init__(
        self, address: tuple[str, int], state: SimState, router: Router, verbose: bool
    ) -> None:
        self.sim_state = state
        self.router = router
        self.verbose = verbose
        self._connections: set[socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket) -> None:
        with self._connections_lock:
            self._connections.add(conn)

    def untrack(self, conn: socket) -> None:
        with self._connections_lock:
            self._connections.discard(conn)

    def close_connections(self) -> None:
        """Shut down open keep-alive connections so their threads end."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(SHUT_RDWR)


class _BodyError(Exception):
    """The request body cannot be read; the connection must be closed."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(error.message)
        self.error = error


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "celery-agents-simulator/0.1"
    sys_version = ""
    disable_nagle_algorithm = True
    timeout = 300  # idle keep-alive connections are closed after this many seconds

    @property
    def sim(self) -> _SimHTTPServer:
        return cast(_SimHTTPServer, self.server)

    def setup(self) -> None:
        super().setup()
        self.sim.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.sim.untrack(self.connection)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    # -- logging: never bodies or headers -------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:
        if self.sim.verbose:
            sys.stderr.write(f"simulator: {format % args}\n")

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        if self.sim.verbose:
            path = urlsplit(self.path).path
            sys.stderr.write(f"simulator: {self.command} {path} {code}\n")

    # -- request handling -----------------------------------------------------------------
    def _dispatch(self) -> None:
        try:
            response = self._handle()
        except DropConnection:  # an injected fault: close without answering
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(SHUT_RDWR)
            return
        except _BodyError as failure:
            self.close_connection = True
            response = error_response(failure.error)
        except ApiError as error:
            response = error_response(error)
        except Exception as exc:
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            where = f"{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
            sys.stderr.write(f"simulator: internal error {type(exc).__name__} at {where}\n")
            response = error_response(ApiError(500, "The simulator had an internal error."))
        self._send(response)

    def _handle(self) -> Response:
        body = self._read_body()
        url = urlsplit(self.path)
        found = self.sim.router.match(self.command, url.path)
        if found is None:
            raise ApiError(404, f"Invalid URL ({self.command} {url.path})", code="unknown_url")
        route, params = found
        if route.auth:
            self._check_auth()
        injected = self.sim.sim_state.faults.apply(url.path)
        if injected is not None:
            return injected
        request = Request(
            method=self.command,
            path=url.path,
            query=parse_qs(url.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            params=params,
        )
        return route.handler(request)

    def _check_auth(self) -> None:
        scheme, _, token = self.headers.get("Authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, _NO_KEY)
        expected = self.sim.sim_state.api_key
        if expected is not None and not hmac.compare_digest(
            token.encode("utf-8"), expected.encode("utf-8")
        ):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def _read_body(self) -> bytes:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                raise _BodyError(ApiError(501, f"Unsupported Transfer-Encoding: {encoding}"))
            return self._read_chunked()
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BodyError(ApiError(400, "Invalid Content-Length header.")) from None
        if length < 0:
            raise _BodyError(ApiError(400, "Invalid Content-Length header."))
        if length > MAX_BODY_BYTES:
            raise _BodyError(ApiError(413, "Request body too large."))
        return self._read_exact(length)

    def _read_exact(self, length: int) -> bytes:
        data = self.rfile.read(length)
        if len(data) != length:
            raise ConnectionError("client closed the connection mid-body")
        return data

    def _read_chunked(self) -> bytes:
        chunks: list[bytes] = []
        total = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise _BodyError(ApiError(400, "Malformed chunked body.")) from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailers
                    pass
                return b"".join(chunks)
            total += size
            if total > MAX_BODY_BYTES:
                raise _BodyError(ApiError(413, "Request body too large."))
            chunks.append(self._read_exact(size))
            self.rfile.readline(1024)  # CRLF after the chunk

    def _send(self, response: Response) -> None:
        """Write status line, headers and body with one write (one segment when small)."""
        reason = self.responses.get(response.status, ("",))[0]
        headers = [
            f"{self.protocol_version} {response.status} {reason}",
            f"Server: {self.version_string()}",
            f"Date: {self.date_time_string()}",
            f"Content-Type: {response.content_type}; charset=utf-8",
            f"Content-Length: {len(response.body)}",
            f"x-request-id: req_{uuid.uuid4().hex}",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        if isinstance(response, StreamingResponse):  # stream=true: chunked, piece by piece
            headers = [h for h in headers if not h.startswith("Content-Length")]
            write_stream(self, response, headers)
            self.log_request(response.status)
            return
        if self.close_connection:
            headers.append("Connection: close")
        head = ("\r\n".join(headers) + "\r\n\r\n").encode("latin-1")
        try:
            self.wfile.write(head + response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        self.log_request(response.status)


class SimulatorServer:
    """An OpenAI-compatible simulator bound to ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        api_key: str | None = None,
        *,
        verbose: bool = False,
    ) -> None:
        self.state = SimState(latency_ms=latency_ms, api_key=api_key)
        self.router = build_router(self.state)
        self._httpd = _SimHTTPServer((host, port), self.state, self.router, verbose)
        self.host = host
        self.port: int = self._httpd.server_address[1]
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stopped = False

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT`` (control endpoints live under ``/_sim``)."""
        return f"http://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """The base URL for the ``openai`` client: ``http://HOST:PORT/v1``."""
        return f"{self.root_url}/v1"

    def start(self) -> SimulatorServer:
        """Serve in a background daemon thread; returns ``self``."""
        with self._lock:
            if self._stopped:
                raise RuntimeError("simulator server was stopped")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._httpd.serve_forever,
                    kwargs={"poll_interval": 0.1},
                    name=f"simulator-{self.port}",
                    daemon=True,
                )
                self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the socket and open connections. Idempotent."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            thread = self._thread
        if thread is not None:
            self._httpd.shutdown()
            thread.join()
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(
    host: str = "127.0.0.1",
    port: int = 0,
    latency_ms: float = 0,
    api_key: str | None = None,
    *,
    verbose: bool = False,
) -> SimulatorServer:
    """Start a simulator in a background thread; call ``.stop()`` when done."""
    return SimulatorServer(host, port, latency_ms, api_key, verbose=verbose).start()
