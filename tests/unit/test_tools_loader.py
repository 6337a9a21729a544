"""load_tool_modules: importing the modules named in AGENT_TOOL_MODULES."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from worker.tools import default_registry, load_tool_modules


@pytest.fixture
def module_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("zz_loader_")]:
        del sys.modules[name]


def test_loader_imports_modules_and_tolerates_whitespace(module_dir: Path) -> None:
    for name in ("zz_loader_a", "zz_loader_b"):
        # Each module registers into its own registry, leaving the default one alone.
        (module_dir / f"{name}.py").write_text(
            textwrap.dedent(
                f"""
                from worker.tools import ToolRegistry, tool

                REGISTRY = ToolRegistry()

                @tool(registry=REGISTRY)
                def {name}_tool(x: int) -> int:
                    return x
                """
            )
        )
    loaded = load_tool_modules(" zz_loader_a , ,zz_loader_b,zz_loader_a, ")
    assert loaded == ["zz_loader_a", "zz_loader_b"]
    assert sys.modules["zz_loader_a"].REGISTRY.names() == ["zz_loader_a_tool"]
    assert sys.modules["zz_loader_b"].REGISTRY.names() == ["zz_loader_b_tool"]


@pytest.mark.parametrize("spec", [None, "", " , "])
def test_loader_empty_spec(spec: str | None) -> None:
    assert load_tool_modules(spec) == []


def test_loader_missing_module_names_module_and_env_var() -> None:
    with pytest.raises(ImportError) as info:
        load_tool_modules("json, zz_no_such_tool_module")
    message = str(info.value)
    assert "'zz_no_such_tool_module'" in message
    assert "AGENT_TOOL_MODULES" in message
    assert info.value.name == "zz_no_such_tool_module"


def test_loader_broken_module_is_an_import_error(module_dir: Path) -> None:
    (module_dir / "zz_loader_broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ImportError, match=r"'zz_loader_broken'.*AGENT_TOOL_MODULES.*boom"):
        load_tool_modules("zz_loader_broken")


def test_tool_fixtures_module_registers_its_tools() -> None:
    assert load_tool_modules("tests.tool_fixtures") == ["tests.tool_fixtures"]
    for name in ("sleep_for", "fail_always", "lookup_order", "record_call", "echo"):
        assert name in default_registry
    lookup = default_registry.get("lookup_order")
    record = default_registry.get("record_call")
    assert lookup is not None and lookup.return_direct and lookup.idempotent
    assert record is not None and not record.idempotent and not record.return_direct
