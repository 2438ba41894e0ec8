"""A three-minute database outage while beat and worker run (DESIGN.md, invariants 1 and 5)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest

from devstack.faultproxy import TcpProxy
from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from tests.factories import videos_create
from tests.integration.conftest import INTERVAL
from tests.support.stack import Stack, datapoints, slot_boundary_wait, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = 180


def test_three_minute_outage_publishes_every_slot_from_sqs_and_keeps_the_audit(
    stack: Stack, pg_proxy: TcpProxy, aws: dict[str, str]
) -> None:
    sqs = boto3.client("sqs", region_name=aws["region"], endpoint_url=aws["endpoint"])
    for i in range(6):
        sqs.send_message(QueueUrl=aws["queue_url"], MessageBody=f"video-{i}")
    videos_create(UPLOADED=2, PROCESSING=1)
    stack.worker_start()
    stack.beat_start()
    wait_for(
        lambda: MetricPublication.objects.filter(source="db").exists(),
        timeout=3 * INTERVAL,
        what="a first publication from the database",
    )

    outage_start = slot_boundary_wait(INTERVAL, offset=0.0)
    # Half the outage refuses connections, half accepts them and never answers.
    pg_proxy.set_mode("refuse")
    time.sleep(OUTAGE_SECONDS / 2)
    pg_proxy.set_mode("hang")
    time.sleep(OUTAGE_SECONDS / 2)
    outage_end = datetime.now(UTC)
    pg_proxy.set_mode("pass")
    assert stack.alive("worker"), "the worker died during the outage"
    assert stack.alive("beat"), "beat died during the outage"

    recovered = slot_boundary_wait(INTERVAL, offset=0.0)
    slot_boundary_wait(INTERVAL, offset=INTERVAL / 2)

    # Every whole slot of the outage published the SQS depth, once.
    outage_slots = [
        outage_start + timedelta(seconds=i * INTERVAL)
        for i in range(int((outage_end - outage_start).total_seconds()) // INTERVAL)
    ]
    assert len(outage_slots) == OUTAGE_SECONDS // INTERVAL
    points = {t: (m, n) for t, m, n in datapoints(aws, since=outage_start)}
    missing = [s for s in outage_slots if s not in points]
    assert missing == [], f"slots without a datapoint during the outage: {missing}"
    assert {points[s] for s in outage_slots} == {(6.0, 1.0)}
    # After the outage, the database is the source again.
    assert points[recovered] == (3.0, 1.0)

    # The outage's audit rows arrive once the database is back (the worker drains the spool).
    rows = wait_for(
        lambda: (
            list(
                MetricPublication.objects.filter(
                    slot_start__gte=outage_start,
                    slot_start__lt=outage_slots[-1] + timedelta(seconds=1),
                )
            )
            if MetricPublication.objects.filter(slot_start__gte=recovered).exists()
            else None
        ),
        timeout=3 * INTERVAL,
        what="the spooled audit rows",
    )
    assert spool_flush() == 0, "the worker should have drained the spool itself"
    assert sorted(r.slot_start for r in rows) == outage_slots
    assert {(r.source, r.status, r.value, r.spooled) for r in rows} == {
        ("sqs", "published", 6, True)
    }
    assert "Traceback" not in stack.log("beat")
    assert "Beat skipped a schedule check: database unavailable" in stack.log("beat")
    assert "Traceback" not in stack.log("worker")
