"""video.worker.client against a real HTTP server on a free loopback port."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from video.worker import imds as imds_module
from video.worker.client import (
    ClaimRefused,
    Lease,
    LeaseLost,
    Renewal,
    StatusAnswer,
    TransientApiError,
    WorkerApiClient,
    WorkerApiError,
    error_one_line,
    visibility_for,
)
from video.worker.imds import instance_id_lookup
from video.worker.queue import video_id_parse

KEY = "worker-key-for-tests"
EXPIRES = "2025-01-02T03:04:05+00:00"


@dataclass
class Answer:
    status: int
    body: bytes
    delay: float = 0.0


@dataclass
class CannedServer:
    """Answers each (method, path) with what a test set; records every request."""

    url: str = ""
    answers: dict[tuple[str, str], Answer] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)

    def answer(self, method: str, path: str, status: int, body: Any, *, delay: float = 0.0) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[(method, path)] = Answer(status, raw, delay)


def _handler(canned: CannedServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            canned.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": json.loads(body) if body else None,
                }
            )
            answer = canned.answers.get((self.command, self.path), Answer(404, b'{"error": "?"}'))
            if answer.delay:
                time.sleep(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def canned() -> Iterator[CannedServer]:
    server_state = CannedServer()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server_state))
    server.daemon_threads = True
    server_state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server_state
    server.shutdown()
    server.server_close()


def closed_port_url() -> str:
    """A loopback URL on a port nothing listens on: connections are refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def path(video_id: int, action: str) -> str:
    return f"/api/v1/internal/video/{video_id}/{action}/"


LEASE_ANSWER = {
    "video_id": 7,
    "token": "tok-7",
    "lease_expires_at": EXPIRES,
    "lease_seconds": 120,
    "renew_seconds": 40,
    "attempts": 1,
    "protected": True,
}


def test_claim_returns_the_lease_and_sends_the_key_and_ids(canned: CannedServer) -> None:
    canned.answer("POST", path(7, "claim"), 200, LEASE_ANSWER)
    api = WorkerApiClient(canned.url, KEY, timeout=2)

    lease = api.claim(7, instance_id="i-0abc", worker_id="host:12")

    assert lease == Lease(
        video_id=7,
        token="tok-7",
        lease_expires_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        lease_seconds=120.0,
        renew_seconds=40.0,
        attempts=1,
        protected=True,
    )
    assert lease.visibility_seconds == 240
    [request] = canned.requests
    assert request["body"] == {"instance_id": "i-0abc", "worker_id": "host:12"}
    assert request["headers"]["X-Worker-Key"] == KEY
    assert request["headers"]["Content-Type"] == "application/json"


def test_a_base_url_with_a_prefix_keeps_it(canned: CannedServer) -> None:
    canned.answer("POST", "/prefix" + path(7, "claim"), 200, LEASE_ANSWER)
    api = WorkerApiClient(canned.url + "/prefix/", KEY, timeout=2)
    assert isinstance(api.claim(7, instance_id="i-1", worker_id="w"), Lease)


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            409,
            {"error": "Video 7 is being processed.", "reason": "taken"},
            ClaimRefused(7, "taken", "Video 7 is being processed."),
        ),
        (
            409,
            {"error": "Video 7 is READY.", "reason": "done"},
            ClaimRefused(7, "done", "Video 7 is READY."),
        ),
        (409, {"error": "FAILED.", "reason": "failed"}, ClaimRefused(7, "failed", "FAILED.")),
        (404, {"error": "No video 7."}, ClaimRefused(7, "unknown", "No video 7.")),
    ],
)
def test_a_refused_claim_is_an_answer_not_an_error(
    canned: CannedServer, status: int, body: dict[str, str], expected: ClaimRefused
) -> None:
    canned.answer("POST", path(7, "claim"), status, body)
    api = WorkerApiClient(canned.url, KEY, timeout=2)
    assert api.claim(7, instance_id="i-1", worker_id="w") == expected


def test_renew_finish_and_release(canned: CannedServer) -> None:
    canned.answer(
        "POST", path(7, "renew"), 200, {"video_id": 7, "lease_expires_at": EXPIRES, "drain": True}
    )
    canned.answer("POST", path(7, "finish"), 200, {"video_id": 7, "status": "FAILED"})
    canned.answer("POST", path(7, "release"), 200, {"video_id": 7, "status": "UPLOADED"})
    api = WorkerApiClient(canned.url, KEY, timeout=2)

    assert api.renew(7, token="tok") == Renewal(
        7, datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC), drain=True
    )
    assert api.finish(7, token="tok", status="FAILED", error="boom") == StatusAnswer(7, "FAILED")
    assert api.release(7, token="tok") == StatusAnswer(7, "UPLOADED")
    assert [r["body"] for r in canned.requests] == [
        {"token": "tok"},
        {"token": "tok", "status": "FAILED", "error": "boom"},
        {"token": "tok"},
    ]


def test_finish_refuses_a_status_that_is_not_final() -> None:
    api = WorkerApiClient("http://127.0.0.1:9", KEY)
    with pytest.raises(ValueError, match="READY or FAILED"):
        api.finish(7, token="tok", status="PROCESSING")


@pytest.mark.parametrize("action", ["renew", "finish", "release"])
def test_a_lost_lease_raises_lease_lost(canned: CannedServer, action: str) -> None:
    canned.answer(
        "POST", path(7, action), 409, {"error": "The lease is lost.", "reason": "lease-lost"}
    )
    api = WorkerApiClient(canned.url, KEY, timeout=2)
    calls = {
        "renew": lambda: api.renew(7, token="old"),
        "finish": lambda: api.finish(7, token="old", status="READY"),
        "release": lambda: api.release(7, token="old"),
    }
    with pytest.raises(LeaseLost) as caught:
        calls[action]()
    assert (caught.value.status, caught.value.reason) == (409, "lease-lost")
    assert str(caught.value) == "The lease is lost."


@pytest.mark.parametrize(
    ("status", "body", "kind", "message", "api_alive"),
    [
        (403, {"error": "Bad key."}, WorkerApiError, "claim answered 403: Bad key.", None),
        (400, {"error": "Bad JSON."}, WorkerApiError, "claim answered 400: Bad JSON.", None),
        (
            503,
            {"error": "The database is down."},
            TransientApiError,
            "claim answered 503: The database is down.",
            True,
        ),
        (
            502,
            b"<html>Bad gateway</html>",
            TransientApiError,
            "claim answered 502 (not JSON)",
            False,
        ),
        (200, b"not json", WorkerApiError, "claim answered 200 without a JSON object", None),
        (200, {"video_id": 7}, WorkerApiError, "the worker API answered without 'token'", None),
    ],
)
def test_errors_say_whether_a_retry_can_help(
    canned: CannedServer,
    status: int,
    body: Any,
    kind: type[Exception],
    message: str,
    api_alive: bool | None,
) -> None:
    canned.answer("POST", path(7, "claim"), status, body)
    api = WorkerApiClient(canned.url, KEY, timeout=2)
    with pytest.raises(WorkerApiError) as caught:
        api.claim(7, instance_id="i-1", worker_id="w")
    assert type(caught.value) is kind
    assert str(caught.value) == message
    if api_alive is not None:
        assert isinstance(caught.value, TransientApiError)
        assert caught.value.api_alive is api_alive


def test_no_answer_within_the_timeout_is_transient(canned: CannedServer) -> None:
    canned.answer("POST", path(7, "renew"), 200, {}, delay=1.5)
    api = WorkerApiClient(canned.url, KEY, timeout=0.2)
    started = time.monotonic()
    with pytest.raises(TransientApiError, match=r"^renew of video 7: no answer within 0.2 s$"):
        api.renew(7, token="tok")
    assert time.monotonic() - started < 1.0


def test_a_refused_connection_is_transient() -> None:
    api = WorkerApiClient(closed_port_url(), KEY, timeout=2)
    with pytest.raises(TransientApiError, match=r"^claim of video 7: ConnectionRefusedError") as c:
        api.claim(7, instance_id="i-1", worker_id="w")
    assert c.value.api_alive is False


@pytest.mark.parametrize(
    "url", ["ftp://host", "127.0.0.1:8000", "http://", "http://host:port", "http://h/?q=1"]
)
def test_a_bad_base_url_is_refused_at_once(url: str) -> None:
    with pytest.raises(ValueError, match="is not an http"):
        WorkerApiClient(url, KEY)


def test_the_key_is_never_shown() -> None:
    assert KEY not in repr(WorkerApiClient("http://127.0.0.1:8000", KEY))


# --- claim-next --------------------------------------------------------------

CLAIM_NEXT = "/api/v1/internal/video/claim-next/"


def test_claim_next_returns_the_lease_of_the_video_the_api_chose(canned: CannedServer) -> None:
    canned.answer("POST", "/prefix" + CLAIM_NEXT, 200, LEASE_ANSWER)
    api = WorkerApiClient(canned.url + "/prefix", KEY, timeout=2)

    lease = api.claim_next(instance_id="i-0abc", worker_id="host:12")

    assert lease is not None
    assert (lease.video_id, lease.token, lease.attempts, lease.protected) == (7, "tok-7", 1, True)
    [request] = canned.requests
    assert request["body"] == {"instance_id": "i-0abc", "worker_id": "host:12"}
    assert request["headers"]["X-Worker-Key"] == KEY


def test_claim_next_with_nothing_waiting_is_none(canned: CannedServer) -> None:
    canned.answer("POST", CLAIM_NEXT, 204, b"")
    api = WorkerApiClient(canned.url, KEY, timeout=2)
    assert api.claim_next(instance_id="i-1", worker_id="w") is None


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (403, {"error": "forbidden"}, WorkerApiError, "claim-next answered 403: forbidden"),
        (
            400,
            {"error": "field 'worker_id' is missing"},
            WorkerApiError,
            "claim-next answered 400: field 'worker_id' is missing",
        ),
        # An API older than this client: Django's own 404 page.
        (
            404,
            b"<h1>Not Found</h1>",
            WorkerApiError,
            "claim-next answered 404 without a JSON object",
        ),
        (
            503,
            {"error": "database unavailable (OperationalError)"},
            TransientApiError,
            "claim-next answered 503: database unavailable (OperationalError)",
        ),
        (502, b"<html>Bad gateway</html>", TransientApiError, "claim-next answered 502 (not JSON)"),
    ],
)
def test_claim_next_errors_say_whether_a_retry_can_help(
    canned: CannedServer, status: int, body: Any, kind: type[Exception], message: str
) -> None:
    canned.answer("POST", CLAIM_NEXT, status, body)
    api = WorkerApiClient(canned.url, KEY, timeout=2)
    with pytest.raises(WorkerApiError) as caught:
        api.claim_next(instance_id="i-1", worker_id="w")
    assert (type(caught.value), str(caught.value), caught.value.status) == (kind, message, status)


def test_claim_next_without_an_answer_is_transient() -> None:
    api = WorkerApiClient(closed_port_url(), KEY, timeout=2)
    with pytest.raises(TransientApiError, match=r"^claim-next: ConnectionRefusedError"):
        api.claim_next(instance_id="i-1", worker_id="w")


# --- IMDSv2 ------------------------------------------------------------------


@pytest.fixture
def imds_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_EC2_METADATA_DISABLED", raising=False)


@pytest.mark.usefixtures("imds_enabled")
def test_imdsv2_asks_a_token_then_the_instance_id(canned: CannedServer) -> None:
    canned.answer("PUT", "/latest/api/token", 200, b"imds-token")
    canned.answer("GET", "/latest/meta-data/instance-id", 200, b"i-0123456789abcdef0")

    assert instance_id_lookup(canned.url) == "i-0123456789abcdef0"

    put, get = canned.requests
    assert put["method"] == "PUT"
    assert put["headers"]["X-aws-ec2-metadata-token-ttl-seconds"] == "60"
    assert get["headers"]["X-aws-ec2-metadata-token"] == "imds-token"


@pytest.mark.usefixtures("imds_enabled")
def test_imds_base_address_can_be_moved(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    canned.answer("PUT", "/latest/api/token", 200, b"imds-token")
    canned.answer("GET", "/latest/meta-data/instance-id", 200, b"i-0abc")
    monkeypatch.setattr(imds_module, "IMDS_BASE_URL", canned.url)
    assert instance_id_lookup() == "i-0abc"


@pytest.mark.usefixtures("imds_enabled")
@pytest.mark.parametrize(
    ("token_status", "id_status", "instance_id"),
    [(403, 200, b"i-0abc"), (200, 401, b"i-0abc"), (200, 200, b"<html>not an id</html>")],
)
def test_imds_answers_that_are_no_instance_id_give_none(
    canned: CannedServer, token_status: int, id_status: int, instance_id: bytes
) -> None:
    canned.answer("PUT", "/latest/api/token", token_status, b"imds-token")
    canned.answer("GET", "/latest/meta-data/instance-id", id_status, instance_id)
    assert instance_id_lookup(canned.url) is None


@pytest.mark.usefixtures("imds_enabled")
def test_imds_unreachable_gives_none_quickly() -> None:
    started = time.monotonic()
    assert instance_id_lookup(closed_port_url()) is None
    assert time.monotonic() - started < 1.5


@pytest.mark.usefixtures("imds_enabled")
def test_imds_that_does_not_answer_gives_none_after_the_timeout(canned: CannedServer) -> None:
    canned.answer("PUT", "/latest/api/token", 200, b"imds-token", delay=2)
    started = time.monotonic()
    assert instance_id_lookup(canned.url, timeout=0.2) is None
    assert time.monotonic() - started < 1.0


def test_imds_disabled_as_for_the_aws_sdks_asks_nothing(
    canned: CannedServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    assert instance_id_lookup(canned.url) is None
    assert canned.requests == []


# --- Helpers -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('{"video_id": 12}', 12),
        ('{"video_id": 12, "extra": 1}', 12),
        ('{"video_id": "12"}', None),
        ('{"video_id": true}', None),
        ('{"video_id": 0}', None),
        ('{"video_id": -3}', None),
        ("[12]", None),
        ("12", None),
        ("not json", None),
        ("", None),
    ],
)
def test_video_id_parse(body: str, expected: int | None) -> None:
    assert video_id_parse(body) == expected


def test_error_one_line_keeps_the_type_and_the_first_line() -> None:
    assert error_one_line(RuntimeError("disk full\nTraceback...")) == "RuntimeError: disk full"
    assert error_one_line(KeyError()) == "KeyError"
    assert len(error_one_line(ValueError("x" * 2000))) == 500


@pytest.mark.parametrize(("lease", "expected"), [(120, 240), (0.3, 1), (1.2, 3), (30_000, 43_200)])
def test_visibility_is_two_leases_within_what_sqs_allows(lease: float, expected: int) -> None:
    assert visibility_for(lease) == expected


def test_the_worker_modules_import_neither_django_nor_boto3() -> None:
    """The academy's transcoder imports these without Django; boto3 waits for SqsJobQueue."""
    code = (
        "import sys; import video.worker.client, video.worker.loop, video.worker.jobs; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'django', 'academy', 'scaling', 'boto3', 'botocore'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout == "[]\n"
