"""POST /api/v1/internal/video/claim-next/ through Django's test client: every answer."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client

from tests.factories import video_create, video_leased
from tests.video.test_views import AUDIT_KEY, FORBIDDEN, NEXT_WORKER_KEY, REFUSALS, WORKER_KEY
from video.models import Video

pytestmark = pytest.mark.django_db

URL = "/api/v1/internal/video/claim-next/"
GOOD = {"instance_id": "i-0ccccccccccccccc3", "worker_id": "worker-3"}


@pytest.fixture(autouse=True)
def keys(settings: Any) -> None:
    settings.WORKER_API_KEYS = [WORKER_KEY, NEXT_WORKER_KEY]
    settings.INTERNAL_API_KEYS = [AUDIT_KEY]
    settings.VIDEO_LEASE_SECONDS = "120"
    settings.SCALING_SQS_QUEUE_URL = ""
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nobody listens: never real AWS


@pytest.fixture
def protections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The instances the view asked to protect (as a claim does), each answered True."""
    asked: list[str] = []

    def protect(instance_id: str) -> bool:
        asked.append(instance_id)
        return True

    monkeypatch.setattr("video.views.instance_protect_for_claim", protect)
    return asked


def _post(
    client: Client,
    body: Any = None,
    *,
    raw: str | bytes | None = None,
    key: str | None = WORKER_KEY,
    headers: dict[str, str] | None = None,
) -> Any:
    data = raw if raw is not None else json.dumps(GOOD if body is None else body)
    extra = dict(headers or {})
    if key is not None:
        extra["X-Worker-Key"] = key
    return client.post(URL, data=data, content_type="application/json", headers=extra)


def _answer(response: Any) -> tuple[int, Any]:
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    return response.status_code, response.json()


def _rows() -> list[dict[str, Any]]:
    return [dict(row) for row in Video.objects.order_by("pk").values()]


_FIELD_CASES = [
    (
        f"{name}-{case}",
        {"body": change},
        400,
        {"error": sentence},
    )
    for name in ("instance_id", "worker_id")
    for case, change, sentence in [
        ("missing", {k: v for k, v in GOOD.items() if k != name}, f"field {name!r} is missing"),
        ("null", {**GOOD, name: None}, f"field {name!r} is missing"),
        ("number", {**GOOD, name: 7}, f"field {name!r} must be a string"),
        ("empty", {**GOOD, name: ""}, f"field {name!r} is empty"),
        (
            "over-long",
            {**GOOD, name: "x" * 200},
            f"field {name!r} is longer than {64 if name == 'instance_id' else 128} characters",
        ),
    ]
]


@pytest.mark.parametrize(
    ("request_kwargs", "status", "body"),
    [pytest.param(kw, st, b, id=case) for case, kw, st, b in REFUSALS + _FIELD_CASES],
)
def test_refusals_change_nothing(
    client: Client, request_kwargs: dict[str, Any], status: int, body: Any
) -> None:
    video_create()
    before = _rows()

    assert _answer(_post(client, **request_kwargs)) == (status, body)
    assert _rows() == before


@pytest.mark.parametrize("method", ["get", "put", "delete"])
def test_wrong_method(client: Client, method: str) -> None:
    video_create()
    before = _rows()
    response = getattr(client, method)(URL, headers={"X-Worker-Key": WORKER_KEY})
    assert _answer(response) == (405, {"error": "method not allowed: use POST"})
    assert response["Allow"] == "POST"
    assert _rows() == before


def test_no_key_configured_refuses_everyone(client: Client, settings: Any) -> None:
    settings.WORKER_API_KEYS = []
    video_create()
    before = _rows()
    answers = [_answer(_post(client, key=key)) for key in (None, "", WORKER_KEY)]
    assert answers == [(403, FORBIDDEN)] * 3
    assert _rows() == before


def test_database_down_is_503(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> Any:
        raise OperationalError("connection refused")

    monkeypatch.setattr("video.services.video_claim_next", refuse)
    assert _answer(_post(client)) == (503, {"error": "database unavailable (OperationalError)"})


def test_nothing_waiting_is_204_with_no_body_and_no_protection(
    client: Client, protections: list[str]
) -> None:
    video_leased(expires_in=60)
    video_leased(expires_in=-5)  # a lost lease is recovery's, not claim-next's
    video_create(status="READY")
    video_create(status="FAILED")
    before = _rows()

    response = _post(client)

    assert (response.status_code, response.content) == (204, b"")
    assert response["Cache-Control"] == "no-store"
    assert _rows() == before
    assert protections == []


@pytest.mark.parametrize("key", [WORKER_KEY, NEXT_WORKER_KEY], ids=["current-key", "rotated-key"])
def test_the_longest_waiting_video_is_claimed_as_a_claim_would_and_protected(
    client: Client, protections: list[str], key: str
) -> None:
    video_create(status="READY")
    oldest = video_create()
    video_create()

    status, body = _answer(_post(client, key=key))

    row = Video.objects.get(pk=oldest.pk)
    assert status == 200
    assert row.lease_expires_at is not None
    assert body == {
        "video_id": oldest.pk,
        "token": row.lease_token,
        "lease_expires_at": row.lease_expires_at.isoformat(),
        "lease_seconds": 120,
        "renew_seconds": 40,
        "attempts": 1,
        "protected": True,
    }
    assert (row.status, row.lease_instance_id, row.lease_worker_id) == (
        "PROCESSING",
        "i-0ccccccccccccccc3",
        "worker-3",
    )
    assert protections == ["i-0ccccccccccccccc3"]


def test_a_message_that_comes_later_is_refused_taken_then_done(client: Client) -> None:
    """The video's message arrives after claim-next took it: 409, and the worker deletes it."""
    video = video_create()
    lease = _answer(_post(client))[1]
    claim = f"/api/v1/internal/video/{video.pk}/claim/"
    finish = f"/api/v1/internal/video/{video.pk}/finish/"
    headers = {"X-Worker-Key": WORKER_KEY}

    def post(url: str, body: dict[str, str]) -> tuple[int, Any]:
        return _answer(client.post(url, body, content_type="application/json", headers=headers))

    assert post(claim, GOOD)[1]["reason"] == "taken"
    assert post(finish, {"token": lease["token"], "status": "READY"})[0] == 200
    assert post(claim, GOOD)[1]["reason"] == "done"
    assert Video.objects.get(pk=video.pk).attempts == 1
    assert _post(client).status_code == 204
