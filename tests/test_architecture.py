"""The layout's rules (docs/architecture.md), checked on the source itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MODULE_LIMIT = 400
COMMAND_LIMIT = 150


def _python_files(*folders: str) -> list[Path]:
    return sorted(
        p
        for folder in folders
        for p in (ROOT / folder).rglob("*.py")
        if "migrations" not in p.parts
    )


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_no_module_in_the_apps_academy_or_devstack_is_over_the_limit() -> None:
    too_long = {
        str(p.relative_to(ROOT)): _lines(p)
        for p in _python_files("scaling", "academy", "devstack", "video")
        if _lines(p) > MODULE_LIMIT
    }
    assert too_long == {}


def test_management_commands_are_thin() -> None:
    commands = [*ROOT.glob("*/management/commands/*.py")]
    too_long = {str(p.relative_to(ROOT)): _lines(p) for p in commands if _lines(p) > COMMAND_LIMIT}
    assert commands
    assert too_long == {}


@pytest.mark.parametrize(
    ("folders", "forbidden"),
    [
        pytest.param(("academy",), ("scaling", "video", "devstack"), id="academy-is-wiring"),
        pytest.param(("bench", "devstack"), ("tests",), id="no-tests-in-bench-or-devstack"),
        pytest.param(("scaling", "video"), ("academy.envparse", "devstack"), id="apps-stand-alone"),
        pytest.param(
            ("video",),
            ("scaling.publishing", "scaling.policy", "scaling.simulation"),
            id="video-below-scaling",
        ),
    ],
)
def test_imports_point_one_way(folders: tuple[str, ...], forbidden: tuple[str, ...]) -> None:
    offending = sorted(
        f"{p.relative_to(ROOT)} imports {name}"
        for p in _python_files(*folders)
        for name in _imports(p)
        if any(name == f or name.startswith(f + ".") for f in forbidden)
    )
    assert offending == []


def test_only_the_simulation_imports_the_simulator() -> None:
    allowed = {ROOT / "scaling" / "management" / "commands" / "simulate_scaling.py"}
    offending = sorted(
        str(p.relative_to(ROOT))
        for p in _python_files("scaling")
        if "simulation" not in p.parts
        and p not in allowed
        and any(n.startswith("scaling.simulation") for n in _imports(p))
    )
    assert offending == []


def test_the_worker_client_imports_no_django() -> None:
    client = ROOT / "video" / "worker" / "client.py"
    if not client.exists():
        pytest.skip("video/worker/client.py not built yet")
    assert not {n for n in _imports(client) if n.split(".")[0] in {"django", "scaling", "academy"}}
