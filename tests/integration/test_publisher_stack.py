"""The publisher with real parts: PostgreSQL, Redis, a moto server, celery worker and beat."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.faultproxy import TcpProxy
from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from tests.factories import videos_create
from tests.integration.conftest import INTERVAL
from tests.support.stack import (
    Stack,
    datapoints,
    json_last_line,
    slot_boundary_wait,
    wait_for,
)

pytestmark = [pytest.mark.integration]


def _published_rows(since: datetime) -> list[MetricPublication]:
    spool_flush()
    return list(MetricPublication.objects.filter(slot_start__gte=since).order_by("slot_start"))


def test_beat_and_worker_publish_uploaded_plus_processing(
    stack: Stack, aws: dict[str, str]
) -> None:
    videos_create(UPLOADED=3, PROCESSING=2, READY=4)
    since = datetime.now(UTC)
    stack.worker_start()
    stack.beat_start()

    row = wait_for(
        lambda: MetricPublication.objects.filter(status="published").first(),
        timeout=4 * INTERVAL,
        what="a publication from beat and worker",
    )

    assert (row.value, row.source, row.uploaded_count, row.processing_count) == (5, "db", 3, 2)
    points = datapoints(aws, since=since)
    assert points, "no datapoint in CloudWatch"
    assert {(maximum, count) for _, maximum, count in points} == {(5.0, 1.0)}
    assert points[0][0] == row.slot_start


@pytest.mark.parametrize("fault", ["refuse", "hang"])
def test_database_fault_publishes_sqs_depth_within_the_slot(
    stack: Stack, pg_proxy: TcpProxy, aws: dict[str, str], fault: str
) -> None:
    import boto3

    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    for i in range(7):
        sqs.send_message(QueueUrl=aws["queue_url"], MessageBody=f"video-{i}")
    videos_create(UPLOADED=1)
    slot = slot_boundary_wait(INTERVAL, offset=0.5)
    pg_proxy.set_mode(fault)  # type: ignore[arg-type]

    started = time.monotonic()
    done = stack.manage("publish_backlog", "--json")
    elapsed = time.monotonic() - started

    result = json_last_line(done.stdout)
    assert done.returncode == 0, done.stderr
    assert (result["published"], result["value"], result["source"]) == (True, 7, "sqs")
    assert result["slot_start"] == slot.isoformat()
    # The tick (its own clock, from measuring to the audit record) ends inside the slot
    # it started in; the interpreter's start-up before it is not the tick's, and on two
    # shared cores it alone took several seconds.
    tick_seconds = result["duration_ms"] / 1000
    assert tick_seconds < INTERVAL - 0.5, f"the tick took {tick_seconds:.1f} s, past its slot"
    assert elapsed < 3 * INTERVAL, f"the command took {elapsed:.1f} s"
    assert [(t, m) for t, m, _ in datapoints(aws, since=slot)] == [(slot, 7.0)]
    pg_proxy.set_mode("pass")
    row = _published_rows(slot)[0]
    assert (row.value, row.source, row.status, row.spooled) == (7, "sqs", "published", True)


def test_both_sources_down_publish_nothing_exit_1_and_record_the_failure_later(
    stack: Stack, pg_proxy: TcpProxy, aws: dict[str, str]
) -> None:
    slot = slot_boundary_wait(INTERVAL, offset=0.5)
    pg_proxy.set_mode("refuse")

    done = stack.manage(
        "publish_backlog",
        "--json",
        # CloudWatch answers; the queue does not exist: only the sources fail.
        env={"SCALING_SQS_QUEUE_URL": aws["queue_url"].rsplit("/", 1)[0] + "/no-such-queue"},
    )

    result = json_last_line(done.stdout)
    assert done.returncode == 1
    assert (result["published"], result["value"], result["source"]) == (False, None, None)
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "CommandError: Nothing published: no source answered; database: OperationalError"
        )
    )
    assert "Traceback" not in done.stderr
    assert datapoints(aws, since=slot - timedelta(minutes=5)) == []
    assert MetricPublication.objects.count() == 0

    pg_proxy.set_mode("pass")
    rows = _published_rows(slot)
    assert [(r.status, r.value, r.source, r.spooled) for r in rows] == [("failed", None, "", True)]


def test_two_beats_and_two_workers_publish_once_per_slot(stack: Stack, aws: dict[str, str]) -> None:
    videos_create(UPLOADED=2)
    stack.worker_start("worker-a")
    stack.worker_start("worker-b")
    stack.beat_start("beat-a")
    stack.beat_start("beat-b")
    # One whole slot for the four processes to start (seconds each on two busy cores):
    # the slots counted are the ones after it.
    slot_boundary_wait(INTERVAL, offset=0.0)
    first = slot_boundary_wait(INTERVAL, offset=0.0)
    last = first + timedelta(seconds=2 * INTERVAL)
    slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=INTERVAL / 2)  # the third slot's tick has finished

    points = [p for p in datapoints(aws, since=first) if first <= p[0] <= last]
    assert [(t, count) for t, _, count in points] == [
        (first + timedelta(seconds=i * INTERVAL), 1.0) for i in range(3)
    ]
    rows = [r for r in _published_rows(first) if r.slot_start <= last]
    assert len(rows) == 3
    dispatched = sum(stack.log(b).count("Sending due task") for b in ("beat-a", "beat-b"))
    assert dispatched >= 6  # both beats really ran; the claim made the difference


def test_worker_down_for_five_slots_publishes_no_burst(stack: Stack, aws: dict[str, str]) -> None:
    videos_create(UPLOADED=1)
    stack.beat_start()
    slot_boundary_wait(INTERVAL, offset=0.0)
    down_from = datetime.now(UTC)
    time.sleep(5 * INTERVAL)
    stack.worker_start()
    restarted = datetime.now(UTC)
    slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=INTERVAL / 2)

    points = datapoints(aws, since=down_from)
    assert all(count == 1.0 for _, _, count in points)
    stale = [t for t, _, _ in points if t < restarted - timedelta(seconds=INTERVAL)]
    assert stale == [], f"stale slots published after the restart: {stale}"
    assert 1 <= len(points) <= 3
    assert "expired" in stack.log("worker").lower() or len(points) <= 3


@pytest.mark.parametrize("fault", ["refuse", "hang", "slow"])
def test_aws_down_for_a_slot_is_retried_recorded_and_the_next_slot_publishes(
    stack: Stack, aws: dict[str, str], aws_proxy: TcpProxy, fault: str
) -> None:
    videos_create(UPLOADED=4)
    stack.env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{aws_proxy.port}"
    down_slot = slot_boundary_wait(INTERVAL, offset=0.5)
    aws_proxy.set_mode(fault)  # type: ignore[arg-type]

    started = time.monotonic()
    failed = stack.manage("publish_backlog", "--json")
    elapsed = time.monotonic() - started

    aws_proxy.set_mode("pass")
    next_slot = slot_boundary_wait(INTERVAL, offset=0.5)
    published = stack.manage("publish_backlog", "--json")

    assert failed.returncode == 1
    first = json_last_line(failed.stdout)
    assert first["status"] == "failed"
    # The fleet reconciler's read of the group failed too; its note comes after.
    cloudwatch_error, _, fleet_note = first["error"].partition("; fleet: ")
    assert fleet_note.startswith("DescribeAutoScalingGroups failed")
    if fault == "refuse":
        assert cloudwatch_error.startswith("cloudwatch: EndpointConnectionError")
        assert cloudwatch_error.endswith("(3 attempts)")  # nothing sent: retried, bounded
    else:
        # Sent and not answered in time: not retried, so never stored twice.
        assert cloudwatch_error.startswith("cloudwatch: ReadTimeoutError")
        assert cloudwatch_error.endswith("not retried (CloudWatch may hold it) (1 attempts)")
    assert first["duration_ms"] < (INTERVAL - 2) * 1000, "the tick outlived its budget"
    # The command adds the interpreter's start-up to the tick (seconds on two busy cores).
    assert elapsed < 3 * INTERVAL, f"the command took {elapsed:.1f} s"
    assert published.returncode == 0, published.stderr
    points = datapoints(aws, since=down_slot)
    if fault == "slow":
        # The slow request did arrive: once, never twice.
        assert [(t, m, n) for t, m, n in points] == [(down_slot, 4.0, 1.0), (next_slot, 4.0, 1.0)]
    else:
        assert [(t, m) for t, m, _ in points] == [(next_slot, 4.0)]
    rows = _published_rows(down_slot)
    assert [(r.slot_start, r.status, r.value) for r in rows] == [
        (down_slot, "failed", 4),
        (next_slot, "published", 4),
    ]
