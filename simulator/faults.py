"""Fault injection for the model endpoints: errors, 429s, slow replies, dropped connections.

Configured at start-up (``python -m simulator --error-rate 0.2 ...``) or at run time with
``POST /_sim/faults`` (``GET`` reads the configuration and counters; ``/_sim/reset``
clears both). Each request to a faulted path draws once: with probability ``drop_rate``
the connection is closed without a response, else with ``rate_limit_rate`` a 429 with
``retry-after-ms``/``retry-after`` headers, else with ``error_rate`` an error with
``error_status``. Independently, with ``slow_rate`` the request waits ``slow_ms`` first.
``seed`` makes the sequence of draws repeatable. Control paths (``/_sim``) are never faulted.
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from simulator.errors import ApiError, bad_request, error_body
from simulator.routing import Request, Response, Router, json_response

if TYPE_CHECKING:
    from simulator.state import SimState

DEFAULT_PATHS: tuple[str, ...] = ("/v1/chat/completions", "/v1/responses", "/v1/threads")
_CONTROL_PREFIX = "/_sim"
_MAX_ARRIVALS = 10_000
_RATES = ("error_rate", "rate_limit_rate", "slow_rate", "drop_rate")


class DropConnection(Exception):
    """Close the client's connection without writing a response."""


@dataclass(frozen=True)
class FaultConfig:
    """What to inject. Rates are probabilities in [0, 1]; the three outcome rates add up
    to at most 1. ``paths`` are prefixes: ``/v1/threads`` covers every thread route."""

    error_rate: float = 0.0
    error_status: int = 500
    rate_limit_rate: float = 0.0
    retry_after_ms: int = 1000
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    drop_rate: float = 0.0
    seed: int | None = None
    paths: tuple[str, ...] = DEFAULT_PATHS

    def __post_init__(self) -> None:
        for name in _RATES:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")
        if self.error_rate + self.rate_limit_rate + self.drop_rate > 1.0 + 1e-9:
            raise ValueError("error_rate + rate_limit_rate + drop_rate must not exceed 1")
        if not 400 <= self.error_status <= 599:
            raise ValueError(f"error_status must be an HTTP error status, got {self.error_status}")
        if self.retry_after_ms < 0 or self.slow_ms < 0:
            raise ValueError("retry_after_ms and slow_ms must be >= 0")
        for path in self.paths:
            if not path.startswith("/") or path.startswith(_CONTROL_PREFIX):
                raise ValueError(f"fault path {path!r} must start with '/' and not be /_sim")

    @property
    def active(self) -> bool:
        return any(getattr(self, name) > 0 for name in _RATES)

    def applies_to(self, path: str) -> bool:
        if path.startswith(_CONTROL_PREFIX):
            return False
        return any(path == p or path.startswith(p.rstrip("/") + "/") for p in self.paths)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["paths"] = list(self.paths)
        return data


def parse_config(raw: Any, base: FaultConfig | None = None) -> FaultConfig:
    """A FaultConfig from a JSON object; keys left out keep ``base``'s values.

    Raises ValueError with a readable message naming the offending key.
    """
    if not isinstance(raw, dict):
        raise ValueError("the fault configuration must be a JSON object")
    base = base or FaultConfig()
    known = set(FaultConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown fault keys: {unknown}; known: {sorted(known)}")
    changes: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "paths":
            if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
                raise ValueError("'paths' must be a list of path prefixes")
            changes[key] = tuple(value)
        elif key == "seed":
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise ValueError("'seed' must be an integer or null")
            changes[key] = value
        elif key in ("error_status", "retry_after_ms"):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{key!r} must be an integer")
            changes[key] = value
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key!r} must be a number")
            changes[key] = float(value)
    return replace(base, **changes)


@dataclass(frozen=True)
class Fault:
    """The decision for one request: an optional delay, then at most one outcome."""

    delay_ms: float = 0.0
    outcome: str | None = None  # "drop", "rate_limit" or "error"


@dataclass
class _Stats:
    requests: int = 0
    error: int = 0
    rate_limit: int = 0
    slow: int = 0
    drop: int = 0
    arrivals: deque[float] = field(default_factory=lambda: deque(maxlen=_MAX_ARRIVALS))


class Faults:
    """The live fault configuration with its random source and counters (thread-safe)."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._lock = threading.Lock()
        self._config = config or FaultConfig()
        self._random = random.Random(self._config.seed)
        self._stats = _Stats()

    @property
    def config(self) -> FaultConfig:
        with self._lock:
            return self._config

    def configure(self, config: FaultConfig) -> None:
        """Replace the configuration; reseeds the random source and zeroes the counters."""
        with self._lock:
            self._config = config
            self._random = random.Random(config.seed)
            self._stats = _Stats()

    def clear(self) -> None:
        self.configure(FaultConfig())

    def decide(self, path: str) -> Fault | None:
        """The fault for a request to ``path``, or None (also counts the request)."""
        with self._lock:
            config = self._config
            if not config.applies_to(path):
                return None
            stats = self._stats
            stats.requests += 1
            stats.arrivals.append(time.time())
            if not config.active:
                return None
            draw = self._random.random()
            slow = self._random.random() < config.slow_rate
            outcome: str | None = None
            for name, rate in (
                ("drop", config.drop_rate),
                ("rate_limit", config.rate_limit_rate),
                ("error", config.error_rate),
            ):
                if draw < rate:
                    outcome = name
                    break
                draw -= rate
            if slow:
                stats.slow += 1
            if outcome is not None:
                setattr(stats, outcome, getattr(stats, outcome) + 1)
        if outcome is None and not slow:
            return None
        return Fault(delay_ms=config.slow_ms if slow else 0.0, outcome=outcome)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            s = self._stats
            return {
                "requests": s.requests, "error": s.error, "rate_limit": s.rate_limit,
                "slow": s.slow, "drop": s.drop, "arrivals": list(s.arrivals),
            }  # fmt: skip

    def apply(self, path: str) -> Response | None:
        """Run the fault for a request: sleep, then a response to send instead of the
        handler's, ``DropConnection``, or None to handle the request normally."""
        fault = self.decide(path)
        if fault is None:
            return None
        if fault.delay_ms > 0:
            time.sleep(fault.delay_ms / 1000.0)
        config = self.config
        if fault.outcome == "drop":
            raise DropConnection(path)
        if fault.outcome == "rate_limit":
            ms = config.retry_after_ms
            error = ApiError(
                429, "Rate limit reached (injected by the simulator).",
                type="requests", code="rate_limit_exceeded",
            )  # fmt: skip
            headers = (("retry-after-ms", str(ms)), ("retry-after", str(math.ceil(ms / 1000))))
            return replace(json_response(error.body(), status=429), headers=headers)
        if fault.outcome == "error":
            status = config.error_status
            return json_response(
                error_body(
                    f"Injected fault: the simulator answered {status}.",
                    type="server_error" if status >= 500 else "invalid_request_error",
                ),
                status=status,
            )
        return None


def register(router: Router, state: SimState) -> None:
    """Add ``GET``/``POST /_sim/faults`` (a POST replaces the whole configuration)."""

    def read(_: Request) -> Response:
        faults = state.faults
        return json_response({"config": faults.config.to_json(), "stats": faults.stats()})

    def write(request: Request) -> Response:
        try:
            config = parse_config(request.json_object())
        except ValueError as error:
            raise bad_request(str(error)) from None
        state.faults.configure(config)
        return json_response({"config": config.to_json(), "stats": state.faults.stats()})

    router.add("GET", "/_sim/faults", read, auth=False)
    router.add("POST", "/_sim/faults", write, auth=False)


def add_fault_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``--error-rate`` ... flags of ``python -m simulator``."""
    group = parser.add_argument_group("fault injection (model endpoints only)")
    group.add_argument("--error-rate", type=float, default=0.0,
                       help="share of requests answered with --error-status")
    group.add_argument("--error-status", type=int, default=500)
    group.add_argument("--rate-limit-rate", type=float, default=0.0,
                       help="share of requests answered 429 with retry-after headers")
    group.add_argument("--retry-after-ms", type=int, default=1000)
    group.add_argument("--slow-rate", type=float, default=0.0,
                       help="share of requests delayed by --slow-ms first")
    group.add_argument("--slow-ms", type=float, default=0.0)
    group.add_argument("--drop-rate", type=float, default=0.0,
                       help="share of requests whose connection is closed without a response")
    group.add_argument("--fault-seed", type=int, default=None, help="repeatable draws")
    group.add_argument("--fault-paths", default=",".join(DEFAULT_PATHS),
                       help="comma-separated path prefixes the faults apply to")


def fault_config_from_args(args: argparse.Namespace) -> FaultConfig:
    """The configuration the flags describe; ValueError names what is wrong."""
    return FaultConfig(
        error_rate=args.error_rate, error_status=args.error_status,
        rate_limit_rate=args.rate_limit_rate, retry_after_ms=args.retry_after_ms,
        slow_rate=args.slow_rate, slow_ms=args.slow_ms, drop_rate=args.drop_rate,
        seed=args.fault_seed,
        paths=tuple(p.strip() for p in args.fault_paths.split(",") if p.strip()),
    )  # fmt: skip
