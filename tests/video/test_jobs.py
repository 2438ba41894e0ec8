"""Job messages: one SQS message per video that becomes UPLOADED, after the commit."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pytest
from django.db import transaction

from tests.factories import video_create, video_leased
from video import services
from video.models import Video

pytestmark = pytest.mark.django_db

QUEUE_URL = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/academy-video-jobs"


class FakeSqs:
    def __init__(self, error: Exception | None = None) -> None:
        self.sent: list[dict[str, Any]] = []
        self.error = error

    def send_message(self, **kwargs: Any) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        self.sent.append(kwargs)
        return {"MessageId": str(len(self.sent))}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> FakeSqs:
    settings.SCALING_SQS_QUEUE_URL = QUEUE_URL
    fake = FakeSqs()
    monkeypatch.setattr("video.jobs.sqs_client", lambda **kwargs: fake)
    return fake


def _bodies(sqs: FakeSqs) -> list[Any]:
    assert {m["QueueUrl"] for m in sqs.sent} <= {QUEUE_URL}
    return [json.loads(m["MessageBody"]) for m in sqs.sent]


def _recover_one_with(attempts: int) -> Any:
    video_leased(expires_in=-1, attempts=attempts)
    return services.videos_recover_expired(max_attempts=3)


@pytest.mark.parametrize(
    ("action", "messages"),
    [
        pytest.param(lambda: services.video_upload(title="Lecture"), 1, id="upload"),
        pytest.param(
            lambda: services.video_release(video_id=video_leased(token="t").pk, token="t"),
            1,
            id="release",
        ),
        pytest.param(lambda: _recover_one_with(1), 1, id="recovery-to-uploaded"),
        pytest.param(lambda: _recover_one_with(3), 0, id="recovery-to-failed"),
        pytest.param(
            lambda: services.video_claim(
                video_id=video_create().pk, instance_id="i-1", worker_id="w"
            ),
            0,
            id="claim",
        ),
        pytest.param(
            lambda: services.video_finish(
                video_id=video_leased(token="t").pk, token="t", status="READY"
            ),
            0,
            id="finish",
        ),
        pytest.param(
            lambda: services.video_release(video_id=video_leased(token="t").pk, token="wrong"),
            0,
            id="refused-release",
        ),
    ],
)
def test_a_message_for_each_video_that_becomes_uploaded(
    sqs: FakeSqs,
    django_capture_on_commit_callbacks: Any,
    action: Callable[[], Any],
    messages: int,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        action()

    bodies = _bodies(sqs)
    assert len(bodies) == messages
    for body in bodies:
        assert set(body) == {"video_id"}
        assert Video.objects.get(pk=body["video_id"]).status == "UPLOADED"


def test_the_message_goes_only_after_the_commit(
    sqs: FakeSqs, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        video = services.video_upload(title="Lecture")
        assert sqs.sent == []

    assert len(callbacks) == 1
    assert _bodies(sqs) == [{"video_id": video.pk}]


def test_a_rolled_back_upload_sends_nothing(
    sqs: FakeSqs, django_capture_on_commit_callbacks: Any
) -> None:
    class Undo(Exception):
        pass

    def upload_then_fail() -> None:
        with transaction.atomic():
            services.video_upload(title="Lecture")
            raise Undo

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(Undo):
        upload_then_fail()

    assert sqs.sent == []
    assert not Video.objects.exists()


def test_no_queue_configured_sends_nothing(
    sqs: FakeSqs, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.SCALING_SQS_QUEUE_URL = ""

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.video_upload(title="Lecture")

    assert (callbacks, sqs.sent) == ([], [])


def test_a_failure_to_send_is_logged_never_raised(
    sqs: FakeSqs, django_capture_on_commit_callbacks: Any, caplog: pytest.LogCaptureFixture
) -> None:
    sqs.error = ConnectionError("queue unreachable")

    with (
        caplog.at_level(logging.WARNING, logger="video.jobs"),
        django_capture_on_commit_callbacks(execute=True),
    ):
        video = services.video_upload(title="Lecture")

    assert Video.objects.get(pk=video.pk).status == "UPLOADED"
    assert [r.getMessage() for r in caplog.records if r.name == "video.jobs"] == [
        f"Video job message not sent | video_id={video.pk} error=ConnectionError: queue unreachable"
    ]
