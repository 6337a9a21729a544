"""Run the system's processes locally: Redis, the OpenAI simulator and Celery workers.

Standard library only. Used by the demo command, the integration-test fixtures, the
benchmarks and ``celery-agents dev``::

    with DevStack(echo=True) as stack:
        stack.start_redis()
        stack.start_simulator()
        stack.start_worker(["agents"], concurrency=None, name="w1")  # the deployment's pool
        ...  # stack.env() holds REDIS_URL, OPENAI_BASE_URL and OPENAI_API_KEY

Every process runs in its own process group with its log in the stack's run directory;
:meth:`DevStack.stop_all` (also run at exit) stops them in reverse start order.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from producer.deployment import profile_for
from producer.devstack_process import ManagedProcess, ProcessExitedError, free_port
from producer.devstack_redis import (
    RedisTLS,
    find_redis_server,
    redis_argv,
    redis_ping,
    wait_for_redis,
)

__all__ = [
    "DEFAULT_OPENAI_API_KEY",
    "PROJECT_ROOT",
    "DevStack",
    "ManagedProcess",
    "ProcessExitedError",
    "RedisTLS",
    "free_port",
    "redis_ping",
]

DEFAULT_OPENAI_API_KEY = "sk-sim-local-not-a-secret"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
_PORT_ATTEMPTS = 3  # a port picked by free_port() can be taken before the server binds it


class DevStack:
    """The processes of a local system, started builder-style; a context manager.

    ``run_dir`` holds logs and Redis data; by default a new temporary directory that
    :meth:`close` removes (unless ``keep_run_dir``). ``echo`` is the default for the start
    methods' ``echo``: copy each log line to our stdout as ``[name] line``.
    """

    def __init__(
        self,
        run_dir: str | Path | None = None,
        *,
        echo: bool = False,
        keep_run_dir: bool = False,
        project_root: str | Path | None = None,
    ) -> None:
        self._own_run_dir = run_dir is None
        if run_dir is None:
            run_dir = tempfile.mkdtemp(prefix="celery-agents-")
        self.run_dir = Path(run_dir)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.echo = echo
        self.keep_run_dir = keep_run_dir
        self.project_root = Path(project_root) if project_root is not None else PROJECT_ROOT
        self.processes: list[ManagedProcess] = []
        self.extra_env: dict[str, str] = {}
        self.redis: ManagedProcess | None = None
        self.redis_url: str | None = None
        self.redis_port: int | None = None
        self.redis_password: str | None = None
        self.redis_tls: RedisTLS | None = None
        self.simulator: ManagedProcess | None = None
        self.simulator_url: str | None = None
        self.workers: list[ManagedProcess] = []
        self._closed = False
        atexit.register(self.close)

    def __enter__(self) -> DevStack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- environment ---------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        """The variables the stack's processes share (not os.environ itself).

        REDIS_URL and OPENAI_BASE_URL once started; OPENAI_API_KEY is the simulator's
        placeholder only when the environment has none; then ``extra_env``.
        """
        env: dict[str, str] = {}
        if self.redis_url is not None:
            env["REDIS_URL"] = self.redis_url
        if self.simulator_url is not None:
            env["OPENAI_BASE_URL"] = self.simulator_url
        if not os.environ.get("OPENAI_API_KEY"):
            env["OPENAI_API_KEY"] = DEFAULT_OPENAI_API_KEY
        env.update(self.extra_env)
        return env

    def python_env(self, env: Mapping[str, str] | None = None) -> dict[str, str]:
        root = str(self.project_root)
        path = os.environ.get("PYTHONPATH")
        return {
            **self.env(),
            **(env or {}),
            "PYTHONPATH": root if not path else f"{root}{os.pathsep}{path}",
            "PYTHONUNBUFFERED": "1",
        }

    # -- generic -------------------------------------------------------------------------

    def start_process(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
        echo: bool | None = None,
        ready_log: str | None = None,
        timeout: float = 30.0,
    ) -> ManagedProcess:
        """Start any process under the stack (log ``<run dir>/<name>.log``).

        With ``ready_log``, wait until that regex appears in its log; on failure the
        process is stopped and the error (with the log tail) raised.
        """
        if self._closed:
            raise RuntimeError("DevStack is closed")
        taken = {p.name for p in self.processes}
        unique, n = name, 2
        while unique in taken:
            unique, n = f"{name}-{n}", n + 1
        proc = ManagedProcess(
            unique,
            argv,
            log_path=self.run_dir / f"{unique}.log",
            env=env,
            cwd=cwd,
            echo_prefix=f"[{unique}] " if (self.echo if echo is None else echo) else None,
        )
        proc.start()
        self.processes.append(proc)
        if ready_log is not None:
            try:
                proc.wait_for_log(ready_log, timeout)
            except BaseException:
                self._discard(proc)
                raise
        return proc

    def _discard(self, proc: ManagedProcess) -> None:
        proc.stop(timeout=5)
        if proc in self.processes:
            self.processes.remove(proc)

    # -- redis ---------------------------------------------------------------------------

    def start_redis(
        self,
        port: int | None = None,
        appendonly: bool = False,
        password: str | None = None,
        *,
        tls: RedisTLS | None = None,
        echo: bool | None = None,
        timeout: float = 15.0,
    ) -> str:
        """Run ``redis-server`` on 127.0.0.1; returns ``redis://[:password@]127.0.0.1:PORT/0``.

        With ``tls`` it listens for TLS only and the URL is
        ``rediss://[:password@]127.0.0.1:PORT/0?ssl_cert_reqs=required&ssl_ca_certs=CA``.
        """
        if self.redis is not None and self.redis.alive:
            raise RuntimeError(f"this stack already runs redis at {self.redis_url}")
        binary = find_redis_server()
        attempts = 1 if port is not None else _PORT_ATTEMPTS
        for attempt in range(attempts):
            chosen = port if port is not None else free_port()
            argv = redis_argv(binary, chosen, self.run_dir, appendonly, password, tls)
            proc = self.start_process("redis", argv, echo=echo)
            try:
                wait_for_redis(proc, chosen, password, timeout, tls)
            except ProcessExitedError:
                self._discard(proc)
                if attempt + 1 >= attempts:
                    raise
                continue
            except BaseException:
                self._discard(proc)
                raise
            self.redis, self.redis_port, self.redis_password = proc, chosen, password
            self.redis_tls = tls
            auth = f":{quote(password, safe='')}@" if password is not None else ""
            self.redis_url = f"redis://{auth}127.0.0.1:{chosen}/0"
            if tls is not None:
                ca = quote(str(tls.ca_file), safe="")
                self.redis_url = (
                    f"rediss://{auth}127.0.0.1:{chosen}/0"
                    f"?ssl_cert_reqs=required&ssl_ca_certs={ca}"
                )
            return self.redis_url
        raise AssertionError("unreachable")

    def restart_redis(self, *, kill: bool = False, timeout: float = 15.0) -> str:
        """Stop Redis (SIGTERM, or SIGKILL with ``kill``) and start it again on the same port.

        Data survives only with ``appendonly=True``. The log file is appended to.
        """
        old = self.redis
        if old is None or self.redis_port is None:
            raise RuntimeError("redis was not started by this stack")
        if kill:
            old.kill()
        else:
            old.stop()
        proc = ManagedProcess(
            old.name,
            old.argv,
            log_path=old.log_path,
            env=old.env,
            cwd=old.cwd,
            echo_prefix=old.echo_prefix,
        )
        proc.start()
        self.processes[self.processes.index(old)] = proc  # keep its place in the stop order
        self.redis = proc
        wait_for_redis(proc, self.redis_port, self.redis_password, timeout, self.redis_tls)
        assert self.redis_url is not None
        return self.redis_url

    # -- simulator and workers -----------------------------------------------------------

    def start_simulator(
        self,
        port: int | None = None,
        latency_ms: int = 0,
        *,
        echo: bool | None = None,
        timeout: float = 30.0,
    ) -> str:
        """Run ``python -m simulator``; returns its base URL ``http://127.0.0.1:PORT/v1``."""
        if self.simulator is not None and self.simulator.alive:
            raise RuntimeError(f"this stack already runs the simulator at {self.simulator_url}")
        chosen = port if port is not None else free_port()
        argv = [
            sys.executable, "-m", "simulator",
            "--host", "127.0.0.1",
            "--port", str(chosen),
            "--latency-ms", str(latency_ms),
        ]  # fmt: skip
        self.simulator = self.start_process(
            "simulator",
            argv,
            env=self.python_env(),
            cwd=self.project_root,
            echo=echo,
            ready_log=r"simulator listening on",
            timeout=timeout,
        )
        self.simulator_url = f"http://127.0.0.1:{chosen}/v1"
        return self.simulator_url

    def start_worker(
        self,
        queues: Sequence[str],
        concurrency: int | None,
        name: str,
        env: Mapping[str, str] | None = None,
        loglevel: str = "INFO",
        *,
        pool: str | None = None,
        echo: bool | None = None,
        timeout: float = 60.0,
        include: Sequence[str] = (),
    ) -> ManagedProcess:
        """Run a Celery worker (``celery -A worker worker``) and wait for ``ready.``.

        ``pool`` and ``concurrency`` default to the deployment's (producer/deployment.py:
        threads for the agents queue, prefork for tools). Its environment: os.environ,
        then :meth:`env`, then ``env``; cwd and PYTHONPATH are the project root.
        Readiness is read from the INFO log, so ``loglevel`` must be DEBUG or INFO.
        ``include``: more task modules to load (``--include``), as the benchmarks do.
        """
        if loglevel.upper() not in ("DEBUG", "INFO"):
            raise ValueError(f"loglevel {loglevel!r}: the worker's 'ready.' line needs INFO")
        profile = profile_for(list(queues))
        argv = [
            sys.executable, "-m", "celery",
            "-A", "worker", "worker",
            "-Q", ",".join(queues),
            "-P", pool or profile.pool,
            "-c", str(concurrency or profile.concurrency),
            "-n", f"{name}@%h",
            "--loglevel", loglevel,
            "--without-mingle", "--without-gossip",  # events: AGENT_TASK_EVENTS
        ]  # fmt: skip
        if include:
            argv += ["--include", ",".join(include)]
        proc = self.start_process(
            name,
            argv,
            env=self.python_env(env),
            cwd=self.project_root,
            echo=echo,
            ready_log=r"ready\.",
            timeout=timeout,
        )
        self.workers.append(proc)
        return proc

    # -- running and stopping ------------------------------------------------------------

    def wait_any_exit(self, timeout: float | None = None) -> ManagedProcess | None:
        """Block until one of the stack's processes exits; returns it (None on timeout)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            for proc in self.processes:
                if not proc.alive:
                    return proc
            if deadline is not None and time.monotonic() >= deadline:
                return None
            time.sleep(0.2)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Stop every process: all but Redis at once (each worker's warm shutdown takes a
        second or two, so one after another adds up), then Redis, which they need until
        they are gone."""
        last = [p for p in self.processes if p is self.redis]
        first = [p for p in reversed(self.processes) if p is not self.redis]
        if first:
            with ThreadPoolExecutor(max_workers=len(first)) as pool:
                list(pool.map(lambda proc: proc.stop(timeout), first))
        for proc in last:
            proc.stop(timeout)

    def close(self) -> None:
        """Stop everything and remove a temporary run directory; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.close)
        self.stop_all()
        if self._own_run_dir and not self.keep_run_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)
