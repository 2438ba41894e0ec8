"""The slot claim with Redis, the database, either or neither answering (DESIGN.md
invariants 1 and 2): Redis is the fast path, the ``SlotClaim`` row the authority."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from django.db import OperationalError
from django.utils import timezone

from scaling.conf import scaling_settings
from scaling.models import MetricPublication, SlotClaim
from scaling.publishing.audit import spool_flush
from scaling.publishing.slots import slot_claim_key, slot_start_get
from scaling.publishing.tick import backlog_tick
from scaling.state import state_store_get
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

DIMENSIONS: list[Any] = [
    {"Name": "WorkerType", "Value": "Video"},
    {"Name": "AutoScalingGroupName", "Value": "academy-video-worker-asg"},
]
REDIS_REFUSING = "redis://127.0.0.1:1/0"  # nothing listens on port 1: refused at once


def _sample_counts(aws: dict[str, str]) -> list[float]:
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    now = datetime.now(UTC)
    response = cloudwatch.get_metric_statistics(
        Namespace="Academy/VideoProcessing",
        MetricName="BacklogCount",
        Dimensions=DIMENSIONS,
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["SampleCount"],
    )
    return [p["SampleCount"] for p in response["Datapoints"]]


def _claim_rows_down(monkeypatch: pytest.MonkeyPatch, *, hang: float = 0.0) -> list[str]:
    """The database refuses (or hangs on) the claim row, and the backlog query as well;
    the list says which of the two were asked."""
    asked: list[str] = []

    def refuse(what: str) -> bool:
        asked.append(what)
        if hang:
            time.sleep(hang)
        raise OperationalError("connection refused")

    monkeypatch.setattr("scaling.publishing.claim.claim_row_insert", lambda **_: refuse("claim"))
    monkeypatch.setattr("video.backlog.video_backlog_get", lambda: refuse("backlog"))
    return asked


def _sqs_depth(aws: dict[str, str], visible: int) -> None:
    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    for i in range(visible):
        sqs.send_message(QueueUrl=aws["queue_url"], MessageBody=f"video-{i}")


def test_both_answering_the_tick_holds_the_redis_claim_and_the_row(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=2)

    result = backlog_tick()

    assert (result.published, result.source) == (True, "db")
    claim = SlotClaim.objects.get()
    assert claim.key == slot_claim_key(scaling_settings(), result.slot_start)
    assert (claim.slot_start, claim.redis_answered) == (result.slot_start, True)


def test_redis_down_the_database_claims_and_publishes_once(
    aws: dict[str, str], settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.SCALING_STATE_URL = REDIS_REFUSING
    videos_create(UPLOADED=3, PROCESSING=1)
    now = timezone.now()

    first = backlog_tick(now=now)
    second = backlog_tick(now=now)

    assert (first.published, first.value, first.source, first.error) == (True, 4, "db", "")
    assert (second.published, second.status) == (False, "already-claimed")
    assert _sample_counts(aws) == [1.0]
    assert SlotClaim.objects.get().redis_answered is False
    row = MetricPublication.objects.get()
    assert (row.status, row.source, row.spooled) == ("published", "db", False)
    assert "slot claimed in the database, Redis did not answer" in caplog.text


def test_a_row_taken_while_redis_was_down_refuses_a_tick_that_redis_grants(
    aws: dict[str, str], settings: Any
) -> None:
    videos_create(UPLOADED=1)
    now = timezone.now()
    settings.SCALING_STATE_URL = REDIS_REFUSING
    assert backlog_tick(now=now).published

    settings.SCALING_STATE_URL = f"file://{settings.VAR_DIR}/other-claims"  # Redis is back
    late = backlog_tick(now=now)

    assert (late.published, late.status) == (False, "already-claimed")
    assert _sample_counts(aws) == [1.0]


def test_database_down_redis_alone_decides_as_before(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqs_depth(aws, visible=5)
    _claim_rows_down(monkeypatch)
    now = timezone.now()

    first = backlog_tick(now=now)
    second = backlog_tick(now=now)

    assert (first.published, first.value, first.source, first.audit) == (True, 5, "sqs", "spooled")
    assert first.error.startswith(
        "database: OperationalError: connection refused (at the slot claim)"
    )
    assert (second.published, second.status) == (False, "already-claimed")
    assert _sample_counts(aws) == [1.0]
    assert SlotClaim.objects.count() == 0


def test_a_database_hanging_on_the_claim_costs_one_database_timeout(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _sqs_depth(aws, visible=2)
    asked = _claim_rows_down(monkeypatch, hang=30)

    started = time.monotonic()
    result = backlog_tick()
    elapsed = time.monotonic() - started

    assert (result.published, result.value, result.source) == (True, 2, "sqs")
    assert result.error.startswith("database: DeadlineExceeded: the database did not answer")
    assert "(at the slot claim)" in result.error
    # The database that hung on the claim is not asked for the backlog: one timeout
    # (3 s at 60 s slots), not two.
    assert asked == ["claim"]
    assert elapsed < 6.0, f"the tick took {elapsed:.1f} s"


def test_redis_and_database_down_publish_nothing_and_record_the_failure(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    _sqs_depth(aws, visible=3)  # SQS answers, but no store can say the slot is ours
    settings.SCALING_STATE_URL = REDIS_REFUSING
    _claim_rows_down(monkeypatch)

    result = backlog_tick()

    assert (result.published, result.value, result.status, result.audit) == (
        False,
        None,
        "failed",
        "spooled",
    )
    assert result.error.startswith("no slot claim store answered; redis: Redis: Error 111")
    assert "database: OperationalError: connection refused" in result.error
    assert _sample_counts(aws) == []
    assert state_store_get().spool_size() == 1  # Redis is down: in the local spool
    assert spool_flush() == 1  # the database answers the test's own writes
    row = MetricPublication.objects.get()
    assert (row.status, row.value, row.spooled) == ("failed", None, True)
    assert row.error.startswith("no slot claim store answered")


def test_claim_rows_are_pruned_with_the_audit_rows(aws: dict[str, str], settings: Any) -> None:
    settings.SCALING_AUDIT_RETENTION_DAYS = "30"
    conf = scaling_settings()
    old_slot = slot_start_get(at=timezone.now() - timedelta(days=31), interval=conf.interval)
    recent_slot = slot_start_get(at=timezone.now() - timedelta(days=29), interval=conf.interval)
    for slot in (old_slot, recent_slot):
        SlotClaim.objects.create(
            key=slot_claim_key(conf, slot), slot_start=slot, redis_answered=True
        )

    result = backlog_tick()

    assert result.published
    assert sorted(SlotClaim.objects.values_list("slot_start", flat=True)) == [
        recent_slot,
        result.slot_start,
    ]
