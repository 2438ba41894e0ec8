from __future__ import annotations

import json
import logging
import runpy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import OperationalError
from django.test import Client
from django.utils import timezone

from scaling.models import MetricPublication
from tests.factories import video_create, videos_create
from video.models import VideoStatus

pytestmark = pytest.mark.django_db

URL = "/api/v1/internal/video/backlog-count/"
CURRENT_KEY = "k-current-3f9a1c"
NEXT_KEY = "k-next-77b2e0"
UTF8_KEY = "ключ-2024"
FORBIDDEN = {"error": "forbidden"}


@pytest.fixture
def keys(settings: Any) -> list[str]:
    settings.INTERNAL_API_KEYS = [CURRENT_KEY, NEXT_KEY, UTF8_KEY]
    return list(settings.INTERNAL_API_KEYS)


def _get(client: Client, key: str | None) -> Any:
    extra = {} if key is None else {"HTTP_X_INTERNAL_KEY": key}
    return client.get(URL, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("key", "status", "body"),
    [
        pytest.param(None, 403, FORBIDDEN, id="missing"),
        pytest.param("", 403, FORBIDDEN, id="empty"),
        pytest.param("k-current-3f9a1d", 403, FORBIDDEN, id="wrong"),
        pytest.param(CURRENT_KEY[:-1], 403, FORBIDDEN, id="prefix-of-key"),
        pytest.param(CURRENT_KEY + "x", 403, FORBIDDEN, id="key-plus-one"),
        pytest.param(CURRENT_KEY * 400, 403, FORBIDDEN, id="very-long"),
        pytest.param("clé-ünïcode", 403, FORBIDDEN, id="non-ascii-wrong"),
        # What a WSGI server hands over for the UTF-8 bytes of the right key.
        pytest.param(UTF8_KEY.encode().decode("latin-1"), 200, None, id="non-ascii-right"),
        # Two headers are joined with a comma by the server: never a key.
        pytest.param(f"{CURRENT_KEY},{CURRENT_KEY}", 403, FORBIDDEN, id="duplicated"),
        pytest.param(f"{CURRENT_KEY}, {NEXT_KEY}", 403, FORBIDDEN, id="duplicated-two-keys"),
        pytest.param(f" {CURRENT_KEY}", 403, FORBIDDEN, id="leading-space"),
        pytest.param(CURRENT_KEY.upper(), 403, FORBIDDEN, id="other-case"),
        pytest.param(CURRENT_KEY, 200, None, id="current-key"),
        pytest.param(NEXT_KEY, 200, None, id="rotated-second-key"),
    ],
)
def test_key_header_table(
    client: Client, keys: list[str], key: str | None, status: int, body: Any
) -> None:
    response = _get(client, key)

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert response["Cache-Control"] == "no-store"
    if body is not None:
        assert response.json() == body
    else:
        assert response.json()["backlog_count"] == 0


def test_no_key_configured_refuses_everyone(client: Client, settings: Any) -> None:
    settings.INTERNAL_API_KEYS = []

    answers = [_get(client, key) for key in (None, "", CURRENT_KEY, "anything")]

    assert [(r.status_code, r.json()) for r in answers] == [(403, FORBIDDEN)] * 4


def test_old_environment_name_is_read(
    client: Client, settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("INTERNAL_API_KEY", raising=False)
    monkeypatch.setenv("LAMBDA_INTERNAL_API_KEY", f" {CURRENT_KEY} , {NEXT_KEY} ")
    monkeypatch.setenv("ACADEMY_VAR_DIR", str(tmp_path))
    fresh = runpy.run_path(str(Path(__file__).parents[2] / "academy" / "settings.py"))
    settings.INTERNAL_API_KEYS = fresh["INTERNAL_API_KEYS"]

    assert fresh["INTERNAL_API_KEYS"] == [CURRENT_KEY, NEXT_KEY]
    assert _get(client, NEXT_KEY).status_code == 200
    assert _get(client, "k-old-wrong").status_code == 403


def test_new_environment_name_wins_over_the_old(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("INTERNAL_API_KEY", NEXT_KEY)
    monkeypatch.setenv("LAMBDA_INTERNAL_API_KEY", CURRENT_KEY)
    monkeypatch.setenv("ACADEMY_VAR_DIR", str(tmp_path))
    fresh = runpy.run_path(str(Path(__file__).parents[2] / "academy" / "settings.py"))

    assert fresh["INTERNAL_API_KEYS"] == [NEXT_KEY]


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete", "head", "options"])
def test_methods_other_than_get_are_405(client: Client, keys: list[str], method: str) -> None:
    response = getattr(client, method)(URL, HTTP_X_INTERNAL_KEY=CURRENT_KEY)

    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response["Cache-Control"] == "no-store"
    if method != "head":
        assert json.loads(response.content) == {"error": "method not allowed"}


def test_body_counts_backlog_and_reports_the_last_publication(
    client: Client, keys: list[str]
) -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=4, FAILED=1)
    video_create(status=VideoStatus.UPLOADED, at=timezone.now() - timedelta(minutes=10))
    slot = timezone.now().replace(microsecond=0) - timedelta(seconds=90)
    MetricPublication.objects.create(
        slot_start=slot - timedelta(seconds=60),
        interval_seconds=60,
        value=2,
        source="db",
        status="published",
        duration_ms=5.0,
        asg_name="academy-video-worker-asg",
    )
    MetricPublication.objects.create(
        slot_start=slot,
        interval_seconds=60,
        value=7,
        source="sqs",
        status="published",
        duration_ms=12.5,
        asg_name="academy-video-worker-asg",
    )

    body = _get(client, CURRENT_KEY).json()

    assert sorted(body) == [
        "backlog_count",
        "fleet",
        "last_publication",
        "measured_at",
        "oldest_waiting_seconds",
        "processing",
        "uploaded",
    ]
    assert (body["backlog_count"], body["uploaded"], body["processing"]) == (6, 4, 2)
    assert body["fleet"] == "video"
    assert 599 <= body["oldest_waiting_seconds"] <= 660
    last = body["last_publication"]
    assert (last["value"], last["source"], last["status"]) == (7, "sqs", "published")
    assert last["slot_start"] == slot.isoformat()
    assert 89 <= last["age_seconds"] <= 150


def test_no_publication_yet_is_null(client: Client, keys: list[str]) -> None:
    body = _get(client, CURRENT_KEY).json()

    assert (body["backlog_count"], body["oldest_waiting_seconds"]) == (0, None)
    assert body["last_publication"] is None


def test_database_down_is_503_with_one_line(
    client: Client, keys: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise OperationalError('connection to server at "10.0.0.5" failed\n\tIs it running?')

    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)

    response = _get(client, CURRENT_KEY)

    assert response.status_code == 503
    assert response["Cache-Control"] == "no-store"
    assert response.json() == {"error": "database unavailable (OperationalError)"}


def test_keys_never_reach_the_logs(
    client: Client,
    keys: list[str],
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "k-wrong-but-secret-looking-5d1e"
    _get(client, CURRENT_KEY)
    _get(client, wrong)
    _get(client, NEXT_KEY + "," + CURRENT_KEY)
    client.post(URL, HTTP_X_INTERNAL_KEY=CURRENT_KEY)

    records = [
        f"{r.name} {r.levelname} {r.getMessage()} {r.args!r} {r.__dict__!r}" for r in caplog.records
    ]
    printed = capfd.readouterr()
    everything = "\n".join([*records, printed.out, printed.err])
    assert any(r.name == "django.request" for r in caplog.records)  # 403s and 405 were logged
    assert any("reason=key does not match" in r.getMessage() for r in caplog.records)
    for secret in (CURRENT_KEY, NEXT_KEY, wrong):
        assert secret not in everything
