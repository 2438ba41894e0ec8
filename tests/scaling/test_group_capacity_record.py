"""In service and desired capacity, read once per slot by the reconciler, recorded on the
audit row (never published as metrics: AWS has GroupInServiceInstances/GroupDesiredCapacity)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from scaling.models import MetricPublication
from scaling.publishing.tick import backlog_tick
from tests.scaling.fleet_support import Call, calls, group_resize, operations, reconcile

__all__ = ["calls"]  # the fixture, used by name

pytestmark = pytest.mark.django_db


def test_the_reconciler_reads_in_service_and_desired(aws: dict[str, str]) -> None:
    group_resize(aws, 3)

    outcome = reconcile()

    assert (outcome.ran, outcome.in_service, outcome.desired) == (True, 3, 3)


def test_the_tick_records_them_and_publishes_no_metric_of_them(
    aws: dict[str, str], calls: list[Call]
) -> None:
    group_resize(aws, 2)

    result = backlog_tick(now=datetime.now(UTC))

    assert (result.in_service_instances, result.desired_capacity) == (2, 2)
    assert result.as_json()["in_service_instances"] == 2
    row = MetricPublication.objects.get()
    assert (row.in_service_instances, row.desired_capacity) == (2, 2)
    assert len(operations(calls, "DescribeAutoScalingGroups")) == 1
    [put] = operations(calls, "PutMetricData")
    names = {d["MetricName"] for d in put[3]["MetricData"]}
    # The metrics published before this change, and no new one.
    assert {"BacklogCount", "BusyInstances", "ProtectedInstances"} <= names
    assert names <= {
        "BacklogCount",
        "OldestBacklogAgeSeconds",
        "RecoveredVideos",
        "BusyInstances",
        "ProtectedInstances",
    }


def test_not_read_means_null_never_zero(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    from django.db import OperationalError

    def refuse() -> None:
        raise OperationalError("connection refused")

    group_resize(aws, 2)
    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)
    skipped = backlog_tick()  # the database is down: the reconciler does not run
    assert (skipped.in_service_instances, skipped.desired_capacity) == (None, None)
    monkeypatch.undo()

    settings.SCALING_ASG_NAME = "no-such-asg"
    outcome = reconcile()  # the group is missing: read, but nothing to count
    assert (outcome.ran, outcome.in_service, outcome.desired) == (False, None, None)


def test_the_endpoint_adds_them_to_the_last_publication(client: Any, settings: Any) -> None:
    from django.utils import timezone

    settings.INTERNAL_API_KEYS = ["k-capacity-1"]
    slot = timezone.now().replace(microsecond=0)
    for n, (in_service, desired) in enumerate(((3, 4), (None, None))):
        MetricPublication.objects.create(
            slot_start=slot - timedelta(minutes=2 - n),
            interval_seconds=60,
            value=5,
            source="db",
            status="published",
            duration_ms=1.0,
            asg_name="academy-video-worker-asg",
            in_service_instances=in_service,
            desired_capacity=desired,
        )

    body = client.get(
        "/api/v1/internal/video/backlog-count/", HTTP_X_INTERNAL_KEY="k-capacity-1"
    ).json()

    # Additions only: the keys the endpoint had, in their order, then the two new ones.
    assert list(body["last_publication"]) == [
        "value",
        "source",
        "status",
        "slot_start",
        "in_service_instances",
        "desired_capacity",
        "age_seconds",
    ]
    # The newest row: the group was not read in that slot, so null, never 0.
    assert (
        body["last_publication"]["in_service_instances"],
        body["last_publication"]["desired_capacity"],
    ) == (None, None)
    MetricPublication.objects.filter(in_service_instances=None).delete()
    again = client.get(
        "/api/v1/internal/video/backlog-count/", HTTP_X_INTERNAL_KEY="k-capacity-1"
    ).json()
    assert (
        again["last_publication"]["in_service_instances"],
        again["last_publication"]["desired_capacity"],
    ) == (3, 4)
