"""One tick for several fleets, in this process on moto's server (DESIGN.md "Adopting
it", invariants 1 and 10): a hung source costs only its own fleet, datums go out
in one PutMetricData per namespace, a fleet with no value publishes no datum.

The hung fleet's queue URL names a loopback port that accepts and never answers
(devstack.faultproxy in "hang" mode). botocore sends every SQS call to the
client's endpoint whatever host the queue URL names, so a hook on the tick's SQS
client sends that queue's calls to the URL's own host: the fleet really waits on
a socket, and the tick's deadline is what ends the wait.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest

from devstack.faultproxy import TcpProxy, queue_url_reroute
from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from scaling.publishing.slots import slot_start_get
from scaling.publishing.tick import slot_tick
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

INTERVAL = 60
# The hung fleet's test: 30 s slots, so its share (about 7 s) leaves the others a wide
# margin on two loaded cores (at 10 s slots CI once saw a healthy queue miss its 1.2 s).
HUNG_INTERVAL = 30
WORKERS = "Academy/Workers"
VIDEO_NS = "Academy/VideoProcessing"

Call = tuple[str, str, str, dict[str, Any], int]


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[Call]:
    """Every AWS call the tick makes, for this test alone.

    The session's IAM check (tests/conftest.py) is left out of these: deploy/iam/
    publisher.json allows PutMetricData on Academy/VideoProcessing and the video
    queue only, and these fleets publish to Academy/Workers from queues of their own.
    """
    seen: list[Call] = []

    def observe(role: str, service: str, op: str, params: Mapping[str, Any], status: int) -> None:
        seen.append((role, service, op, dict(params), status))

    monkeypatch.setattr("scaling.aws.aws_call_observers", [observe])
    return seen


@pytest.fixture
def hang(aws: dict[str, str]) -> Iterator[TcpProxy]:
    """A loopback port that accepts connections and never answers."""
    port = int(aws["endpoint"].rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        proxy.set_mode("hang")
        yield proxy


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch, aws: dict[str, str]) -> None:
    """SQS calls for a queue whose URL names another loopback port go to that port."""
    from scaling.publishing import backlog

    real = backlog.sqs_client
    endpoint = urlsplit(aws["endpoint"]).netloc

    reroute = queue_url_reroute(endpoint)

    def sqs_client(**kwargs: Any) -> Any:
        client = real(**kwargs)
        client.meta.events.register("before-send.sqs.GetQueueAttributes", reroute)
        return client

    monkeypatch.setattr(backlog, "sqs_client", sqs_client)


def _queue(aws: dict[str, str], name: str, messages: int) -> str:
    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    url = sqs.create_queue(QueueName=name)["QueueUrl"]
    for i in range(messages):
        sqs.send_message(QueueUrl=url, MessageBody=f"{name}-{i}")
    return url


def _sqs_fleet(name: str, worker_type: str, queue_url: str) -> dict[str, Any]:
    return {
        "name": name,
        "asg_name": f"academy-{name}-worker-asg",
        "source": "sqs",
        "queue_url": queue_url,
        "namespace": WORKERS,
        "dimensions": {"WorkerType": worker_type},
    }


def _video_fleet(aws: dict[str, str]) -> dict[str, Any]:
    return {
        "name": "video",
        "asg_name": "academy-video-worker-asg",
        "source": "port",
        "queue_url": aws["queue_url"],
    }


def _points(aws: dict[str, str], namespace: str, worker_type: str, asg: str) -> list[float]:
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    now = datetime.now(UTC)
    response = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="BacklogCount",
        Dimensions=[
            {"Name": "WorkerType", "Value": worker_type},
            {"Name": "AutoScalingGroupName", "Value": asg},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum", "SampleCount"],
    )
    return sorted(p["Maximum"] for p in response["Datapoints"])


def _tick(interval: int = INTERVAL) -> Any:
    """One tick half a second into the current slot (the budget a beat tick has)."""
    now = datetime.now(UTC)
    slot = slot_start_get(at=now, interval=interval)
    return slot_tick(now=slot + timedelta(seconds=0.5), slot_start=slot)


def _puts(calls: list[Call]) -> list[tuple[str, list[tuple[str, ...]]]]:
    """(namespace, each BacklogCount datum's dimension values) per PutMetricData call."""
    return [
        (
            params["Namespace"],
            [
                tuple(d["Value"] for d in datum["Dimensions"])
                for datum in params["MetricData"]
                if datum["MetricName"] == "BacklogCount"
            ],
        )
        for _, _, op, params, _ in calls
        if op == "PutMetricData"
    ]


def test_a_hung_sqs_fleet_costs_only_its_own_datapoint(
    aws: dict[str, str], settings: Any, hang: TcpProxy, routed: None, calls: list[Call]
) -> None:
    videos_create(UPLOADED=2, PROCESSING=1, READY=3)
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = str(HUNG_INTERVAL)
    settings.SCALING_FLEETS = [
        _video_fleet(aws),
        _sqs_fleet("hung", "Hung", f"http://127.0.0.1:{hang.port}/123456789012/hung-jobs"),
        _sqs_fleet("ai", "AI", _queue(aws, "academy-ai-jobs", 4)),
        _sqs_fleet("messaging", "Messaging", _queue(aws, "academy-messaging-jobs", 6)),
    ]

    outcome = _tick(HUNG_INTERVAL)

    by = {r.fleet: r for r in outcome.results}
    assert {n: (r.published, r.value, r.source) for n, r in by.items()} == {
        "video": (True, 3, "db"),
        "hung": (False, None, None),
        "ai": (True, 4, "sqs"),
        "messaging": (True, 6, "sqs"),
    }
    assert by["hung"].status == "failed"
    assert by["hung"].error.startswith("no source answered; sqs: ")
    assert hang.connections >= 1, "the hung fleet never reached its port"
    # The hung fleet used its share of the slot, not the slot.
    assert outcome.duration_ms < (HUNG_INTERVAL - 2) * 1000
    assert by["hung"].fleet_ms < (HUNG_INTERVAL - 2) * 1000 / 2
    assert _points(aws, VIDEO_NS, "Video", "academy-video-worker-asg") == [3.0]
    assert _points(aws, WORKERS, "AI", "academy-ai-worker-asg") == [4.0]
    assert _points(aws, WORKERS, "Messaging", "academy-messaging-worker-asg") == [6.0]
    assert _points(aws, WORKERS, "Hung", "academy-hung-worker-asg") == []
    spool_flush()
    rows = {r.fleet: r for r in MetricPublication.objects.all()}
    assert {n: (r.status, r.value) for n, r in rows.items()} == {
        "video": ("published", 3),
        "hung": ("failed", None),
        "ai": ("published", 4),
        "messaging": ("published", 6),
    }


def test_datums_go_out_in_one_put_metric_data_per_namespace(
    aws: dict[str, str], settings: Any, calls: list[Call]
) -> None:
    videos_create(UPLOADED=1)
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = str(INTERVAL)
    settings.SCALING_FLEETS = [
        _sqs_fleet("ai", "AI", _queue(aws, "academy-ai-jobs", 2)),
        _video_fleet(aws),
        _sqs_fleet("messaging", "Messaging", _queue(aws, "academy-messaging-jobs", 0)),
        _sqs_fleet("reports", "Reports", _queue(aws, "academy-reports-jobs", 1)),
    ]

    outcome = _tick()

    assert all(r.published for r in outcome.results), [r.error for r in outcome.results]
    assert sorted(_puts(calls)) == [
        (VIDEO_NS, [("Video", "academy-video-worker-asg")]),
        (
            WORKERS,
            [
                ("AI", "academy-ai-worker-asg"),
                ("Messaging", "academy-messaging-worker-asg"),
                ("Reports", "academy-reports-worker-asg"),
            ],
        ),
    ]
    # A measured 0 is a value: it is published (only an unmeasured one is not).
    assert _points(aws, WORKERS, "Messaging", "academy-messaging-worker-asg") == [0.0]


def test_a_fleet_with_no_value_publishes_no_datum(
    aws: dict[str, str], settings: Any, calls: list[Call]
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = str(INTERVAL)
    missing = aws["queue_url"].rsplit("/", 1)[0] + "/academy-gone-jobs"
    settings.SCALING_FLEETS = [
        _sqs_fleet("ai", "AI", _queue(aws, "academy-ai-jobs", 5)),
        _sqs_fleet("gone", "Gone", missing),
    ]

    outcome = _tick()

    by = {r.fleet: r for r in outcome.results}
    assert (by["ai"].published, by["ai"].value) == (True, 5)
    assert (by["gone"].published, by["gone"].value, by["gone"].status) == (False, None, "failed")
    assert "QueueDoesNotExist" in by["gone"].error or "NonExistentQueue" in by["gone"].error
    # Its namespace's one call carries the other fleet's datum and nothing of its own.
    assert _puts(calls) == [(WORKERS, [("AI", "academy-ai-worker-asg")])]
    assert _points(aws, WORKERS, "Gone", "academy-gone-worker-asg") == []
    spool_flush()
    row = MetricPublication.objects.get(fleet="gone")
    assert (row.status, row.value, row.source) == ("failed", None, "")
