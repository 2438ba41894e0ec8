"""Video workers with real parts (issue 11, DESIGN.md invariant 7).

PostgreSQL (through the fault proxy for every process but this one), Redis,
moto's server (SQS, CloudWatch), gunicorn serving the worker API, celery
worker and beat (lease recovery and the metric, 10 s slots) and real
``manage.py video_worker`` processes, each with an instance id of its own.

Short settings keep it fast: a 6 s lease (renewed every 2 s), at most 2
attempts, jobs that hold a video 1 s (or far longer for the workers that are
killed mid-job). Each test holds two Redis databases of its own (broker and
publisher state), so test runs of other engineers on the same machine, which
use the shared fixtures' databases 14 and 15, neither feed nor flush ours.
"""

from __future__ import annotations

import json
import re
import signal
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from django.db.models import Q, Sum
from django.db.models.functions import Now

from devstack.faultproxy import TcpProxy
from scaling.models import MetricPublication
from scaling.publishing.audit import spool_flush
from tests.integration.conftest import INTERVAL
from tests.support.stack import (
    Stack,
    datapoints,
    json_last_line,
    wait_for,
)
from video.models import Video, VideoRecovery, VideoStatus
from video.services import video_upload

pytestmark = [pytest.mark.integration]

LEASE = 6  # seconds; workers renew every LEASE // 3
MAX_ATTEMPTS = 2
KEY = "integration-worker-key-0123456789"
# Recovery runs in the tick, which starts a little after its slot does (beat sends
# the task at the boundary, the worker picks it up, the tick measures the backlog
# first): a margin on a shared 2-core machine, on top of "one lease plus one slot".
TICK_LATENCY = 2.0
LONG_HOLD = 120.0  # a job the test kills long before it ends
# Every log line starts "2025-01-01 10:00:00,123 LEVEL logger message".
_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ video\.worker (.*)$", re.M)
_CLAIMED = re.compile(r"claimed video (\d+) \(attempt (\d+)")
# What ends a claim: "finished video N: READY", "released video N: ...",
# "video N: job stopped ...", "video N not finished ...", "video N not released ...".
_ENDED = re.compile(r"(?:finished |released )?video (\d+)(?::| not finished| not released)")


@pytest.fixture
def workers(stack: Stack) -> Stack:
    """The stack's processes with the worker API key and the short video settings."""
    stack.env.update(
        {
            "WORKER_API_KEY": KEY,
            "VIDEO_LEASE_SECONDS": str(LEASE),
            "VIDEO_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
            "VIDEO_WORKER_HOLD_SECONDS": "1",
            "LOG_LEVEL": "INFO",
        }
    )
    return stack


# --- helpers ------------------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    worker: str
    video_id: int
    attempt: int
    start: datetime
    end: datetime | None  # None: still holding it when the log ends (killed)


def claims_read(stack: Stack, worker: str) -> list[Claim]:
    """Each claim in a worker's log, from "claimed video N" to the line that ends it."""
    claims: list[Claim] = []
    open_claim: tuple[int, int, datetime] | None = None
    for stamp, message in _LINE.findall(stack.log(worker)):
        at = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f")
        if claimed := _CLAIMED.match(message):
            open_claim = (int(claimed[1]), int(claimed[2]), at)
        elif open_claim and (ended := _ENDED.match(message)) and int(ended[1]) == open_claim[0]:
            claims.append(Claim(worker, open_claim[0], open_claim[1], open_claim[2], at))
            open_claim = None
    if open_claim:
        claims.append(Claim(worker, open_claim[0], open_claim[1], open_claim[2], None))
    return claims


def overlapping(claims: list[Claim]) -> list[tuple[Claim, Claim]]:
    """Pairs of claims that overlap in time: of one video by two workers, or of one worker."""
    pairs = []
    for i, a in enumerate(claims):
        for b in claims[i + 1 :]:
            if a.video_id == b.video_id or a.worker == b.worker:
                a_end, b_end = a.end or datetime.max, b.end or datetime.max
                if a.start < b_end and b.start < a_end:
                    pairs.append((a, b))
    return pairs


def polling_wait(stack: Stack, *workers: str) -> None:
    def polling(name: str) -> bool:
        return " polls " in stack.log(name) or _died(stack, name)

    for name in workers:
        wait_for(partial(polling, name), timeout=40, interval=0.2, what=f"{name} to poll")


def job_started_wait(stack: Stack, worker: str, *, timeout: float = 40) -> int:
    """The id of the video whose job ``worker`` started (its first one)."""
    found = wait_for(
        lambda: re.search(r"job started on video (\d+)", stack.log(worker)) or _died(stack, worker),
        timeout=timeout,
        interval=0.1,
        what=f"{worker} to start a job",
    )
    return int(found[1])


def _died(stack: Stack, name: str) -> bool:
    if not stack.alive(name):
        raise AssertionError(f"{name} exited early:\n{stack.log(name)[-3000:]}")
    return False


def summary(stack: Stack, worker: str) -> dict[str, Any]:
    return json_last_line(stack.stdout(worker))


def publisher_start(stack: Stack) -> None:
    """Celery worker and beat (not waited for: the other processes start meanwhile)."""
    stack.worker_start()
    stack.beat_start()


def first_publication_wait() -> None:
    """Beat sends a tick when it starts: once it has read the database, recovery is armed
    (it runs from the first tick a whole lease after this one)."""
    wait_for(
        lambda: MetricPublication.objects.filter(source="db").exists(),
        timeout=3 * INTERVAL + 10,
        what="a first publication from the database",
    )


def slot_moment_wait(offset: float) -> datetime:
    """Sleep until ``offset`` seconds into a slot (this one if still ahead); its start."""
    now = time.time()
    start = now - now % INTERVAL
    if now - start > offset:
        start += INTERVAL
    time.sleep(start + offset - now)
    return datetime.fromtimestamp(start, UTC)


def post(api: str, video_id: int, action: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(  # noqa: S310 (loopback gunicorn of the test's own)
        f"{api}/api/v1/internal/video/{video_id}/{action}/",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "X-Worker-Key": KEY},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def recovered_published() -> int:
    spool_flush()
    total = MetricPublication.objects.aggregate(n=Sum("recovered_count"))["n"]
    return int(total or 0)


def no_traceback(stack: Stack, *names: str) -> None:
    for name in names:
        assert "Traceback" not in stack.log(name), f"{name}:\n{stack.log(name)[-3000:]}"


def recoveries_of(ids: list[int], *, n: int) -> list[VideoRecovery] | None:
    rows = list(VideoRecovery.objects.filter(video_id__in=ids))
    return rows if len(rows) >= n else None


def audit_rows_until(
    last: datetime, *, since: datetime
) -> dict[datetime, MetricPublication] | None:
    """The audit rows from ``since`` (spooled ones written first), once ``last`` has one."""
    spool_flush()
    rows = {r.slot_start: r for r in MetricPublication.objects.filter(slot_start__gte=since)}
    return rows if last in rows else None


def lease_dead_processing() -> int:
    """PROCESSING videos without a live lease (by the database's clock)."""
    return Video.objects.filter(
        Q(lease_expires_at__lt=Now()) | Q(lease_expires_at__isnull=True),
        status=VideoStatus.PROCESSING,
    ).count()


# --- scenarios ----------------------------------------------------------------


def test_two_workers_make_twenty_videos_ready_once_each_and_the_backlog_drains(
    workers: Stack, aws: dict[str, str]
) -> None:
    stack = workers
    publisher_start(stack)
    api = stack.gunicorn_start()
    names = ("vw-1", "vw-2")
    for n, name in enumerate(names, 1):
        stack.video_worker_start(name, api_url=api, instance_id=f"i-worker{n}", hold_seconds=1)
    first_publication_wait()
    polling_wait(stack, *names)

    started = time.monotonic()
    ids = [video_upload(title=f"Lecture {i}").pk for i in range(20)]
    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() == 20,
        timeout=90,
        what="20 videos READY",
    )
    took = time.monotonic() - started
    done_at = datetime.now(UTC)

    # The first tick measured after the last finish publishes 0.
    after = wait_for(
        lambda: [p for p in datapoints(aws, since=done_at) if p[0] >= done_at],
        timeout=INTERVAL + 15,
        what="a BacklogCount datapoint after the last video was done",
    )
    series = [
        (t.strftime("%H:%M:%S"), m)
        for t, m, _ in datapoints(aws, since=done_at - timedelta(seconds=60))
    ]
    assert after[0][1] == 0.0, series

    for name in names:
        stack.send_signal(name, signal.SIGTERM)
    for name in names:
        assert stack.wait_exit(name, timeout=20) == 0, stack.log(name)[-3000:]
    summaries = {name: summary(stack, name) for name in names}
    assert sum(s["ready"] for s in summaries.values()) == 20, summaries
    assert sum(s["videos"] for s in summaries.values()) == 20, summaries
    assert {(s["failed"], s["released"], s["lost"]) for s in summaries.values()} == {(0, 0, 0)}
    assert all(s["videos"] > 0 for s in summaries.values()), f"one worker did all: {summaries}"

    # The rows: each video READY after exactly one claim, by one of the two instances.
    rows = list(Video.objects.filter(pk__in=ids).values("status", "attempts", "lease_instance_id"))
    assert {(r["status"], r["attempts"]) for r in rows} == {("READY", 1)}
    assert {r["lease_instance_id"] for r in rows} == {"i-worker1", "i-worker2"}

    # The workers' logs: every video claimed once in all, and no two claims of one
    # video by different workers overlap in time (each worker holds one at a time).
    claims = [c for name in names for c in claims_read(stack, name)]
    assert sorted(c.video_id for c in claims) == sorted(ids)
    assert all(c.end is not None for c in claims)
    assert overlapping(claims) == []
    # The API's own log: one claim and one READY finish per video.
    api_log = stack.log("api")
    claimed = Counter(int(i) for i in re.findall(r"Video claimed \| video_id=(\d+)", api_log))
    finished = Counter(
        int(i) for i in re.findall(r"Video finished \| video_id=(\d+) status=READY", api_log)
    )
    assert claimed == finished == Counter(ids)
    assert not VideoRecovery.objects.exists()
    assert recovered_published() == 0
    no_traceback(stack, "api", "worker", "beat", *names)
    split = ", ".join(f"{name} {s['ready']}" for name, s in summaries.items())
    print(f"\n20 videos READY in {took:.1f} s by two workers ({split}); BacklogCount {series}")


def test_sigkilled_workers_videos_come_back_within_a_lease_and_a_slot_then_finish_or_fail(
    workers: Stack, aws: dict[str, str]
) -> None:
    stack = workers
    publisher_start(stack)
    api = stack.gunicorn_start()
    victims = {"victim-1": "i-victim1", "victim-2": "i-victim2"}
    for name, instance in victims.items():
        stack.video_worker_start(name, api_url=api, instance_id=instance, hold_seconds=LONG_HOLD)
    first_publication_wait()
    polling_wait(stack, *victims)
    ids = [video_upload(title=f"Lecture {i}").pk for i in range(2)]

    # Each victim takes one video; SIGKILL it as soon as its job runs. No other
    # worker runs until both are recovered, so nothing takes them over first.
    killed_at: dict[int, float] = {}
    for name in victims:
        video_id = job_started_wait(stack, name)
        stack.send_signal(name, signal.SIGKILL)
        killed_at[video_id] = time.time()
    assert sorted(killed_at) == sorted(ids)
    for name in victims:
        assert stack.wait_exit(name, timeout=10) == -signal.SIGKILL

    bound = LEASE + INTERVAL
    recoveries = wait_for(
        lambda: recoveries_of(ids, n=2),
        timeout=bound + TICK_LATENCY + 10,
        what="both videos recovered",
    )
    back_after = {
        r.video_id: r.recovered_at.timestamp() - killed_at[r.video_id] for r in recoveries
    }
    assert {(r.status, r.attempts) for r in recoveries} == {("UPLOADED", 1)}
    assert all(t <= bound + TICK_LATENCY for t in back_after.values()), back_after
    assert {(v.status, v.attempts, v.last_error) for v in Video.objects.filter(pk__in=ids)} == {
        ("UPLOADED", 1, "lost its worker (attempt 1)")
    }

    # A third worker takes one of them, the doomed one: it dies too, and that is
    # the video's last attempt. Meanwhile a fourth worker finishes the other.
    stack.video_worker_start(
        "victim-3", api_url=api, instance_id="i-victim3", hold_seconds=LONG_HOLD
    )
    doomed = job_started_wait(stack, "victim-3")
    (saved,) = set(ids) - {doomed}
    stack.video_worker_start(
        "finisher", api_url=api, instance_id="i-finisher", hold_seconds=1, max_videos=1
    )
    assert stack.wait_exit("finisher", timeout=40) == 0, stack.log("finisher")[-3000:]
    assert summary(stack, "finisher")["ready"] == 1
    saved_row = Video.objects.get(pk=saved)
    assert (saved_row.status, saved_row.attempts, saved_row.lease_instance_id) == (
        "READY",
        2,
        "i-finisher",
    )

    assert stack.alive("victim-3"), "victim-3 should still be mid-job"
    stack.send_signal("victim-3", signal.SIGKILL)
    doomed_killed = time.time()
    failed = wait_for(
        lambda: VideoRecovery.objects.filter(video_id=doomed, status="FAILED").first(),
        timeout=bound + TICK_LATENCY + 10,
        what="the doomed video FAILED",
    )
    failed_after = failed.recovered_at.timestamp() - doomed_killed
    assert failed_after <= bound + TICK_LATENCY
    doomed_row = Video.objects.get(pk=doomed)
    assert (doomed_row.status, doomed_row.attempts, doomed_row.last_error) == (
        "FAILED",
        MAX_ATTEMPTS,
        f"lost its worker {MAX_ATTEMPTS} times",
    )

    # Nothing PROCESSING without a live lease; each recovery counted and published.
    assert lease_dead_processing() == 0
    assert not Video.objects.filter(status=VideoStatus.PROCESSING).exists()
    wait_for(
        lambda: recovered_published() == 3, timeout=INTERVAL + 5, what="3 recoveries in the audit"
    )
    since = datetime.fromtimestamp(min(killed_at.values()), UTC)
    wait_for(
        lambda: sum(m for _, m, _ in datapoints(aws, since=since, metric="RecoveredVideos")) == 3,
        timeout=INTERVAL + 5,
        what="RecoveredVideos summing to 3",
    )
    no_traceback(stack, "api", "worker", "beat", "finisher")
    print(
        f"\nSIGKILL -> recovered: {', '.join(f'{t:.1f} s' for t in back_after.values())} "
        f"(UPLOADED) and {failed_after:.1f} s (FAILED); bound {bound} s + {TICK_LATENCY:g} s tick"
    )


def test_sigterm_releases_the_video_at_once_and_does_not_count_the_attempt(workers: Stack) -> None:
    stack = workers
    api = stack.gunicorn_start()
    stack.video_worker_start("vw-term", api_url=api, instance_id="i-term", hold_seconds=LONG_HOLD)
    polling_wait(stack, "vw-term")
    video = video_upload(title="Lecture")
    assert job_started_wait(stack, "vw-term") == video.pk
    wait_for(
        lambda: "renewed lease on video" in stack.log("vw-term"), timeout=LEASE, what="a renewal"
    )

    sent = time.monotonic()
    stack.send_signal("vw-term", signal.SIGTERM)
    wait_for(
        lambda: Video.objects.filter(pk=video.pk, status=VideoStatus.UPLOADED).exists(),
        timeout=10,
        interval=0.05,
        what="the video UPLOADED again",
    )
    released_after = time.monotonic() - sent
    assert released_after <= 2.0
    row = Video.objects.get(pk=video.pk)
    assert (row.attempts, row.lease_token, row.lease_instance_id) == (0, "", "")
    assert stack.wait_exit("vw-term", timeout=15) == 0
    result = summary(stack, "vw-term")
    assert (result["released"], result["ready"], result["exit_reason"]) == (1, 0, "shutdown")

    # Its message is back at once: the next worker finishes it, as its first attempt.
    stack.video_worker_start(
        "vw-next", api_url=api, instance_id="i-next", hold_seconds=1, max_videos=1
    )
    assert stack.wait_exit("vw-next", timeout=30) == 0, stack.log("vw-next")[-3000:]
    row.refresh_from_db()
    assert (row.status, row.attempts) == ("READY", 1)
    no_traceback(stack, "api", "vw-term", "vw-next")
    print(f"\nSIGTERM -> UPLOADED in {released_after:.2f} s")


HOLD_THROUGH_OUTAGE = 30.0


def test_database_outage_of_twice_the_lease_recovers_nothing_alive_and_the_job_finishes(
    workers: Stack, pg_proxy: TcpProxy, aws: dict[str, str]
) -> None:
    stack = workers
    publisher_start(stack)
    api = stack.gunicorn_start()
    stack.video_worker_start(
        "vw-outage", api_url=api, instance_id="i-outage", hold_seconds=HOLD_THROUGH_OUTAGE
    )
    first_publication_wait()
    polling_wait(stack, "vw-outage")

    # Timeline from a slot start b0: claim at ~b0+3, outage b0+7.5 .. b0+19.5 (twice
    # the lease: every lease has run out when it ends), refusing then hanging. The
    # tick at b0+20 sees the database again, but only the one at b0+30 may recover;
    # the job (30 s) is still running then, and finishes after.
    b0 = slot_moment_wait(3.0)
    video = video_upload(title="Lecture")
    assert job_started_wait(stack, "vw-outage", timeout=4) == video.pk
    outage_start = b0 + timedelta(seconds=7.5)
    outage_end = outage_start + timedelta(seconds=2 * LEASE)
    sleep_until(outage_start)
    pg_proxy.set_mode("refuse")
    sleep_until(outage_start + timedelta(seconds=LEASE))
    pg_proxy.set_mode("hang")
    sleep_until(outage_end)
    lease_expires_at = Video.objects.get(pk=video.pk).lease_expires_at
    pg_proxy.set_mode("pass")
    assert lease_expires_at is not None
    assert lease_expires_at < outage_end, "the lease should look dead when the database returns"

    wait_for(
        lambda: Video.objects.filter(pk=video.pk, status=VideoStatus.READY).exists(),
        timeout=HOLD_THROUGH_OUTAGE + 15,
        what="the video READY",
    )
    finished_at = Video.objects.get(pk=video.pk).status_changed_at
    first_recovery_slot = b0 + timedelta(seconds=3 * INTERVAL)
    assert finished_at > first_recovery_slot + timedelta(seconds=2), "the job ended too early"
    rows = wait_for(
        lambda: audit_rows_until(first_recovery_slot, since=b0 + timedelta(seconds=INTERVAL)),
        timeout=INTERVAL,
        what="the audit rows of the outage and after",
    )
    in_outage, returned = (b0 + timedelta(seconds=k * INTERVAL) for k in (1, 2))
    assert {in_outage, returned} <= set(rows), sorted(rows)
    assert (rows[in_outage].source, rows[in_outage].recovered_count) == ("sqs", None)
    # The database answered again at b0+20, but the workers had not had a lease yet.
    assert (rows[returned].source, rows[returned].recovered_count) == ("db", None)
    # At b0+30 recovery ran, while the job was alive, and found nothing to recover.
    assert (rows[first_recovery_slot].source, rows[first_recovery_slot].recovered_count) == (
        "db",
        0,
    )

    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.attempts, row.last_error) == ("READY", 1, "")
    assert not VideoRecovery.objects.exists()
    assert recovered_published() == 0
    assert all(m == 0 for _, m, _ in datapoints(aws, since=b0, metric="RecoveredVideos"))
    stack.send_signal("vw-outage", signal.SIGTERM)
    assert stack.wait_exit("vw-outage", timeout=20) == 0
    result = summary(stack, "vw-outage")
    assert (result["ready"], result["lost"], result["released"]) == (1, 0, 0)
    worker_log = stack.log("vw-outage")
    assert f"renew of video {video.pk} failed" in worker_log  # it did meet the outage
    assert f"lease on video {video.pk} lost" not in worker_log
    no_traceback(stack, "api", "vw-outage")
    dead_for = (outage_end - lease_expires_at).total_seconds()
    print(
        f"\noutage {2 * LEASE} s (refuse, then hang): the lease looked dead for {dead_for:.1f} s "
        f"when the database returned; recovery skipped at b0+20 s, found 0 at b0+30 s; "
        f"READY at b0+{(finished_at - b0).total_seconds():.1f} s, attempts 1"
    )


def test_fifty_concurrent_claims_of_one_video_give_exactly_one_lease(workers: Stack) -> None:
    stack = workers
    api = stack.gunicorn_start(workers=2, threads=8)
    video = video_upload(title="Lecture")
    n = 50
    barrier = threading.Barrier(n)

    def claim(i: int) -> tuple[int, dict[str, Any]]:
        barrier.wait(timeout=30)
        return post(api, video.pk, "claim", {"instance_id": f"i-race{i}", "worker_id": f"race:{i}"})

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=n) as pool:
        answers = list(pool.map(claim, range(n)))
    took = time.monotonic() - started

    assert Counter(status for status, _ in answers) == {200: 1, 409: n - 1}
    (lease,) = [body for status, body in answers if status == 200]
    assert {body.get("reason") for status, body in answers if status == 409} == {"taken"}
    row = Video.objects.get(pk=video.pk)
    assert (row.status, row.attempts, row.lease_token) == ("PROCESSING", 1, lease["token"])
    assert len(re.findall(rf"Video claimed \| video_id={video.pk} ", stack.log("api"))) == 1
    no_traceback(stack, "api")
    print(f"\n{n} concurrent claims in {took:.2f} s: one 200, {n - 1} 409")
