"""deploy/systemd: the units say what they must, and systemd itself accepts them."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "deploy" / "systemd"
SERVICES = ("academy-gunicorn", "academy-celery-worker", "academy-celery-beat")
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectControlGroups": "yes",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "CapabilityBoundingSet": "",
    "UMask": "0027",
}


def unit_parse(path: Path) -> dict[str, dict[str, list[str]]]:
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    text = re.sub(r"\\\n\s*", " ", path.read_text())  # line continuations
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, _, value = line.partition("=")
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def _one(unit: dict[str, dict[str, list[str]]], section: str, key: str) -> str:
    [value] = unit[section][key]
    return value


@pytest.mark.parametrize("name", SERVICES)
def test_service_reads_the_env_file_restarts_and_is_hardened(name: str) -> None:
    unit = unit_parse(UNITS / f"{name}.service")

    assert _one(unit, "Service", "EnvironmentFile") == "/etc/academy/academy.env"
    assert _one(unit, "Service", "User") == "academy"
    assert _one(unit, "Service", "Restart") in ("on-failure", "always")
    assert int(_one(unit, "Service", "RestartSec")) >= 1
    assert int(_one(unit, "Unit", "StartLimitBurst")) >= 1
    assert _one(unit, "Service", "ReadWritePaths") == "/srv/academy/var"
    for key, value in HARDENING.items():
        assert _one(unit, "Service", key) == value, key
    assert "academy-env-from-ssm.service" in _one(unit, "Unit", "After")


def test_beat_says_one_per_environment() -> None:
    beat = unit_parse(UNITS / "academy-celery-beat.service")

    assert _one(beat, "Unit", "Description") == (
        "Academy Celery beat (exactly ONE per environment: enable on one host only)"
    )
    assert shlex.split(_one(beat, "Service", "ExecStart"))[1:] == [
        "-A",
        "academy",
        "beat",
        "--loglevel",
        "INFO",
        "--pidfile=",
    ]
    # Not pulled in by academy.target, so enabling the stack on a host never adds a beat.
    target = unit_parse(UNITS / "academy.target")
    assert "academy-celery-beat.service" not in _one(target, "Unit", "Wants")
    assert "ONE per environment" in (REPO / "docs" / "audit-and-deploy.md").read_text()


def test_worker_runs_the_academy_celery_app() -> None:
    worker = unit_parse(UNITS / "academy-celery-worker.service")

    argv = shlex.split(_one(worker, "Service", "ExecStart"))
    assert argv[:4] == ["/srv/academy/venv/bin/celery", "-A", "academy", "worker"]
    assert "academy-worker@%H" in argv
    # Long enough for a running task to reach its hard time limit (55 s).
    assert int(_one(worker, "Service", "TimeoutStopSec")) > 55


def test_gunicorn_listens_where_nginx_proxies() -> None:
    gunicorn = unit_parse(UNITS / "academy-gunicorn.service")
    nginx = (REPO / "deploy" / "nginx" / "academy-api.conf").read_text()

    argv = shlex.split(_one(gunicorn, "Service", "ExecStart"))
    assert argv[:2] == ["/srv/academy/venv/bin/gunicorn", "academy.wsgi:application"]
    bind = argv[argv.index("--bind") + 1]
    assert f"server {bind} " in nginx
    assert _one(gunicorn, "Service", "Type") == "notify"


def test_systemd_accepts_the_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    venv = Path(sys.executable).parent.parent
    copies = []
    for unit in sorted(UNITS.iterdir()):
        copy = tmp_path / unit.name
        copy.write_text(unit.read_text().replace("/srv/academy/venv", str(venv)))
        copies.append(str(copy))

    result = subprocess.run(
        [analyze, "verify", *copies], capture_output=True, text=True, timeout=60
    )

    assert (result.returncode, result.stderr, result.stdout) == (0, "", "")
