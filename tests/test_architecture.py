"""The layout's rules (docs/architecture.md), checked on the source itself."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.importgraph import (
    cycles,
    external_imports,
    graph_build,
    package_graph,
    project_files,
    reachable,
)

ROOT = Path(__file__).resolve().parents[1]
MODULE_LIMIT = 400
COMMAND_LIMIT = 150
GRAPH = graph_build()


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


def test_the_import_graph_has_no_cycle_between_files() -> None:
    assert cycles(GRAPH) == []


def test_the_import_graph_has_no_cycle_between_packages() -> None:
    assert cycles(package_graph(GRAPH)) == []


def test_the_apps_import_each_other_one_way() -> None:
    apps = {m: {t.split(".")[0] for t in ts} - {m.split(".")[0]} for m, ts in GRAPH.items()}
    app_graph: dict[str, set[str]] = {}
    for module, targets in apps.items():
        app_graph.setdefault(module.split(".")[0], set()).update(targets)
    assert cycles(app_graph) == []
    assert app_graph["scaling"] == set()  # imports no app of the host (invariant 11)
    assert app_graph["academy"] == set()  # wiring: settings name apps by string only
    assert app_graph["video"] == {"scaling"}


def test_scaling_reaches_no_host_module_even_indirectly() -> None:
    offending = sorted(
        f"{module} -> {target}"
        for module in GRAPH
        if module.split(".")[0] == "scaling"
        for target in reachable(GRAPH, module)
        if target.split(".")[0] != "scaling"
    )
    assert offending == []


def test_the_host_uses_only_the_public_surface_of_scaling() -> None:
    offending = sorted(
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if module.split(".")[0] == "video"
        for target in targets
        if target.split(".")[0] == "scaling" and target != "scaling.api"
    )
    assert offending == []


@pytest.mark.parametrize(
    ("plant", "check"),
    [
        pytest.param(("scaling.port", "video.models"), "back-import", id="back-import"),
        pytest.param(("scaling.conf", "scaling.publishing.tick"), "cycle", id="file-cycle"),
        pytest.param(
            ("scaling.fleet.hook", "scaling.publishing.slots"), "package-cycle", id="pkg-cycle"
        ),
        pytest.param(("video.views", "scaling.fleet.protection"), "surface", id="inside-scaling"),
    ],
)
def test_the_checks_catch_a_planted_import(plant: tuple[str, str], check: str) -> None:
    """Each rule above fails on one planted import (so none of them passes vacuously)."""
    source, target = plant
    assert source in GRAPH
    assert target in GRAPH
    assert target not in GRAPH[source]
    planted = {m: set(ts) for m, ts in GRAPH.items()}
    planted[source].add(target)
    if check == "back-import":
        assert any(t.startswith("video") for t in reachable(planted, "scaling.tasks"))
    elif check == "cycle":
        assert cycles(planted)
    elif check == "package-cycle":
        assert cycles(package_graph(planted))
        assert not cycles(planted)  # only the package-level check sees this one
    else:
        assert any(t.split(".")[0] == "scaling" and t != "scaling.api" for t in planted[source])


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


WORKER_FILES = {"__init__", "client", "imds", "jobs", "keeper", "loop", "queue"}


def test_the_worker_package_is_django_free_in_every_file() -> None:
    """All of video/worker/, with what it reaches: no Django, no app, nothing of the
    video app outside video.worker (the worker distribution ships this folder alone)."""
    worker = {m: p for m, p in project_files().items() if m.startswith("video.worker")}
    # A file that moves or is renamed fails here instead of being skipped.
    assert {m.rsplit(".", 1)[-1] if m != "video.worker" else "__init__" for m in worker} == (
        WORKER_FILES
    )
    offending = sorted(
        f"{module}: {name}"
        for module, path in worker.items()
        for name in external_imports(path, module)
        if name in {"django", "scaling", "academy", "devstack", "celery"}
    )
    reached = {t for m in worker for t in reachable(GRAPH, m)}
    assert offending == []
    assert {t for t in reached if not t.startswith("video.worker")} == set()


ARCHITECTURE = ROOT / "docs" / "architecture.md"
_REFERENCE = re.compile(
    r"(?<![/\w.-])((?:scaling|video|devstack|academy|bench)(?:[./][a-z_][A-Za-z_]*)+)"
)


def _documented_modules() -> dict[str, Path]:
    return {
        module: path
        for module, path in project_files(packages=("scaling", "video", "devstack")).items()
        if not path.name.startswith("__") and "commands" not in path.parts
    }


def _named(module: str, text: str) -> bool:
    """Named as ``room.module`` / ``room/module`` or as an entry of the rooms tree
    (the module's name first on an indented line, then its purpose)."""
    *parents, stem = module.split(".")
    dotted = rf"\b{re.escape(parents[-1])}[./]{re.escape(stem)}\b"
    entry = rf"(?m)^\s+{re.escape(stem)}\s{{2,}}\S"
    return bool(re.search(dotted, text) or re.search(entry, text))


def test_the_architecture_page_names_every_module() -> None:
    text = ARCHITECTURE.read_text()
    missing = sorted(m for m in _documented_modules() if not _named(m, text))
    assert missing == []


def test_the_architecture_page_names_nothing_that_does_not_exist() -> None:
    """Every dotted or slashed path it mentions (scaling.publishing.tick,
    scaling/state.py, video.services.video_claim) starts with a real module."""
    modules = set(project_files())
    text = ARCHITECTURE.read_text()
    stale = set()
    for reference in _REFERENCE.findall(text):
        parts = reference.removesuffix(".py").replace("/", ".").split(".")
        # The longest prefix that is a module; a package root alone does not count
        # unless the reference is just the package (scaling/, video.models, ...).
        known = [".".join(parts[:n]) for n in range(len(parts), 0, -1)]
        hit = next((k for k in known if k in modules), None)
        if hit is None or (hit == parts[0] and len(parts) > 1 and parts[1] not in ("py",)):
            stale.add(reference)
    assert sorted(stale) == []
