"""deploy/nginx/academy-api.conf in front of real gunicorn, both on loopback ports.

The nginx file under test is the shipped one with only its ports and paths
substituted (each substitution is asserted to have happened, so a change to
the file's shape breaks this test rather than quietly testing something else).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command

from devstack.localaws import port_free_get, port_wait
from tests.conftest import is_postgres, service_missing
from tests.factories import videos_create

REPO = Path(__file__).resolve().parents[2]
SITE_CONF = REPO / "deploy" / "nginx" / "academy-api.conf"
PATH = "/api/v1/internal/video/backlog-count/"
KEY_OLD, KEY_NEW = "k-nginx-old-51c0", "k-nginx-new-9e4b"


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should appear once in {SITE_CONF.name}"
    return text.replace(old, new)


def site_config(
    *,
    listen: int,
    upstream: int,
    logs: Path,
    allow_file: Path | None = None,
    drop_key: bool = False,
    with_upstream: bool = True,
) -> str:
    text = SITE_CONF.read_text()
    text = _replace_once(text, "server 127.0.0.1:8000 ", f"server 127.0.0.1:{upstream} ")
    text = _replace_once(text, "    listen 80;\n", f"    listen 127.0.0.1:{listen};\n")
    text = _replace_once(text, "    listen [::]:80;\n", "")
    text = _replace_once(text, "/var/log/nginx/academy-api.access.log", str(logs / "access.log"))
    text = _replace_once(text, "/var/log/nginx/academy-api.error.log", str(logs / "error.log"))
    if allow_file is not None:
        text = _replace_once(
            text,
            "# include /etc/nginx/academy-internal-allow.conf;",
            f"include {allow_file};",
        )
    if drop_key:
        # What a proxy that loses the header amounts to.
        text = _replace_once(
            text,
            "proxy_set_header X-Internal-Key $http_x_internal_key;",
            'proxy_set_header X-Internal-Key "";',
        )
    if not with_upstream:
        text, n = re.subn(r"upstream academy_gunicorn \{.*?\n\}\n", "", text, flags=re.S)
        assert n == 1
    return text


@dataclass
class Stack:
    nginx: str  # through nginx, allow-list on and allowing loopback
    dropping: str  # through an nginx that drops X-Internal-Key
    denying: str  # through an nginx whose allow-list denies everyone
    gunicorn: str  # gunicorn directly
    logs: Path
    backlog: int


def _database_url(tmp: Path) -> tuple[str, bool]:
    """A DATABASE_URL for the gunicorn process; True when it is the test's own database."""
    db = django_settings.DATABASES["default"]
    if is_postgres():
        user = quote(str(db.get("USER") or ""), safe="")
        password = quote(str(db.get("PASSWORD") or ""), safe="")
        auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
        host = db.get("HOST") or "127.0.0.1"
        port = db.get("PORT") or 5432
        return f"postgres://{auth}{host}:{port}/{quote(str(db['NAME']), safe='')}", True
    name = str(db["NAME"])
    if name and "memory" not in name and Path(name).exists():
        return f"sqlite:///{name}", True
    # An in-memory test database cannot be shared: gunicorn gets an empty,
    # migrated database of its own (the backlog is then 0 on both sides).
    path = tmp / "gunicorn.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{path}", "ACADEMY_VAR_DIR": str(tmp)}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO,
        env=env,
        check=True,
        timeout=120,
    )
    return f"sqlite:///{path}", False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


@pytest.fixture
def stack(tmp_path: Path, settings: Any) -> Iterator[Stack]:
    nginx = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")
    if nginx is None:
        service_missing("needs nginx: apt-get install nginx-light")
        raise AssertionError  # unreachable
    logs = tmp_path / "logs"
    logs.mkdir()
    database_url, shared = _database_url(tmp_path)
    backlog = 0
    if shared:
        videos_create(UPLOADED=2, PROCESSING=1, READY=3)  # committed: transaction=True
        backlog = 3

    g_port = port_free_get()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "INTERNAL_API_KEY": f"{KEY_OLD},{KEY_NEW}",
        "DEBUG": "false",
        # Production needs a shared broker (invariant 9); the endpoint never sends to it.
        "CELERY_BROKER_URL": os.environ.get("CELERY_BROKER_URL") or "redis://127.0.0.1:1/0",
        "SECRET_KEY": "test-only-secret-key-for-the-nginx-test-0123456789",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "ACADEMY_VAR_DIR": str(tmp_path / "var"),
        "LOG_LEVEL": "DEBUG",
    }
    env.pop("DATABASE_TEST_NAME", None)
    env.pop("LAMBDA_INTERNAL_API_KEY", None)
    gunicorn_log = (logs / "gunicorn.log").open("wb")
    gunicorn = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "academy.wsgi:application",
            "--bind",
            f"127.0.0.1:{g_port}",
            "--workers",
            "1",
            "--access-logfile",
            "-",
            "--log-level",
            "debug",
        ],
        cwd=REPO,
        env=env,
        stdout=gunicorn_log,
        stderr=subprocess.STDOUT,
    )
    nginx_process: subprocess.Popen[bytes] | None = None
    try:
        port_wait("127.0.0.1", g_port, timeout=30)
        allow_loopback = tmp_path / "allow-loopback.conf"
        allow_loopback.write_text("allow 127.0.0.1;\ndeny all;\n")
        deny_all = tmp_path / "deny-all.conf"
        deny_all.write_text("deny all;\n")
        ports = [port_free_get() for _ in range(3)]
        sites = [
            site_config(listen=ports[0], upstream=g_port, logs=logs, allow_file=allow_loopback),
            site_config(
                listen=ports[1], upstream=g_port, logs=logs, drop_key=True, with_upstream=False
            ),
            site_config(
                listen=ports[2],
                upstream=g_port,
                logs=logs,
                allow_file=deny_all,
                with_upstream=False,
            ),
        ]
        (tmp_path / "sites.conf").write_text("\n".join(sites))
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"    {kind}_temp_path {tmp_path / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        conf = tmp_path / "nginx.conf"
        conf.write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {tmp_path / 'nginx.pid'};\n"
            f"error_log {logs / 'nginx-main.error.log'} info;\n"
            "events { worker_connections 64; }\n"
            f"http {{\n    access_log off;\n{temp}\n    include {tmp_path / 'sites.conf'};\n}}\n"
        )
        command = [nginx, "-p", str(tmp_path), "-c", str(conf), "-e", str(logs / "startup.log")]
        checked = subprocess.run([*command, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, checked.stderr
        nginx_process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=(logs / "nginx.out").open("wb")
        )
        for port in ports:
            port_wait("127.0.0.1", port, timeout=15)
        settings.INTERNAL_API_KEYS = [KEY_NEW, KEY_OLD]
        yield Stack(
            nginx=f"http://127.0.0.1:{ports[0]}",
            dropping=f"http://127.0.0.1:{ports[1]}",
            denying=f"http://127.0.0.1:{ports[2]}",
            gunicorn=f"http://127.0.0.1:{g_port}",
            logs=logs,
            backlog=backlog,
        )
    finally:
        if nginx_process is not None:
            _stop(nginx_process)
        _stop(gunicorn)
        gunicorn_log.close()


def _get(
    url: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(url, headers=headers or {}, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 (loopback)
            status, head, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, dict(exc.headers), exc.read()
    try:
        return status, head, json.loads(raw)
    except ValueError:
        return status, head, raw.decode(errors="replace")


pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_the_key_reaches_django_through_nginx(stack: Stack) -> None:
    status, head, body = _get(stack.nginx + PATH, {"X-Internal-Key": KEY_OLD})

    assert status == 200
    assert head["Cache-Control"] == "no-store"
    assert body["backlog_count"] == stack.backlog
    assert (body["uploaded"], body["processing"]) == ((2, 1) if stack.backlog else (0, 0))


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        pytest.param({}, 403, id="missing"),
        pytest.param({"X-Internal-Key": ""}, 403, id="empty"),
        pytest.param({"X-Internal-Key": "k-wrong"}, 403, id="wrong"),
        pytest.param({"X-Internal-Key": KEY_NEW}, 200, id="rotated-second-key"),
        pytest.param({"x-internal-key": KEY_OLD}, 200, id="lower-case-name"),
        # Underscores in the name: dropped by nginx, so refused.
        pytest.param({"X_Internal_Key": KEY_OLD}, 403, id="underscore-name"),
    ],
)
def test_header_table_through_nginx(stack: Stack, headers: dict[str, str], status: int) -> None:
    got, head, body = _get(stack.nginx + PATH, headers)

    assert got == status
    assert head["Cache-Control"] == "no-store"
    if status == 403:
        assert body == {"error": "forbidden"}


def test_other_methods_are_405_through_nginx(stack: Stack) -> None:
    status, head, body = _get(stack.nginx + PATH, {"X-Internal-Key": KEY_OLD}, method="POST")

    assert (status, head["Allow"], body) == (405, "GET", {"error": "method not allowed"})


def test_allow_list_denies_before_django(stack: Stack) -> None:
    status, _, body = _get(stack.denying + PATH, {"X-Internal-Key": KEY_OLD})

    assert status == 403
    assert "nginx" in str(body)  # nginx's own page: the request never reached Django


def test_check_internal_api_finds_the_proxy_that_drops_the_header(stack: Stack) -> None:
    out = StringIO()
    with pytest.raises(CommandError) as raised:
        # A patient probe: gunicorn's worker may still be booting Django on shared cores
        # (the listening socket is the master's); what each URL answers is unchanged.
        call_command(
            "check_internal_api",
            stack.gunicorn,
            stack.nginx,
            stack.dropping,
            "--timeout",
            "30",
            stdout=out,
        )

    n = stack.backlog
    assert out.getvalue().splitlines() == [
        f"{stack.gunicorn}{PATH}  status=200  value={n}  database={n}  agrees",
        f"{stack.nginx}{PATH}  status=200  value={n}  database={n}  agrees",
        f"{stack.dropping}{PATH}  status=403  value=-  database={n}  DISAGREES: key refused: "
        "the key differs, or a proxy drops X-Internal-Key",
    ]
    assert str(raised.value) == "1 of 3 URLs disagree or fail."


def test_no_log_holds_the_key(stack: Stack) -> None:
    for key in (KEY_OLD, KEY_NEW, "k-wrong-in-logs"):
        _get(stack.nginx + PATH, {"X-Internal-Key": key})
        _get(stack.gunicorn + PATH, {"X-Internal-Key": key})
    _get(stack.nginx + PATH, {"X-Internal-Key": KEY_OLD}, method="POST")

    logs = {p.name: p.read_text(errors="replace") for p in stack.logs.iterdir() if p.is_file()}
    assert PATH in logs["access.log"]  # the requests were logged ...
    assert "refused" in logs["gunicorn.log"]  # ... and so were the refusals
    for name, text in logs.items():
        for key in (KEY_OLD, KEY_NEW, "k-wrong-in-logs"):
            assert key not in text, f"{key} in {name}"
