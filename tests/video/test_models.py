from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.utils import timezone

from video.models import Video, VideoStatus

pytestmark = pytest.mark.django_db


def _video_changed_long_ago(status: str = VideoStatus.UPLOADED) -> Video:
    video = Video.objects.create(title="Lecture 1", status=status)
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=1))
    return Video.objects.get(pk=video.pk)


@pytest.mark.parametrize("status", VideoStatus.values)
def test_creatable_with_only_title_and_status(status: str) -> None:
    before = timezone.now()
    video = Video.objects.create(title="Lecture 1", status=status)
    video.refresh_from_db()
    assert video.status == status
    assert before <= video.created_at <= timezone.now()
    assert before <= video.updated_at <= timezone.now()
    assert before <= video.status_changed_at <= timezone.now()


def test_statuses_include_the_contract_ones() -> None:
    assert {"UPLOADED", "PROCESSING", "READY", "FAILED"} <= set(VideoStatus.values)


def test_status_change_through_save_moves_status_changed_at() -> None:
    video = _video_changed_long_ago()
    earlier = video.status_changed_at
    video.status = VideoStatus.PROCESSING
    video.save()
    video.refresh_from_db()
    assert video.status_changed_at > earlier + timedelta(hours=23)


def test_status_change_with_update_fields_saves_status_changed_at() -> None:
    video = _video_changed_long_ago()
    earlier = video.status_changed_at
    video.status = VideoStatus.READY
    video.save(update_fields=["status"])
    video.refresh_from_db()
    assert video.status == VideoStatus.READY
    assert video.status_changed_at > earlier + timedelta(hours=23)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda video: setattr(video, "title", "Renamed"), id="title"),
        pytest.param(
            lambda video: setattr(video, "status", VideoStatus.UPLOADED), id="same-status"
        ),
        pytest.param(lambda video: None, id="nothing"),
    ],
)
def test_save_without_status_change_keeps_status_changed_at(
    change: Callable[[Video], None],
) -> None:
    video = _video_changed_long_ago()
    earlier = video.status_changed_at
    change(video)
    video.save()
    video.refresh_from_db()
    assert video.status_changed_at == earlier


def test_second_change_on_the_same_instance_moves_it_again() -> None:
    video = Video.objects.create(title="Lecture 1", status=VideoStatus.UPLOADED)
    video.status = VideoStatus.PROCESSING
    video.save()
    Video.objects.filter(pk=video.pk).update(status_changed_at=timezone.now() - timedelta(days=1))
    video.refresh_from_db()
    earlier = video.status_changed_at
    video.status = VideoStatus.READY
    video.save()
    video.refresh_from_db()
    assert video.status_changed_at > earlier + timedelta(hours=23)


def test_a_new_video_holds_no_lease() -> None:
    video = Video.objects.create(title="Lecture 1", status=VideoStatus.UPLOADED)
    row = Video.objects.values(
        "processing_started_at",
        "lease_expires_at",
        "lease_instance_id",
        "lease_worker_id",
        "lease_token",
        "attempts",
        "last_error",
    ).get(pk=video.pk)
    assert row == {
        "processing_started_at": None,
        "lease_expires_at": None,
        "lease_instance_id": "",
        "lease_worker_id": "",
        "lease_token": "",
        "attempts": 0,
        "last_error": "",
    }
