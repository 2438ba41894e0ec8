"""Redis down while two beats and a worker run (DESIGN.md invariants 1 and 2): no tick
reaches the broker, so each beat runs the slot's tick itself; the database's claim
row lets one of them publish it.

The outage lasts BROKER_OUTAGE_SECONDS (50 by default; docs/benchmarks.md quotes a
run of 180: BROKER_OUTAGE_SECONDS=180 pytest tests/integration/test_broker_outage.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlparse

import pytest

from devstack.faultproxy import TcpProxy
from scaling.models import MetricPublication, SlotClaim
from scaling.publishing.beat import WORKER_RECONNECT_SECONDS
from tests.factories import videos_create
from tests.integration.conftest import INTERVAL
from tests.support.stack import Stack, datapoints, slot_boundary_wait, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

OUTAGE_SECONDS = int(os.environ.get("BROKER_OUTAGE_SECONDS", "50"))


@pytest.fixture
def redis_proxy(redis_url: str) -> Iterator[TcpProxy]:
    parsed = urlparse(redis_url)
    with TcpProxy(parsed.hostname or "127.0.0.1", parsed.port or 6379) as proxy:
        yield proxy


def _through(url: str, proxy: TcpProxy) -> str:
    parsed = urlparse(url)
    return parsed._replace(netloc=f"127.0.0.1:{proxy.port}").geturl()


def test_redis_outage_every_slot_published_once_from_the_database(
    stack: Stack, redis_proxy: TcpProxy, aws: dict[str, str]
) -> None:
    assert OUTAGE_SECONDS >= 3 * INTERVAL
    # The broker and the claims' Redis both go through the proxy: one Redis, down as one.
    for name in ("CELERY_BROKER_URL", "SCALING_STATE_URL"):
        stack.env[name] = _through(stack.env[name], redis_proxy)
    videos_create(UPLOADED=2, PROCESSING=1)
    stack.worker_start()
    stack.beat_start("beat-a")
    stack.beat_start("beat-b")
    since = datetime.now(UTC)
    wait_for(
        lambda: MetricPublication.objects.filter(source="db").exists(),
        timeout=4 * INTERVAL,
        what="a first publication through the broker",
    )

    outage_start = slot_boundary_wait(INTERVAL, offset=0.0)
    redis_proxy.set_mode("refuse")
    time.sleep(OUTAGE_SECONDS - OUTAGE_SECONDS % INTERVAL)
    outage_end = datetime.now(UTC)
    redis_proxy.set_mode("pass")
    for name in ("worker", "beat-a", "beat-b"):
        assert stack.alive(name), f"{name} died during the outage:\n{stack.log(name)[-2000:]}"

    outage_slots = [
        outage_start + timedelta(seconds=i * INTERVAL)
        for i in range(int((outage_end - outage_start).total_seconds()) // INTERVAL)
    ]
    assert len(outage_slots) == OUTAGE_SECONDS // INTERVAL
    # Once the broker is back, a tick goes through the worker and Redis again.
    after = wait_for(
        lambda: SlotClaim.objects.filter(slot_start__gt=outage_end, redis_answered=True).first(),
        timeout=6 * INTERVAL,
        what="a slot claimed through Redis after the outage",
    )
    # Past the window in which beat runs the ticks it sends as well: the worker is back.
    tail_end = outage_end + timedelta(seconds=WORKER_RECONNECT_SECONDS + 2 * INTERVAL)
    while (checked_to := slot_boundary_wait(INTERVAL, offset=INTERVAL / 2)) < tail_end:
        pass

    points = {t: (maximum, count) for t, maximum, count in datapoints(aws, since=since)}
    missing = [s for s in outage_slots if s not in points]
    assert missing == [], f"slots of the outage without a datapoint: {missing}"
    # Nor a gap while the worker reconnects (beat runs the tick as well meanwhile).
    slots = int((checked_to - outage_start).total_seconds()) // INTERVAL
    every = [outage_start + timedelta(seconds=i * INTERVAL) for i in range(slots)]
    assert [s for s in every if s not in points] == []
    assert {points[s] for s in outage_slots} == {(3.0, 1.0)}
    duplicates = {t: c for t, (_, c) in points.items() if c != 1.0}
    assert duplicates == {}, f"slots published more than once: {duplicates}"

    rows = MetricPublication.objects.filter(
        slot_start__gte=outage_start, slot_start__lte=outage_slots[-1]
    )
    assert sorted(r.slot_start for r in rows) == outage_slots
    assert {(r.status, r.source, r.value, r.spooled) for r in rows} == {
        ("published", "db", 3, False)
    }
    claims = SlotClaim.objects.filter(slot_start__in=outage_slots)
    assert sorted(c.slot_start for c in claims) == outage_slots
    assert {c.redis_answered for c in claims} == {False}
    assert points[after.slot_start] == (3.0, 1.0)

    beats = stack.log("beat-a") + stack.log("beat-b")
    sent_itself = beats.count("Beat could not send the tick")
    # Each beat runs each slot of the outage itself; the row lets one of them publish.
    assert sent_itself >= 2 * len(outage_slots) - 2, sent_itself
    assert beats.count("BacklogCount slot already claimed") >= len(outage_slots) - 2
    assert "Traceback" not in beats
    last = MetricPublication.objects.filter(slot_start__lt=checked_to).order_by("-slot_start")[0]
    assert "succeeded" in stack.log("worker").rsplit("Connected to", 1)[-1], "no worker tick after"
    assert last.status == "published"
    print(
        f"\nbroker outage {OUTAGE_SECONDS} s: {len(outage_slots)} slots, "
        f"{len(rows)} published from the database, "
        f"{sum(1 for c in duplicates.values() if c > 1)} duplicates, "
        f"{len(missing)} missing; beats ran {sent_itself} ticks themselves; "
        f"{len(every)} slots from the outage's start to {every[-1]:%H:%M:%S} all published once; "
        f"first slot through Redis again {after.slot_start:%H:%M:%S} "
        f"({(after.slot_start - outage_end).total_seconds():+.0f} s after the end)"
    )
