"""Build the wheels another project installs: ``scaling`` and the worker client.

    python packaging/build.py [--out DIR] [scaling] [worker]      (make dists)

Each distribution's metadata is ``packaging/<name>/pyproject.toml``. Its package
folder is copied beside that file in a temporary directory (no ``__pycache__``,
plus an empty ``py.typed``), and ``pip wheel --no-deps`` builds it there, so the
root pyproject.toml stays the ``academy`` project. Prints each wheel's path.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "packaging"
# distribution -> (the folder it ships, the name it is imported by)
DISTS = {
    "scaling": (ROOT / "scaling", "scaling"),
    "worker": (ROOT / "video" / "worker", "academy_worker"),
}
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def _setuptools_is_recent() -> bool:
    """setuptools>=68 here: build without isolation (no download); else pip fetches it."""
    try:
        major = int(metadata.version("setuptools").split(".")[0])
    except (metadata.PackageNotFoundError, ValueError):
        return False
    return major >= 68


def wheel_build(name: str, out: Path) -> Path:
    """Build distribution ``name`` into ``out``; the wheel's path."""
    folder, import_name = DISTS[name]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"dist-{name}-") as tmp:
        stage = Path(tmp)
        shutil.copy2(HERE / name / "pyproject.toml", stage / "pyproject.toml")
        shutil.copytree(folder, stage / import_name, ignore=IGNORE)
        (stage / import_name / "py.typed").touch()
        project = tomllib.loads((stage / "pyproject.toml").read_text())["project"]
        command = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps"]
        if _setuptools_is_recent():
            command.append("--no-build-isolation")
        subprocess.run([*command, "--wheel-dir", str(out), str(stage)], check=True)
    stem = f"{project['name'].replace('-', '_')}-{project['version']}-"
    built = sorted(out.glob(f"{stem}*.whl"))
    if not built:
        raise SystemExit(f"pip wheel built no {stem}*.whl in {out}")
    return built[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="name", help="scaling, worker [both]")
    parser.add_argument("--out", type=Path, default=ROOT / "dist", help="[dist/]")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(DISTS))
    if unknown:
        parser.error(f"no distribution {', '.join(unknown)}: choose from {', '.join(DISTS)}")
    for name in args.names or list(DISTS):
        print(wheel_build(name, args.out.resolve()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
