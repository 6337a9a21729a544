"""A worker refuses to start with a tool module it cannot import, and says why."""

from __future__ import annotations

import pytest

from producer.devstack import DevStack, ProcessExitedError

pytestmark = pytest.mark.integration


def test_unimportable_tool_module_stops_the_worker_with_a_clear_error(stack: DevStack) -> None:
    with pytest.raises(ProcessExitedError) as raised:
        stack.start_worker(["agents"], 1, "broken",
                           env={"AGENT_TOOL_MODULES": "tests.tool_fixtures, no_such_tools"},
                           timeout=60)
    message = str(raised.value)
    assert "cannot import tool module 'no_such_tools' listed in AGENT_TOOL_MODULES" in message
