"""A producer needs only celery, redis and pydantic: it never imports worker code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_producer_imports_no_worker_code_and_no_worker_dependencies() -> None:
    code = (
        "import json, sys\n"
        "import producer.client, producer.cli, producer.contracts, producer.jobstore\n"
        "print(json.dumps(sorted(m for m in sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, check=True)
    loaded = json.loads(done.stdout)
    heavy = [m for m in loaded if m.split(".")[0] in ("worker", "openai", "tiktoken", "simulator")]
    assert heavy == []
