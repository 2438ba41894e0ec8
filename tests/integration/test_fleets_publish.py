"""Three fleets from one publisher with real parts (issue 19, DESIGN.md "Adopting it"):
PostgreSQL, Redis, a moto server, two celery beats and two workers, 10 s slots.

video is measured through the backlog port (the video app's rows) and published to
Academy/VideoProcessing; ai and messaging by their queues' depth, to Academy/Workers.
Mid-test the messaging queue is deleted: that fleet records a failure each slot and
publishes nothing (invariant 1 per fleet), the other two publish every slot
(invariant 10), and each fleet has one datapoint and one audit row a slot however
many beats and workers run (invariant 2).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from tests.factories import videos_create
from tests.integration.conftest import INTERVAL
from tests.support.stack import Stack, datapoints, slot_boundary_wait

pytestmark = [pytest.mark.integration]

WORKERS = "Academy/Workers"
VIDEO_NS = "Academy/VideoProcessing"
# fleet -> (namespace, WorkerType, group)
METRICS = {
    "video": (VIDEO_NS, "Video", "academy-video-worker-asg"),
    "ai": (WORKERS, "AI", "academy-ai-worker-asg"),
    "messaging": (WORKERS, "Messaging", "academy-messaging-worker-asg"),
}


def _fleets(aws: dict[str, str], ai_url: str, messaging_url: str) -> list[dict[str, Any]]:
    def sqs(name: str, url: str) -> dict[str, Any]:
        namespace, worker_type, group = METRICS[name]
        return {
            "name": name,
            "asg_name": group,
            "source": "sqs",
            "queue_url": url,
            "namespace": namespace,
            "dimensions": {"WorkerType": worker_type},
        }

    video = {"name": "video", "asg_name": METRICS["video"][2], "source": "port"}
    return [
        {**video, "queue_url": aws["queue_url"]},
        sqs("ai", ai_url),
        sqs("messaging", messaging_url),
    ]


def _points(
    aws: dict[str, str], fleet: str, since: datetime
) -> dict[datetime, tuple[float, float]]:
    """slot -> (value, datapoints in it) of the fleet's BacklogCount."""
    namespace, worker_type, group = METRICS[fleet]
    dims = [
        {"Name": "WorkerType", "Value": worker_type},
        {"Name": "AutoScalingGroupName", "Value": group},
    ]
    found = datapoints(aws, since=since, namespace=namespace, dimensions=dims)
    return {t: (value, count) for t, value, count in found}


def test_three_fleets_publish_once_per_slot_and_a_lost_queue_costs_only_its_fleet(
    stack: Stack, aws: dict[str, str], settings: Any
) -> None:
    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    ai_url = sqs.create_queue(QueueName="academy-ai-jobs")["QueueUrl"]
    messaging_url = sqs.create_queue(QueueName="academy-messaging-jobs")["QueueUrl"]
    for i in range(4):
        sqs.send_message(QueueUrl=ai_url, MessageBody=f"ai-{i}")
    for i in range(7):
        sqs.send_message(QueueUrl=messaging_url, MessageBody=f"messaging-{i}")
    videos_create(UPLOADED=3, PROCESSING=2, READY=4)
    expected = {"video": 5.0, "ai": 4.0, "messaging": 7.0}
    fleets = _fleets(aws, ai_url, messaging_url)
    settings.SCALING_FLEETS = fleets
    stack.fleets_set(fleets)

    stack.worker_start("worker-a")
    stack.worker_start("worker-b")
    stack.beat_start("beat-a")
    stack.beat_start("beat-b")
    # One whole slot for the four processes to start; the slots counted are after it.
    slot_boundary_wait(INTERVAL, offset=0.0)
    first = slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=0.0)
    # Half-way into the third slot its tick has finished: the queue goes now.
    lost_in = slot_boundary_wait(INTERVAL, offset=INTERVAL / 2)
    sqs.delete_queue(QueueUrl=messaging_url)
    deleted_at = datetime.now(UTC)
    slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=0.0)
    last = slot_boundary_wait(INTERVAL, offset=INTERVAL / 2) - timedelta(seconds=INTERVAL)

    slots = [first + timedelta(seconds=i * INTERVAL) for i in range(5)]
    before = [s for s in slots if s < lost_in]
    after = [s for s in slots if s > lost_in]
    assert (len(before), len(after), slots[-1]) == (2, 2, last)
    points = {fleet: _points(aws, fleet, first) for fleet in METRICS}
    for fleet in ("video", "ai"):
        assert {s: points[fleet].get(s) for s in slots} == {
            s: (expected[fleet], 1.0) for s in slots
        }, fleet
    messaging = points["messaging"]
    assert {s: messaging.get(s) for s in before} == {s: (7.0, 1.0) for s in before}
    assert messaging.get(lost_in) in (None, (7.0, 1.0))  # its tick ran before the delete
    assert {s: messaging.get(s) for s in after} == {s: None for s in after}

    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    listed = cloudwatch.list_metrics(MetricName="BacklogCount")["Metrics"]
    # moto's list_metrics may repeat a metric with two dimensions: a set.
    assert {
        (m["Namespace"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"])) for m in listed
    } == {
        (namespace, (("WorkerType", worker_type), ("AutoScalingGroupName", group)))
        for namespace, worker_type, group in METRICS.values()
    }

    spool_flush()
    rows = MetricPublication.objects.filter(slot_start__gte=first, slot_start__lte=last)
    by_slot: dict[tuple[str, datetime], list[MetricPublication]] = {}
    for row in rows:
        by_slot.setdefault((row.fleet, row.slot_start), []).append(row)
    assert sorted(by_slot) == sorted((f, s) for f in METRICS for s in slots)
    assert all(len(held) == 1 for held in by_slot.values()), "two audit rows for one slot"
    for fleet in ("video", "ai"):
        assert {(r.status, r.value) for s in slots for r in by_slot[fleet, s]} == {
            ("published", int(expected[fleet]))
        }
    assert {(r.status, r.value) for s in before for r in by_slot["messaging", s]} == {
        ("published", 7)
    }
    lost = [r for s in after for r in by_slot["messaging", s]]
    assert [(r.status, r.value, r.source) for r in lost] == [("failed", None, "")] * 2
    assert all(r.error.startswith("no source answered; sqs: ") for r in lost), lost[0].error
    assert deleted_at < after[0] + timedelta(seconds=INTERVAL)
    dispatched = sum(stack.log(b).count("Sending due task") for b in ("beat-a", "beat-b"))
    assert dispatched >= 2 * len(slots)  # both beats really ran; the claims made the difference
