from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import OperationalError

from devstack.localaws import port_free_get
from scaling.audit.probe import endpoint_url
from tests.factories import videos_create

KEY = "k-check-8c1d"
PATH = "/api/v1/internal/video/backlog-count/"


class Stub:
    """A loopback HTTP server answering every GET with one canned response."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.seen_keys: list[str | None] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                stub.seen_keys.append(self.headers.get("X-Internal-Key"))
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Stub:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def key(settings: Any) -> str:
    settings.INTERNAL_API_KEYS = [KEY, "k-next"]
    return KEY


def _run(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("check_internal_api", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


@pytest.mark.django_db(transaction=True)
def test_live_server_agrees_with_the_database(live_server: Any, key: str) -> None:
    videos_create(UPLOADED=2, PROCESSING=1, READY=5)

    out, error = _run(live_server.url)

    assert error is None
    assert out == f"{live_server.url}{PATH}  status=200  value=3  database=3  agrees\n"


@pytest.mark.django_db(transaction=True)
def test_one_line_per_url_and_exit_1_when_any_fails(live_server: Any, key: str) -> None:
    videos_create(UPLOADED=1)
    dead = f"http://127.0.0.1:{port_free_get()}"
    forbidden = Stub(403, b'{"error": "forbidden"}')
    wrong = Stub(200, b'{"backlog_count": 999}')
    garbled = Stub(200, b"<html>maintenance</html>")
    with forbidden, wrong, garbled:
        out, error = _run(
            live_server.url + "/", forbidden.url, wrong.url, garbled.url, dead, "--timeout", "3"
        )

    assert out.splitlines() == [
        f"{live_server.url}{PATH}  status=200  value=1  database=1  agrees",
        f"{forbidden.url}{PATH}  status=403  value=-  database=1  DISAGREES: key refused: "
        "the key differs, or a proxy drops X-Internal-Key",
        f"{wrong.url}{PATH}  status=200  value=999  database=1  DISAGREES: "
        "the database counts 1 now",
        f"{garbled.url}{PATH}  status=-  value=-  database=1  DISAGREES: the answer is not JSON",
        f"{dead}{PATH}  status=-  value=-  database=1  DISAGREES: cannot connect "
        "([Errno 111] Connection refused)",
    ]
    assert error is not None
    assert (str(error), error.returncode) == ("4 of 5 URLs disagree or fail.", 1)
    # The first configured key is the one sent.
    assert forbidden.seen_keys == wrong.seen_keys == [KEY]


@pytest.mark.django_db
def test_json_output(key: str) -> None:
    with Stub(200, b'{"backlog_count": 0}') as ok, Stub(503, b'{"error": "x"}') as down:
        out, error = _run(ok.url, down.url, "--json")

    assert json.loads(out) == [
        {
            "agrees": True,
            "database": 0,
            "error": "",
            "status": 200,
            "url": f"{ok.url}{PATH}",
            "value": 0,
        },
        {
            "agrees": False,
            "database": 0,
            "error": "HTTP 503",
            "status": 503,
            "url": f"{down.url}{PATH}",
            "value": None,
        },
    ]
    assert error is not None
    assert error.returncode == 1


@pytest.mark.django_db
def test_redirects_are_not_followed_so_the_key_stays_home(key: str) -> None:
    with Stub(200, b'{"backlog_count": 0}') as elsewhere:
        target = {"Location": elsewhere.url + PATH}
        with Stub(302, b"", headers=target) as redirecting:
            out, error = _run(redirecting.url)

    assert out == (
        f"{redirecting.url}{PATH}  status=302  value=-  database=0  DISAGREES: "
        "redirected (not followed, so the key is not sent elsewhere)\n"
    )
    assert elsewhere.seen_keys == []
    assert error is not None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("ftp://example.com", "not an http:// or https:// URL with a host name"),
        ("127.0.0.1:8000", "not an http:// or https:// URL with a host name"),
        ("http://", "not an http:// or https:// URL with a host name"),
        ("http://api.example.com:99999", "its port is not a number from 1 to 65535"),
        ("https://api.example.com/?key=1", "give a base URL without ?query or #fragment"),
    ],
)
def test_bad_urls_are_refused_before_anything_is_called(given: str, message: str) -> None:
    out, error = _run("http://127.0.0.1:1", given)

    assert out == ""
    assert str(error) == f"{given!r} is not a usable URL: {message}."


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://127.0.0.1:8000", f"http://127.0.0.1:8000{PATH}"),
        ("https://api.example.com/", f"https://api.example.com{PATH}"),
        ("https://example.com/academy", f"https://example.com/academy{PATH}"),
        (f"http://127.0.0.1:8000{PATH}", f"http://127.0.0.1:8000{PATH}"),
        (f"http://127.0.0.1:8000{PATH.rstrip('/')}", f"http://127.0.0.1:8000{PATH}"),
    ],
)
def test_endpoint_url(given: str, expected: str) -> None:
    assert endpoint_url(given) == expected


def test_no_key_configured(settings: Any) -> None:
    settings.INTERNAL_API_KEYS = []

    _, error = _run("http://127.0.0.1:1")

    assert str(error) == (
        "No internal API key is configured: set INTERNAL_API_KEY to the key the servers expect."
    )


def test_database_down(key: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise OperationalError("connection refused\nIs the server running?")

    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)

    _, error = _run("http://127.0.0.1:1")

    assert str(error) == (
        "Cannot count the backlog in the database (OperationalError: connection refused)."
    )
