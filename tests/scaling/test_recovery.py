"""Lease recovery inside the tick: once per slot, only after the database has
answered for a whole lease, counted in the audit row and published."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from django.db import OperationalError

from scaling.models import MetricPublication
from scaling.publishing.outcome import TickStatus
from scaling.publishing.tick import backlog_tick
from scaling.state import state_store_get
from tests.factories import video_leased
from video.models import Video, VideoStatus

pytestmark = pytest.mark.django_db

LEASE = 120


def _database_up_for(seconds: float) -> None:
    store = state_store_get()
    store.database_up_since(healthy=False, now=0)
    store.database_up_since(healthy=True, now=time.time() - seconds)


def _recovered_datapoints(aws: dict[str, str]) -> list[float]:
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace="Academy/VideoProcessing",
        MetricName="RecoveredVideos",
        Dimensions=[
            {"Name": "WorkerType", "Value": "Video"},
            {"Name": "AutoScalingGroupName", "Value": "academy-video-worker-asg"},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Sum"],
    )
    return [point["Sum"] for point in answer["Datapoints"]]


def test_expired_leases_are_recovered_counted_and_published(
    aws: dict[str, str], settings: Any
) -> None:
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    settings.VIDEO_MAX_ATTEMPTS = "3"
    lost = video_leased(expires_in=-5, attempts=1)
    lost_for_good = video_leased(expires_in=-5, attempts=3)
    alive = video_leased(expires_in=60)
    _database_up_for(LEASE + 1)

    result = backlog_tick()

    statuses = dict(Video.objects.values_list("pk", "status"))
    assert (result.status, result.recovered) == (TickStatus.PUBLISHED, 2)
    assert statuses == {
        lost.pk: VideoStatus.UPLOADED,
        lost_for_good.pk: VideoStatus.FAILED,
        alive.pk: VideoStatus.PROCESSING,
    }
    assert Video.objects.get(pk=lost_for_good.pk).last_error == "lost its worker 3 times"
    assert MetricPublication.objects.get().recovered_count == 2
    assert _recovered_datapoints(aws) == [2.0]


def test_right_after_a_database_outage_nothing_is_recovered(
    aws: dict[str, str], settings: Any
) -> None:
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    expired = video_leased(expires_in=-300)
    _database_up_for(LEASE - 10)  # the workers have not had a whole lease to renew

    result = backlog_tick()

    assert (result.status, result.recovered) == (TickStatus.PUBLISHED, None)
    assert Video.objects.get(pk=expired.pk).status == VideoStatus.PROCESSING
    assert MetricPublication.objects.get().recovered_count is None
    assert _recovered_datapoints(aws) == []


def test_a_tick_without_the_database_restarts_the_wait(
    aws: dict[str, str], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    _database_up_for(LEASE + 1)

    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)
    down = backlog_tick()
    monkeypatch.undo()
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    up_since = state_store_get().database_up_since(healthy=None, now=time.time())

    assert (down.source, down.recovered, up_since) == ("sqs", None, None)


def test_first_tick_only_starts_the_clock(aws: dict[str, str], settings: Any) -> None:
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    expired = video_leased(expires_in=-300)
    before = time.time()

    result = backlog_tick()

    since = state_store_get().database_up_since(healthy=None, now=time.time())
    assert result.recovered is None
    assert since is not None
    assert since >= before
    assert Video.objects.get(pk=expired.pk).status == VideoStatus.PROCESSING
