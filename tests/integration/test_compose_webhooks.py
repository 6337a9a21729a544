"""docker-compose passes the webhook settings: the secret to the workers only, the allowed
hosts to the workers and the gateway (which refuses other hosts at submit)."""

from __future__ import annotations

import pytest

from tests.integration.test_compose import resolved

pytestmark = pytest.mark.integration


def test_webhook_settings_reach_the_services_that_use_them() -> None:
    services = resolved(AGENT_WEBHOOK_SECRET="whsec_c2VjcmV0",
                        AGENT_WEBHOOK_ALLOWED_HOSTS="hooks.example.com",
                        AGENT_MAX_TOKENS_PARAM="max_tokens")["services"]
    for name in ("worker", "tools-worker"):
        env = services[name]["environment"]
        assert env["AGENT_WEBHOOK_SECRET"] == "whsec_c2VjcmV0"
        assert env["AGENT_WEBHOOK_ALLOWED_HOSTS"] == "hooks.example.com"
        assert env["AGENT_MAX_TOKENS_PARAM"] == "max_tokens"
    assert services["gateway"]["environment"]["AGENT_WEBHOOK_ALLOWED_HOSTS"] == \
        "hooks.example.com"
    for name in ("gateway", "flower", "simulator"):
        assert "AGENT_WEBHOOK_SECRET" not in services[name].get("environment", {})
    defaults = resolved()["services"]["worker"]["environment"]
    assert defaults["AGENT_MAX_TOKENS_PARAM"] == "max_completion_tokens"
