from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from django.db import OperationalError

from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from scaling.publishing.slots import slot_start_get
from scaling.publishing.tick import backlog_tick
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

DIMENSIONS = [
    {"Name": "WorkerType", "Value": "Video"},
    {"Name": "AutoScalingGroupName", "Value": "academy-video-worker-asg"},
]


def _cloudwatch(aws: dict[str, str]) -> Any:
    return boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _datapoints(aws: dict[str, str], metric: str = "BacklogCount") -> list[dict[str, Any]]:
    now = datetime.now(UTC)
    response = _cloudwatch(aws).get_metric_statistics(
        Namespace="Academy/VideoProcessing",
        MetricName=metric,
        Dimensions=DIMENSIONS,
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )
    return list(response["Datapoints"])


def _db_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)


def _sqs_depth(aws: dict[str, str], visible: int) -> None:
    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    for i in range(visible):
        sqs.send_message(QueueUrl=aws["queue_url"], MessageBody=f"video-{i}")


def test_tick_publishes_uploaded_plus_processing_with_exact_dimensions(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=4)

    result = backlog_tick()

    assert (result.published, result.value, result.source) == (True, 5, "db")
    points = _datapoints(aws)
    assert [(p["Maximum"], p["SampleCount"]) for p in points] == [(5.0, 1.0)]
    row = MetricPublication.objects.get()
    assert (row.value, row.source, row.status, row.uploaded_count, row.processing_count) == (
        5,
        "db",
        "published",
        3,
        2,
    )
    assert row.slot_start == result.slot_start


def test_tick_publishes_oldest_age_beside_the_count(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=1)

    backlog_tick()

    ages = _datapoints(aws, metric="OldestBacklogAgeSeconds")
    assert len(ages) == 1
    assert 0 <= ages[0]["Maximum"] < 60


def test_second_tick_in_the_same_slot_publishes_nothing(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=1)
    now = datetime.now(UTC)

    first = backlog_tick(now=now)
    second = backlog_tick(now=now)

    assert (first.published, second.status) == (True, "already-claimed")
    assert [p["SampleCount"] for p in _datapoints(aws)] == [1.0]
    assert MetricPublication.objects.count() == 1


def test_database_down_falls_back_to_sqs_and_spools_the_audit_row(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqs_depth(aws, visible=4)
    _db_down(monkeypatch)

    result = backlog_tick()

    assert (result.published, result.value, result.source, result.audit) == (
        True,
        4,
        "sqs",
        "spooled",
    )
    assert "database: OperationalError: connection refused" in result.error
    assert [p["Maximum"] for p in _datapoints(aws)] == [4.0]
    assert MetricPublication.objects.count() == 0
    assert spool_flush() == 1
    row = MetricPublication.objects.get()
    assert (row.value, row.source, row.status, row.spooled) == (4, "sqs", "published", True)


def test_both_sources_down_publish_nothing_and_record_a_failure(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    _db_down(monkeypatch)
    settings.SCALING_SQS_QUEUE_URL = "http://127.0.0.1:9/123456789012/missing"

    result = backlog_tick()

    assert (result.published, result.value, result.source, result.status) == (
        False,
        None,
        None,
        "failed",
    )
    assert _datapoints(aws) == []
    spool_flush()
    row = MetricPublication.objects.get()
    assert (row.value, row.status, row.source) == (None, "failed", "")
    assert row.error.startswith("no source answered; database: OperationalError")


def test_expired_slot_never_publishes(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=2)
    old_slot = slot_start_get(at=datetime.now(UTC) - timedelta(minutes=5), interval=60)

    result = backlog_tick(slot_start=old_slot)

    assert (result.published, result.status) == (False, "expired")
    assert _datapoints(aws) == []


def test_dry_run_measures_but_neither_publishes_nor_records(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=2)

    result = backlog_tick(dry_run=True)

    assert (result.status, result.value, result.published) == ("dry-run", 2, False)
    assert _datapoints(aws) == []
    assert MetricPublication.objects.count() == 0


@pytest.mark.parametrize(
    ("at", "interval", "expected"),
    [
        ("2026-01-01T00:00:59+00:00", 60, "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T00:01:00+00:00", 60, "2026-01-01T00:01:00+00:00"),
        ("2026-01-01T00:00:29+00:00", 30, "2026-01-01T00:00:00+00:00"),
        ("2026-01-01T00:00:39+00:00", 10, "2026-01-01T00:00:30+00:00"),
    ],
)
def test_slot_start(at: str, interval: int, expected: str) -> None:
    assert slot_start_get(at=datetime.fromisoformat(at), interval=interval).isoformat() == expected
