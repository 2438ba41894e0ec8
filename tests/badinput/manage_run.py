"""``manage.py`` in a subprocess, as an operator runs it, with only the env a case gives."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.academy.env_names import BASE_DIR, settings_env_names

# A production-shaped environment: DEBUG off, so every setting that production
# reads is read. The database is never connected to by `check`.
PRODUCTION_ENV = {
    "DEBUG": "false",
    "SECRET_KEY": "bad-input-table-k3y-0123456789-abcdefghijklmnopqrstuvwxyz-ABCDEFG",
    "ALLOWED_HOSTS": "api.academy.example",
    "INTERNAL_API_KEY": "bad-input-table-internal-key",
    "WORKER_API_KEY": "bad-input-table-worker-key",
    "DATABASE_URL": "postgres://academy:change-me@127.0.0.1:5432/academy",
    "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
}


def env_clean(tmp_path: Path) -> dict[str, str]:
    """This process's environment without anything settings read (the developer's or CI's)."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in settings_env_names() and key != "DJANGO_SETTINGS_MODULE"
    }
    clean["ACADEMY_VAR_DIR"] = str(tmp_path / "var")
    return clean


def manage_run(
    argv: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=BASE_DIR,
        env={**env_clean(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
