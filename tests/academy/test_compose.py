"""docker-compose.yml and the Dockerfile, checked without a Docker engine."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.academy.env_names import (
    BASE_DIR,
    boto3_credential_env_names,
    env_example_names,
    settings_env_names,
)
from tests.deploy.test_nginx import SITE_CONF

COMPOSE_PATH = BASE_DIR / "docker-compose.yml"
SERVICES = ("postgres", "redis", "web", "worker", "beat", "nginx")
APP_SERVICES = ("web", "worker", "beat")
_INTERPOLATION_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(data, dict)
    return data


def _services() -> dict[str, dict[str, Any]]:
    services = _compose()["services"]
    assert isinstance(services, dict)
    return services


def _command(service: dict[str, Any]) -> str:
    command = service["command"]
    return " ".join(command) if isinstance(command, list) else str(command)


def _environment_names(service: dict[str, Any]) -> set[str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):  # the "NAME=value" form
        return {item.split("=", 1)[0] for item in environment}
    return set(environment)


def test_settings_env_names_are_found_by_parsing() -> None:
    # Guards the parser: a few names read in each of the ways settings.py reads them.
    names = settings_env_names()
    assert {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASE_URL", "DATABASE_TEST_NAME"} <= names
    assert {"INTERNAL_API_KEY", "LAMBDA_INTERNAL_API_KEY", "SECURE_HSTS_SECONDS"} <= names


def test_compose_has_the_six_services() -> None:
    assert set(_services()) == set(SERVICES)


@pytest.mark.parametrize("name", SERVICES)
def test_service_has_image_or_build_command_and_healthcheck(name: str) -> None:
    service = _services()[name]
    assert service.get("image") or service.get("build")
    assert _command(service).strip()
    healthcheck = service["healthcheck"]
    assert healthcheck["test"]
    assert healthcheck.get("disable") is not True


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("web", "gunicorn academy.wsgi"),
        ("worker", "celery -A academy worker"),
        ("beat", "celery -A academy beat"),
    ],
)
def test_app_service_commands(name: str, expected: str) -> None:
    service = _services()[name]
    assert service["build"] == "."
    assert expected in _command(service)


def test_exactly_one_beat() -> None:
    services = _services()
    beats = [name for name, service in services.items() if " beat" in _command(service)]
    assert beats == ["beat"]
    beat = services["beat"]
    assert beat.get("deploy", {}).get("replicas", 1) == 1
    assert beat.get("scale", 1) == 1


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_environment_names_are_read_by_settings(name: str) -> None:
    unknown = _environment_names(_services()[name]) - settings_env_names()
    assert unknown == set(), f"{name} sets variables that settings never read"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_talk_to_the_compose_postgres_and_redis(name: str) -> None:
    environment = _services()[name]["environment"]
    assert environment["DATABASE_URL"].startswith("postgres://")
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["CELERY_BROKER_URL"].startswith("redis://redis:6379/")
    assert environment["DEBUG"] == "false"
    depends_on = _services()[name]["depends_on"]
    assert set(depends_on) <= {"postgres", "redis", "web"}


def test_interpolated_names_are_read_by_settings() -> None:
    names = set(_INTERPOLATION_RE.findall(COMPOSE_PATH.read_text()))
    assert names  # SECRET_KEY at least comes from the operator
    assert names - settings_env_names() == set()


def test_env_example_names_are_read_by_settings() -> None:
    # boto3 reads its credentials itself; they are documented in .env.example
    # but never pass through settings.
    unknown = env_example_names() - settings_env_names() - boto3_credential_env_names()
    assert unknown == set()


def test_every_name_settings_read_is_in_env_example() -> None:
    assert settings_env_names() - env_example_names() == set()


def test_dockerfile() -> None:
    dockerfile = (BASE_DIR / "Dockerfile").read_text()
    instructions = [
        line.split(None, 1) for line in dockerfile.splitlines() if line and line[0].isupper()
    ]
    keywords = [parts[0] for parts in instructions]
    assert instructions[0] == ["FROM", "python:3.11-slim"]
    assert "pip install ." in dockerfile
    assert "collectstatic --no-input" in dockerfile
    users = [parts[1] for parts in instructions if parts[0] == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    # The image runs as that user: nothing after the last USER switches back.
    last_user = len(keywords) - 1 - keywords[::-1].index("USER")
    assert "RUN" not in keywords[last_user:]
    assert '"gunicorn", "academy.wsgi"' in dockerfile


# nginx: the one configuration file, shared with the EC2 hosts -----------------------


def _mounts(service: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(source, target, mode) of each short-syntax volume."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target, *mode = str(volume).split(":")
        mounts.append((source, target, mode[0] if mode else "rw"))
    return mounts


def test_nginx_mounts_the_very_file_the_nginx_test_runs() -> None:
    nginx = _services()["nginx"]
    files = [(s, t, m) for s, t, m in _mounts(nginx) if s.startswith(".")]

    # One bind mount, and it is the file tests/deploy/test_nginx.py runs in front of real
    # gunicorn: no second copy that could drift, no inline config.
    assert len(files) == 1
    [(source, target, mode)] = files
    assert (COMPOSE_PATH.parent / source).resolve() == SITE_CONF.resolve()
    assert target == "/etc/nginx/conf.d/default.conf"  # replaces the image's default server
    assert mode == "ro"
    assert "configs" not in _compose()
    assert "configs" not in nginx
    assert str(nginx["image"]).startswith("nginx:")


def test_nginx_reaches_web_the_way_the_file_says() -> None:
    services = _services()
    nginx, web = services["nginx"], services["web"]
    conf = SITE_CONF.read_text()
    [upstream_port] = re.findall(r"server 127\.0\.0\.1:(\d+) ", conf)
    [listen_port] = re.findall(r"^\s*listen (\d+);$", conf, flags=re.M)

    # In web's network namespace, the file's upstream 127.0.0.1:8000 is web's gunicorn.
    assert nginx["network_mode"] == "service:web"
    assert "ports" not in nginx  # a shared network's ports are published by its owner
    assert f"--bind 0.0.0.0:{upstream_port}" in _command(web)
    published = [str(p).rsplit(":", 1)[1] for p in web["ports"]]
    assert listen_port in published
    assert nginx["depends_on"] == {"web": {"condition": "service_healthy"}}
    # The file's only upstream and only server: nothing else for it to reach.
    assert conf.count("upstream ") == 1
    assert conf.count("proxy_pass http://academy_gunicorn;") == conf.count("proxy_pass")


def test_nginx_serves_the_static_files_web_collects() -> None:
    services = _services()
    conf = SITE_CONF.read_text()
    [alias] = re.findall(r"alias (\S+);", conf)
    static_root = services["web"]["environment"]["STATIC_ROOT"]

    nginx_static = [(s, m) for s, t, m in _mounts(services["nginx"]) if t == alias.rstrip("/")]
    web_static = [s for s, t, _ in _mounts(services["web"]) if t == static_root]
    assert nginx_static == [(web_static[0], "ro")]
    assert web_static[0] in _compose()["volumes"]
    assert "collectstatic --no-input" in _command(services["web"])


def test_nginx_passes_the_internal_key_header() -> None:
    # The reason the old system shipped this file twice: the header must reach Django.
    assert "proxy_set_header X-Internal-Key $http_x_internal_key;" in SITE_CONF.read_text()
