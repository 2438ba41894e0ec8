"""Settings as an operator meets them: manage.py run in a subprocess."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.academy.env_names import BASE_DIR, settings_env_names

PLACEHOLDER_DATABASE_URL = "postgres://academy:change-me@127.0.0.1:5432/academy"


def _manage(
    args: list[str], env: dict[str, str], tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    # Start from this process's environment without anything settings read,
    # so the developer's or CI's variables cannot leak into the case.
    clean = {
        key: value
        for key, value in os.environ.items()
        if key not in settings_env_names() and key != "DJANGO_SETTINGS_MODULE"
    }
    clean["ACADEMY_VAR_DIR"] = str(tmp_path / "var")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _production_env() -> dict[str, str]:
    database_url = os.environ.get("DATABASE_URL", "")
    return {
        "DEBUG": "false",
        "SECRET_KEY": secrets.token_urlsafe(50),
        "ALLOWED_HOSTS": "api.academy.example",
        "INTERNAL_API_KEY": secrets.token_urlsafe(32),
        "WORKER_API_KEY": secrets.token_urlsafe(32),
        "DATABASE_URL": (
            database_url if database_url.startswith("postgres") else PLACEHOLDER_DATABASE_URL
        ),
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    }


def test_check_deploy_passes_with_production_settings(tmp_path: Path) -> None:
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], _production_env(), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"
    assert result.stderr == ""


def test_check_deploy_warns_without_internal_api_key(tmp_path: Path) -> None:
    env = _production_env()
    del env["INTERNAL_API_KEY"]
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 1
    assert (
        "?: (scaling.W001) No internal API key is configured: the internal backlog endpoint "
        "refuses every request.\n"
        "\tHINT: Set INTERNAL_API_KEY (several keys comma-separated for rotation).\n"
    ) in result.stderr


def test_old_internal_key_name_is_still_read(tmp_path: Path) -> None:
    env = _production_env()
    env["LAMBDA_INTERNAL_API_KEY"] = env.pop("INTERNAL_API_KEY")
    result = _manage(["check", "--deploy", "--fail-level", "WARNING"], env, tmp_path)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "command",
    [["check", "--deploy"], ["migrate", "--no-input"], ["publish_backlog"], ["runserver"]],
)
@pytest.mark.parametrize(
    ("change", "sentence"),
    [
        pytest.param(
            {"SECRET_KEY": None},
            "SECRET_KEY is not set: DEBUG is off, so set SECRET_KEY to a long random string.",
            id="no-secret-key",
        ),
        pytest.param(
            {"SECRET_KEY": ""},
            "SECRET_KEY is not set: DEBUG is off, so set SECRET_KEY to a long random string.",
            id="empty-secret-key",
        ),
        pytest.param(
            {"ALLOWED_HOSTS": None},
            "ALLOWED_HOSTS is not set: DEBUG is off, so set ALLOWED_HOSTS to the "
            "comma-separated host names this API answers to.",
            id="no-allowed-hosts",
        ),
        pytest.param(
            {"ALLOWED_HOSTS": " , "},
            "ALLOWED_HOSTS is not set: DEBUG is off, so set ALLOWED_HOSTS to the "
            "comma-separated host names this API answers to.",
            id="blank-allowed-hosts",
        ),
        pytest.param(
            {"DATABASE_URL": None},
            "DATABASE_URL is not set: DEBUG is off, so set DATABASE_URL to the production "
            "database (postgres://user:password@host:5432/name), never an embedded SQLite file.",
            id="no-database-url",
        ),
        pytest.param(
            {"CELERY_BROKER_URL": None},
            "CELERY_BROKER_URL is not set: DEBUG is off, so set it to a server every host "
            "shares (redis://host:6379/0); an embedded default is per host and beat and the "
            "workers on other hosts would never meet.",
            id="no-broker",
        ),
        pytest.param(
            {"CELERY_BROKER_URL": "filesystem://"},
            "CELERY_BROKER_URL uses filesystem://, which is per host: DEBUG is off, so set it "
            "to a server every host shares (redis://host:6379/0); otherwise beat and the "
            "workers on other hosts would never meet.",
            id="filesystem-broker",
        ),
        pytest.param(
            {"SCALING_STATE_URL": "file:///var/lib/academy/state"},
            "SCALING_STATE_URL uses file://, which is per host: DEBUG is off, so set it to a "
            "server every host shares (redis://host:6379/0, or unset with a Redis broker); "
            "otherwise two hosts would each claim every slot and publish it twice.",
            id="file-claim-store",
        ),
        pytest.param(
            {"CELERY_BROKER_URL": "amqp://guest@127.0.0.1:5672//"},
            "SCALING_STATE_URL uses file://, which is per host: DEBUG is off, so set it to a "
            "server every host shares (redis://host:6379/0, or unset with a Redis broker); "
            "otherwise two hosts would each claim every slot and publish it twice.",
            id="non-redis-broker-and-no-store",
        ),
        pytest.param(
            {"DEBUG": "maybe"},
            "DEBUG='maybe' is not a boolean: set it to true or false.",
            id="bad-debug",
        ),
        pytest.param(
            {"DATABASE_CONNECT_TIMEOUT": "3s"},
            "DATABASE_CONNECT_TIMEOUT='3s' is not a whole number.",
            id="bad-connect-timeout",
        ),
        pytest.param(
            {"SECURE_HSTS_SECONDS": "a year"},
            "SECURE_HSTS_SECONDS='a year' is not a whole number.",
            id="bad-hsts-seconds",
        ),
        pytest.param(
            {"SECURE_SSL_REDIRECT": "sure"},
            "SECURE_SSL_REDIRECT='sure' is not a boolean: set it to true or false.",
            id="bad-ssl-redirect",
        ),
    ],
)
def test_production_start_refuses_with_one_sentence(
    command: list[str], change: dict[str, str | None], sentence: str, tmp_path: Path
) -> None:
    env = _production_env()
    for key, value in change.items():
        if value is None:
            env.pop(key)
        else:
            env[key] = value
    result = _manage(command, env, tmp_path)
    assert result.returncode == 2
    assert result.stderr == f"error: {sentence}\n"
    assert result.stdout == ""


@pytest.mark.parametrize(
    "database_url",
    ["mongodb://127.0.0.1/academy", "postgres://academy:pw@127.0.0.1:port/academy"],
)
def test_bad_database_url_refuses_with_one_line(database_url: str, tmp_path: Path) -> None:
    env = {**_production_env(), "DATABASE_URL": database_url}
    result = _manage(["check"], env, tmp_path)
    assert result.returncode == 2
    # The middle is dj-database-url's own reason, which its versions word differently.
    assert result.stderr.startswith("error: DATABASE_URL is not a valid database URL (")
    assert result.stderr.endswith("): use e.g. postgres://user:password@host:5432/name.\n")
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_embedded_defaults_need_no_environment(tmp_path: Path) -> None:
    result = _manage(["check"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "System check identified no issues (0 silenced).\n"
