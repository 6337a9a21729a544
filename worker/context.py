"""What a worker process's tasks share: settings, stores, tool registry, model client.

Built on first use inside the pool process (after the fork), so no connection or
HTTP client is inherited across processes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache, cached_property

import openai

from producer.contracts import ChatMessage
from producer.jobstore import JobStore, connect
from producer.session_order import SessionOrder
from producer.tool_registry import ToolRegistryStore
from worker.assistant.store import RunStore
from worker.model_client import make_client
from worker.model_clients import ModelClients
from worker.rate_limit import ModelRateLimiter, RateLimits
from worker.settings import WorkerSettings
from worker.tokens import message_token_bound, message_tokens, text_counter
from worker.tool_catalog import LiveCatalog
from worker.tool_claims import ToolClaims
from worker.tools import ToolRegistry, default_registry
from worker.turn_store import TurnStore


@dataclass
class WorkerContext:
    settings: WorkerSettings
    registry: ToolRegistry = field(default_factory=lambda: default_registry)

    @cached_property
    def jobs(self) -> JobStore:
        # Ending a job (or finding it ended) releases its session to the next job.
        return JobStore(
            connect(self.settings.redis_url),
            on_finished=lambda job_id, session_id: self.order.release(job_id, session_id),
        )

    @cached_property
    def order(self) -> SessionOrder:
        from worker.app import app  # the app imports the tasks, which import this module

        return SessionOrder(self.jobs.redis, app)

    @cached_property
    def turns(self) -> TurnStore:
        return TurnStore(self.jobs.redis)

    @cached_property
    def claims(self) -> ToolClaims:
        """At-most-once claims on calls of non-idempotent tools."""
        return ToolClaims(self.jobs.redis)

    @cached_property
    def runs(self) -> RunStore:
        """Assistant-mode runs: states, the due set, session ids, the assistant cache."""
        return RunStore(self.jobs.redis)

    @cached_property
    def rate_limiter(self) -> ModelRateLimiter:
        limits = RateLimits(self.settings.model_rpm, self.settings.model_rpm_overrides)
        return ModelRateLimiter(self.jobs.redis, limits, self.settings.model_rate_max_wait)

    @cached_property
    def model_clients(self) -> ModelClients:
        timeout = self.settings.model_timeout
        return ModelClients(lambda keepalive: make_client(timeout, keepalive))

    @property
    def model(self) -> openai.OpenAI:
        """The model client of the calling thread (shared by a few pool threads)."""
        return self.model_clients.get()

    def warm_up(self) -> None:
        """Build the Redis and model clients now, not during a job's first step."""
        self.jobs.redis.ping()
        # Not the tokenizer: it loads when a history first comes near its window
        # (worker/tokens.py), and most never do.
        _ = self.turns, self.model.chat.completions  # the client imports lazily

    def count_message(self, message: ChatMessage) -> int:
        return message_tokens(message, text_counter(self.settings.tokenizer))

    @staticmethod
    def bound_message(message: ChatMessage) -> int:
        """Never fewer tokens than :meth:`count_message`, with no tokenizer."""
        return message_token_bound(message)

    @cached_property
    def catalog(self) -> LiveCatalog:
        """The live tool registry in Redis: schemas, flags and queues of served tools.
        ``registry`` holds only the tools this process itself can run."""
        return LiveCatalog(ToolRegistryStore(self.jobs.redis))

    @property
    def return_direct_tools(self) -> frozenset[str]:
        """Tools whose output ends the turn, as the registry announces them."""
        return self.catalog.return_direct()


@cache
def get_context() -> WorkerContext:
    return WorkerContext(WorkerSettings.from_env())
