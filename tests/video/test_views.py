"""The worker API through Django's test client: every answer, exact status and JSON body."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from tests.factories import video_create, video_leased
from video.models import Video

pytestmark = pytest.mark.django_db

WORKER_KEY = "wk-current-5c1e"
NEXT_WORKER_KEY = "wk-next-9a07"
AUDIT_KEY = "k-audit-3f9a1c"
FORBIDDEN = {"error": "forbidden"}
ENDPOINTS = ("claim", "renew", "finish", "release")
UNKNOWN_ID = 987654
TOKEN = "tok-1"

# A body each endpoint accepts (for the lease held by TOKEN).
GOOD_BODY: dict[str, dict[str, Any]] = {
    "claim": {"instance_id": "i-0ccccccccccccccc3", "worker_id": "worker-3"},
    "renew": {"token": TOKEN},
    "finish": {"token": TOKEN, "status": "READY"},
    "release": {"token": TOKEN},
}


@pytest.fixture(autouse=True)
def keys(settings: Any) -> None:
    settings.WORKER_API_KEYS = [WORKER_KEY, NEXT_WORKER_KEY]
    settings.INTERNAL_API_KEYS = [AUDIT_KEY]
    settings.VIDEO_LEASE_SECONDS = "120"
    settings.SCALING_SQS_QUEUE_URL = ""
    # A claim protects its instance through Auto Scaling: here, a loopback port
    # nobody listens on (never a real AWS endpoint).
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"


def _url(endpoint: str, video_id: Any) -> str:
    return f"/api/v1/internal/video/{video_id}/{endpoint}/"


def _post(
    client: Client,
    endpoint: str,
    video_id: Any,
    body: Any = None,
    *,
    raw: str | bytes | None = None,
    key: str | None = WORKER_KEY,
    headers: dict[str, str] | None = None,
) -> Any:
    data = raw if raw is not None else json.dumps(GOOD_BODY[endpoint] if body is None else body)
    extra = dict(headers or {})
    if key is not None:
        extra["X-Worker-Key"] = key
    return client.post(
        _url(endpoint, video_id), data=data, content_type="application/json", headers=extra
    )


def _target(endpoint: str) -> Video:
    """The video an endpoint's good request would change: UPLOADED to claim, else leased."""
    return video_create() if endpoint == "claim" else video_leased(token=TOKEN)


def _snapshot(video: Video) -> dict[str, Any]:
    return dict(Video.objects.values().get(pk=video.pk))


def _answer(response: Any) -> tuple[int, Any]:
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, response.json()


# --- refusals that change nothing, for the four endpoints ---------------------------------

_TOO_LONG = "x" * 5000
REFUSALS: list[Any] = [
    # (case, request kwargs, status, body)
    ("no-key", {"key": None}, 403, FORBIDDEN),
    ("empty-key", {"key": ""}, 403, FORBIDDEN),
    ("wrong-key", {"key": "wk-current-5c1f"}, 403, FORBIDDEN),
    ("audit-key-as-worker-key", {"key": AUDIT_KEY}, 403, FORBIDDEN),
    (
        "audit-key-in-its-own-header",
        {"key": None, "headers": {"X-Internal-Key": AUDIT_KEY}},
        403,
        FORBIDDEN,
    ),
    ("two-keys-joined", {"key": f"{WORKER_KEY},{WORKER_KEY}"}, 403, FORBIDDEN),
    ("bad-json", {"raw": "{not json"}, 400, {"error": "request body is not valid JSON"}),
    ("empty-body", {"raw": ""}, 400, {"error": "request body is not valid JSON"}),
    ("not-utf8", {"raw": b"\xff\xfe"}, 400, {"error": "request body is not valid JSON"}),
    ("json-array", {"raw": "[]"}, 400, {"error": "request body must be a JSON object"}),
    ("json-string", {"raw": '"token"'}, 400, {"error": "request body must be a JSON object"}),
    (
        "too-large",
        {"raw": json.dumps({"pad": "x" * 20_000})},
        400,
        {"error": "request body is larger than 16384 bytes"},
    ),
]

# The first field each endpoint requires, to break it.
FIRST_FIELD = {"claim": "instance_id", "renew": "token", "finish": "token", "release": "token"}


def _field_cases(endpoint: str) -> list[Any]:
    name = FIRST_FIELD[endpoint]
    good = GOOD_BODY[endpoint]
    without = {k: v for k, v in good.items() if k != name}
    limit = 64
    return [
        ("missing-field", {"body": without}, 400, {"error": f"field {name!r} is missing"}),
        (
            "null-field",
            {"body": {**good, name: None}},
            400,
            {"error": f"field {name!r} is missing"},
        ),
        (
            "number-field",
            {"body": {**good, name: 7}},
            400,
            {"error": f"field {name!r} must be a string"},
        ),
        (
            "list-field",
            {"body": {**good, name: [TOKEN]}},
            400,
            {"error": f"field {name!r} must be a string"},
        ),
        ("empty-field", {"body": {**good, name: ""}}, 400, {"error": f"field {name!r} is empty"}),
        (
            "over-long-field",
            {"body": {**good, name: "x" * (limit + 1)}},
            400,
            {"error": f"field {name!r} is longer than {limit} characters"},
        ),
    ]


@pytest.mark.parametrize(
    ("endpoint", "request_kwargs", "status", "body"),
    [
        pytest.param(endpoint, kwargs, status, body, id=f"{endpoint}-{case}")
        for endpoint in ENDPOINTS
        for case, kwargs, status, body in REFUSALS + _field_cases(endpoint)
    ],
)
def test_refusal_table(
    client: Client, endpoint: str, request_kwargs: dict[str, Any], status: int, body: Any
) -> None:
    video = _target(endpoint)
    before = _snapshot(video)

    response = _post(client, endpoint, video.pk, **request_kwargs)

    assert _answer(response) == (status, body)
    assert _snapshot(video) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("method", ["get", "put", "delete", "patch"])
def test_wrong_method(client: Client, endpoint: str, method: str) -> None:
    video = _target(endpoint)
    before = _snapshot(video)

    response = getattr(client, method)(
        _url(endpoint, video.pk), headers={"X-Worker-Key": WORKER_KEY}
    )

    assert _answer(response) == (405, {"error": "method not allowed: use POST"})
    assert response["Allow"] == "POST"
    assert _snapshot(video) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("video_id", "sentence"),
    [
        pytest.param(UNKNOWN_ID, f"no video {UNKNOWN_ID}", id="unknown"),
        pytest.param("abc", "no video 'abc'", id="not-a-number"),
        pytest.param("-1", "no video '-1'", id="negative"),
        pytest.param("9" * 30, f"no video {'9' * 30!r}", id="beyond-bigint"),
        pytest.param("١٢", "no video '١٢'", id="non-ascii-digits"),
    ],
)
def test_unknown_video(client: Client, endpoint: str, video_id: Any, sentence: str) -> None:
    response = _post(client, endpoint, video_id)

    assert _answer(response) == (404, {"error": sentence})


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_no_key_configured_refuses_everyone(client: Client, settings: Any, endpoint: str) -> None:
    settings.WORKER_API_KEYS = []
    video = _target(endpoint)
    before = _snapshot(video)

    answers = [
        _answer(_post(client, endpoint, video.pk, key=key)) for key in (None, "", WORKER_KEY)
    ]

    assert answers == [(403, FORBIDDEN)] * 3
    assert _snapshot(video) == before


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_database_down_is_503(
    client: Client, monkeypatch: pytest.MonkeyPatch, endpoint: str
) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    service = {
        "claim": "video_claim",
        "renew": "video_lease_renew",
        "finish": "video_finish",
        "release": "video_release",
    }[endpoint]
    monkeypatch.setattr(f"video.services.{service}", refuse)

    response = _post(client, endpoint, 1)

    assert _answer(response) == (503, {"error": "database unavailable (OperationalError)"})


# --- claim --------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [WORKER_KEY, NEXT_WORKER_KEY], ids=["current-key", "rotated-key"])
def test_claim_answers_the_lease(client: Client, key: str) -> None:
    video = video_create()

    status, body = _answer(_post(client, "claim", video.pk, key=key))

    row = Video.objects.get(pk=video.pk)
    assert status == 200
    assert body == {
        "video_id": video.pk,
        "token": row.lease_token,
        "lease_expires_at": row.lease_expires_at.isoformat() if row.lease_expires_at else None,
        "lease_seconds": 120,
        "renew_seconds": 40,
        "attempts": 1,
        # No AWS in these tests: the lease is granted all the same, unprotected
        # (tests/scaling/test_fleet_claim.py protects against moto's server).
        "protected": False,
    }
    assert datetime.fromisoformat(body["lease_expires_at"]) == row.lease_expires_at
    assert (row.status, row.lease_instance_id, row.lease_worker_id) == (
        "PROCESSING",
        "i-0ccccccccccccccc3",
        "worker-3",
    )


@pytest.mark.parametrize(
    ("make", "reason", "sentence"),
    [
        pytest.param(
            lambda: video_leased(expires_in=60),
            "taken",
            "video {id} is being processed by another worker",
            id="taken",
        ),
        pytest.param(
            lambda: video_create(status="READY"), "done", "video {id} is already READY", id="done"
        ),
        pytest.param(
            lambda: video_create(status="FAILED"), "failed", "video {id} has FAILED", id="failed"
        ),
    ],
)
def test_claim_refused(client: Client, make: Any, reason: str, sentence: str) -> None:
    video = make()
    before = _snapshot(video)

    response = _post(client, "claim", video.pk)

    assert _answer(response) == (409, {"error": sentence.format(id=video.pk), "reason": reason})
    assert _snapshot(video) == before


def test_claim_worker_id_over_long(client: Client) -> None:
    video = video_create()
    body = {**GOOD_BODY["claim"], "worker_id": "w" * 129}

    response = _post(client, "claim", video.pk, body)

    assert _answer(response) == (400, {"error": "field 'worker_id' is longer than 128 characters"})
    assert Video.objects.get(pk=video.pk).status == "UPLOADED"


# --- renew, finish, release ---------------------------------------------------------------


def test_renew_answers_the_new_expiry(client: Client) -> None:
    video = video_leased(token=TOKEN, expires_in=5)

    status, body = _answer(_post(client, "renew", video.pk))

    row = Video.objects.get(pk=video.pk)
    assert status == 200
    assert row.lease_expires_at is not None
    assert body == {
        "video_id": video.pk,
        "lease_expires_at": row.lease_expires_at.isoformat(),
        "drain": False,
    }


LEASE_LOST_RENEW = "the lease on video {id} is lost: stop working on it, another worker may hold it"


@pytest.mark.parametrize(
    ("endpoint", "sentence"),
    [
        pytest.param("renew", LEASE_LOST_RENEW, id="renew"),
        pytest.param(
            "finish",
            "the lease on video {id} is lost: nothing changed, the video is PROCESSING",
            id="finish",
        ),
        pytest.param("release", "the lease on video {id} is lost: nothing changed", id="release"),
    ],
)
def test_wrong_token_is_409_lease_lost(client: Client, endpoint: str, sentence: str) -> None:
    video = video_leased(token=TOKEN)
    before = _snapshot(video)

    response = _post(client, endpoint, video.pk, {**GOOD_BODY[endpoint], "token": "not-it"})

    assert _answer(response) == (
        409,
        {"error": sentence.format(id=video.pk), "reason": "lease-lost"},
    )
    assert _snapshot(video) == before


def test_renew_after_loss_is_409(client: Client) -> None:
    video = video_leased(token=TOKEN, expires_in=-1)
    assert _answer(_post(client, "claim", video.pk))[0] == 200  # another worker takes it over
    before = _snapshot(video)

    response = _post(client, "renew", video.pk)

    assert _answer(response) == (
        409,
        {"error": LEASE_LOST_RENEW.format(id=video.pk), "reason": "lease-lost"},
    )
    assert _snapshot(video) == before


@pytest.mark.parametrize(
    ("body", "status_after", "error_after"),
    [
        pytest.param({"token": TOKEN, "status": "READY"}, "READY", "", id="ready"),
        pytest.param(
            {"token": TOKEN, "status": "FAILED", "error": "ffmpeg: bad input"},
            "FAILED",
            "ffmpeg: bad input",
            id="failed-with-error",
        ),
        pytest.param({"token": TOKEN, "status": "FAILED"}, "FAILED", "", id="failed-no-error"),
    ],
)
def test_finish_twice_answers_the_same(
    client: Client, body: dict[str, Any], status_after: str, error_after: str
) -> None:
    video = video_leased(token=TOKEN)

    first = _answer(_post(client, "finish", video.pk, body))
    after_first = _snapshot(video)
    second = _answer(_post(client, "finish", video.pk, body))

    assert first == second == (200, {"video_id": video.pk, "status": status_after})
    assert _snapshot(video) == after_first
    assert (after_first["status"], after_first["last_error"]) == (status_after, error_after)


def test_finish_with_the_other_status_after_finishing_is_409(client: Client) -> None:
    video = video_leased(token=TOKEN)
    _post(client, "finish", video.pk, {"token": TOKEN, "status": "READY"})
    before = _snapshot(video)

    response = _post(client, "finish", video.pk, {"token": TOKEN, "status": "FAILED"})

    assert _answer(response) == (
        409,
        {
            "error": f"the lease on video {video.pk} is lost: nothing changed, the video is READY",
            "reason": "lease-lost",
        },
    )
    assert _snapshot(video) == before


@pytest.mark.parametrize(
    ("body", "sentence"),
    [
        pytest.param(
            {"token": TOKEN, "status": "UPLOADED"},
            "field 'status' must be 'READY' or 'FAILED'",
            id="status-uploaded",
        ),
        pytest.param(
            {"token": TOKEN, "status": "ready"},
            "field 'status' must be 'READY' or 'FAILED'",
            id="status-lower-case",
        ),
        pytest.param({"token": TOKEN}, "field 'status' is missing", id="status-missing"),
        pytest.param(
            {"token": TOKEN, "status": True}, "field 'status' must be a string", id="status-bool"
        ),
        pytest.param(
            {"token": TOKEN, "status": "FAILED", "error": 3},
            "field 'error' must be a string",
            id="error-number",
        ),
        pytest.param(
            {"token": TOKEN, "status": "FAILED", "error": _TOO_LONG[:4001]},
            "field 'error' is longer than 4000 characters",
            id="error-over-long",
        ),
    ],
)
def test_finish_bad_fields(client: Client, body: dict[str, Any], sentence: str) -> None:
    video = video_leased(token=TOKEN)
    before = _snapshot(video)

    response = _post(client, "finish", video.pk, body)

    assert _answer(response) == (400, {"error": sentence})
    assert _snapshot(video) == before


def test_release_answers_uploaded(client: Client) -> None:
    video = video_leased(token=TOKEN)

    response = _post(client, "release", video.pk)

    assert _answer(response) == (200, {"video_id": video.pk, "status": "UPLOADED"})
    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.attempts, row.lease_token) == ("UPLOADED", 0, "")


def test_extra_fields_are_ignored(client: Client) -> None:
    video = video_leased(token=TOKEN)

    response = _post(client, "renew", video.pk, {"token": TOKEN, "progress": 0.5})

    assert _answer(response)[0] == 200


def test_the_worker_key_cannot_read_the_audit_view(client: Client) -> None:
    response = client.get(
        "/api/v1/internal/video/backlog-count/",
        headers={"X-Worker-Key": WORKER_KEY, "X-Internal-Key": WORKER_KEY},
    )
    assert response.status_code == 403


def test_a_whole_job_through_the_api(client: Client) -> None:
    video = video_create()

    _, lease = _answer(_post(client, "claim", video.pk))
    renewed = _answer(_post(client, "renew", video.pk, {"token": lease["token"]}))
    finished = _answer(
        _post(client, "finish", video.pk, {"token": lease["token"], "status": "READY"})
    )

    assert renewed[0] == 200
    assert finished == (200, {"video_id": video.pk, "status": "READY"})
    assert Video.objects.get(pk=video.pk).status == "READY"


def test_no_csrf_token_needed() -> None:
    client = Client(enforce_csrf_checks=True)
    video = video_create()

    response = _post(client, "claim", video.pk)

    assert _answer(response)[0] == 200
