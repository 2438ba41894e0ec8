"""Scale-in takes only idle instances, with real parts (issue 12, DESIGN.md invariant 8).

moto's server holds the group and its instances; each ``manage.py video_worker``
runs with ``--instance-id`` set to a real instance id of that group. gunicorn
serves the worker API (a claim protects its instance before it answers); celery
worker and beat run the tick every 10 s slot (publish, lease recovery, the fleet
reconciler). Lowering the desired capacity on moto is what target tracking does:
moto, like EC2's scale-in, terminates only instances not protected from it.

The API processes (gunicorn, celery) reach moto through a counting HTTP proxy
(``tests.support.awscount``), so the test sees every request they make to AWS, in
order; the video workers and this process talk to moto directly (their SQS calls
and the test's own reads are not counted). Each test holds two Redis databases of
its own (broker and publisher state: the shared fixtures, tests/conftest.py).
"""

from __future__ import annotations

import re
import signal
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from functools import partial

import pytest

from scaling.models import MetricPublication
from tests.integration.conftest import INTERVAL
from tests.scaling.fleet_support import group_instances, group_resize, protected_ids
from tests.support.awscount import AwsRequest, CountingAwsProxy
from tests.support.stack import Stack, wait_for
from video.models import Video, VideoStatus
from video.services import video_upload

pytestmark = [pytest.mark.integration]

LEASE = 6  # seconds; workers renew every LEASE // 3
KEY = "integration-fleet-key-0123456789ab"
GRACE = INTERVAL  # the reconciler clears protection after a whole slot without a lease
# The tick starts a little after its slot does (beat sends at the boundary, the celery
# worker picks it up, the backlog and recovery come first): a margin on a shared machine.
TICK_LATENCY = 3.0
BUSY_HOLD = 15.0  # test 1: long enough to lower the capacity while both jobs run
SHORT_HOLD = 0.3  # test 2: a hundred videos in well under a minute
VIDEOS = 100
SET = "SetInstanceProtection"
DESCRIBE = "DescribeAutoScalingGroups"
# Every app log line starts "2025-01-01 10:00:00,123 LEVEL logger message".
_STAMP = r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})"
_API_CLAIMED = re.compile(
    _STAMP + r" \w+ \S+ Video claimed \| video_id=(\d+) "
    r"attempts=\d+ instance_id=(\S+)"
)
_API_FINISHED = re.compile(_STAMP + r" \w+ \S+ Video finished \| video_id=(\d+) ")


# --- fixtures ------------------------------------------------------------------


@pytest.fixture
def counted(aws: dict[str, str]) -> Iterator[CountingAwsProxy]:
    with CountingAwsProxy(aws["endpoint"]) as proxy:
        yield proxy


@pytest.fixture
def fleet(counted: CountingAwsProxy, stack: Stack) -> Stack:
    """The stack's processes with the worker key, short leases and AWS through the counter
    (set up first, so it outlives the processes: they are stopped before it closes)."""
    stack.env.update(
        {
            "WORKER_API_KEY": KEY,
            "VIDEO_LEASE_SECONDS": str(LEASE),
            "VIDEO_MAX_ATTEMPTS": "2",
            "LOG_LEVEL": "INFO",
            "AWS_ENDPOINT_URL": counted.url,
        }
    )
    return stack


# --- helpers ------------------------------------------------------------------


def worker_start(
    stack: Stack, name: str, *, api: str, instance_id: str, hold: float, aws: dict[str, str]
) -> None:
    """A video_worker on ``instance_id``; its own AWS calls (SQS) go to moto directly."""
    counted_url = stack.env["AWS_ENDPOINT_URL"]
    stack.env["AWS_ENDPOINT_URL"] = aws["endpoint"]
    try:
        stack.video_worker_start(name, api_url=api, instance_id=instance_id, hold_seconds=hold)
    finally:
        stack.env["AWS_ENDPOINT_URL"] = counted_url


def publisher_and_api_start(stack: Stack) -> str:
    """Celery worker and beat (not waited for), gunicorn (waited for): its URL."""
    stack.worker_start()
    stack.beat_start()
    return stack.gunicorn_start()


def first_publication_wait() -> None:
    wait_for(
        lambda: MetricPublication.objects.filter(source="db").exists(),
        timeout=3 * INTERVAL + 10,
        what="a first publication from the database",
    )


def _died(stack: Stack, name: str) -> bool:
    if not stack.alive(name):
        raise AssertionError(f"{name} exited early:\n{stack.log(name)[-3000:]}")
    return False


def polling_wait(stack: Stack, *names: str) -> None:
    def polling(name: str) -> bool:
        return " polls " in stack.log(name) or _died(stack, name)

    for name in names:
        wait_for(partial(polling, name), timeout=40, interval=0.2, what=f"{name} to poll")


def job_started(stack: Stack, name: str) -> bool:
    return "job started on video" in stack.log(name) or _died(stack, name)


def worker_claimed_at(stack: Stack, name: str) -> float:
    """When the worker logged its first claim (after the claim's answer reached it)."""
    found = re.search(_STAMP + r" \w+ video\.worker claimed video ", stack.log(name))
    assert found, stack.log(name)[-2000:]
    return epoch(found[1])


def epoch(stamp: str) -> float:
    """A log line's local time (asctime) as epoch seconds, like the counter's."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()


def api_claims(stack: Stack) -> list[tuple[float, int, str]]:
    """(when, video id, instance id) of every claim the API granted, from its log."""
    return [(epoch(t), int(v), i) for t, v, i in _API_CLAIMED.findall(stack.log("api"))]


def api_finishes(stack: Stack) -> dict[int, float]:
    return {int(v): epoch(t) for t, v in _API_FINISHED.findall(stack.log("api"))}


def protection_calls(counted: CountingAwsProxy) -> list[tuple[float, bool, list[str]]]:
    """(arrived, ProtectedFromScaleIn, ids) of every SetInstanceProtection the API made."""
    calls = []
    for r in counted.requests(SET):
        assert r.status == 200, r
        calls.append((r.at, r.param("ProtectedFromScaleIn") == "true", r.members("InstanceIds")))
    return calls


def cleared_at(counted: CountingAwsProxy, instance_id: str) -> float | None:
    """When the first call clearing ``instance_id``'s protection reached the endpoint."""
    for at, on, ids in protection_calls(counted):
        if not on and instance_id in ids:
            return at
    return None


def per_slot(requests: list[AwsRequest]) -> Counter[int]:
    """How many of the requests arrived in each slot (slots are aligned to the epoch)."""
    return Counter(int(r.at // INTERVAL) for r in requests)


def busy_periods(
    claims: list[tuple[float, int, str]], calls: list[tuple[float, bool, list[str]]], instance: str
) -> list[tuple[float, float | None]]:
    """An instance's busy periods: from a claim (none open) until its protection is cleared."""
    events = sorted(
        [(at, "claim") for at, _, i in claims if i == instance]
        + [(at, "clear") for at, on, ids in calls if not on and instance in ids]
    )
    periods: list[tuple[float, float | None]] = []
    start: float | None = None
    for at, kind in events:
        if kind == "claim" and start is None:
            start = at
        elif kind == "clear" and start is not None:
            periods.append((start, at))
            start = None
    if start is not None:
        periods.append((start, None))
    return periods


def no_traceback(stack: Stack, *names: str) -> None:
    for name in names:
        assert "Traceback" not in stack.log(name), f"{name}:\n{stack.log(name)[-3000:]}"


def workers_stop(stack: Stack, *names: str) -> None:
    for name in names:
        stack.send_signal(name, signal.SIGTERM)
    for name in names:
        assert stack.wait_exit(name, timeout=20) == 0, stack.log(name)[-3000:]


# --- scenarios ----------------------------------------------------------------


def test_scale_in_takes_the_idle_instance_and_the_busy_ones_only_after_their_jobs(
    fleet: Stack, aws: dict[str, str], counted: CountingAwsProxy
) -> None:
    stack = fleet
    a, b, idle = sorted(group_resize(aws, 3))
    api = publisher_and_api_start(stack)
    busy = {"vw-a": a, "vw-b": b}
    for name, instance_id in busy.items():
        worker_start(stack, name, api=api, instance_id=instance_id, hold=BUSY_HOLD, aws=aws)
    first_publication_wait()
    polling_wait(stack, *busy)

    ids = [video_upload(title=f"Lecture {i}").pk for i in range(2)]
    for name in busy:
        wait_for(
            partial(job_started, stack, name),
            timeout=20,
            interval=0.1,
            what=f"{name} to start its job",
        )
        assert ", instance protected" in stack.log(name), stack.log(name)[-2000:]
    assert {i for _, _, i in api_claims(stack)} == {a, b}
    assert protected_ids(aws) == {a, b}
    for name, instance_id in busy.items():  # protected before the claim answered
        # The claim's own call comes first; a reconciler that read the lease before that
        # call and the group after it may send a second one (harmless), so the first is
        # the one that must have been answered before the claim was.
        protects = [r for r in counted.requests(SET) if instance_id in r.members("InstanceIds")]
        assert protects, name
        first = min(protects, key=lambda r: r.answered_at)
        assert first.answered_at <= worker_claimed_at(stack, name) + 0.001, name

    # Target tracking lowers the desired capacity: only the idle instance goes.
    lowered_at = time.time()
    assert group_resize(aws, 1) == {a, b}
    assert Video.objects.filter(pk__in=ids, status=VideoStatus.PROCESSING).count() == 2, (
        "the jobs should still be running when the capacity is lowered"
    )

    # The jobs end; within one slot plus the grace, the reconciler clears protection.
    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() == 2,
        timeout=BUSY_HOLD + 15,
        what="both jobs READY",
    )
    bound = INTERVAL + GRACE + TICK_LATENCY
    wait_for(
        lambda: all(cleared_at(counted, i) for i in (a, b)),
        timeout=bound + 10,
        interval=0.2,
        what="protection cleared on both instances",
    )
    finished = api_finishes(stack)
    ended = {i: finished[v] for _, v, i in api_claims(stack)}
    took = {i: (cleared_at(counted, i) or 0.0) - ended[i] for i in (a, b)}
    assert protected_ids(aws) == set()
    assert all(t <= bound for t in took.values()), took
    # And not before they had been idle for about a whole slot: the grace.
    assert all(t >= GRACE - TICK_LATENCY for t in took.values()), took
    assert group_instances(aws).keys() == {a, b}  # nothing went while they were protected

    # The next lowering takes them.
    assert group_resize(aws, 0) == set()

    calls = protection_calls(counted)
    named = {i for _, _, batch in calls for i in batch}
    assert idle not in named, calls
    assert named == {a, b}, calls
    assert sorted((on, tuple(batch)) for _, on, batch in calls if on) == [
        (True, (a,)),
        (True, (b,)),
    ]
    assert sorted(i for _, on, batch in calls if not on for i in batch) == [a, b]
    describes = per_slot(counted.requests(DESCRIBE))
    assert max(describes.values()) == 1, describes
    workers_stop(stack, *busy)
    no_traceback(stack, "api", "worker", "beat", *busy)
    print(
        f"\n3 instances, 2 busy: lowering to 1 took only {idle} "
        f"({lowered_at - min(t for t, _, _ in api_claims(stack)):.1f} s after the claims); "
        f"protection cleared {', '.join(f'{t:.1f} s' for t in sorted(took.values()))} after "
        f"the jobs ended (bound {bound:g} s = slot {INTERVAL} + grace {GRACE} + "
        f"{TICK_LATENCY:g} s tick); then lowering to 0 took both. "
        f"SetInstanceProtection {len(calls)}, DescribeAutoScalingGroups "
        f"{sum(describes.values())} in {len(describes)} slots"
    )


def test_a_hundred_videos_cost_two_protection_calls_per_busy_period_and_one_read_per_slot(
    fleet: Stack, aws: dict[str, str], counted: CountingAwsProxy
) -> None:
    stack = fleet
    instances = sorted(group_resize(aws, 3))
    api = publisher_and_api_start(stack)
    names = {f"vw-{n}": i for n, i in enumerate(instances, 1)}
    for name, instance_id in names.items():
        worker_start(stack, name, api=api, instance_id=instance_id, hold=SHORT_HOLD, aws=aws)
    first_publication_wait()
    polling_wait(stack, *names)

    started = time.time()
    ids = [video_upload(title=f"Lecture {i}").pk for i in range(VIDEOS)]
    wait_for(
        lambda: Video.objects.filter(pk__in=ids, status=VideoStatus.READY).count() == VIDEOS,
        timeout=90,
        what=f"{VIDEOS} videos READY",
    )
    took = time.time() - started
    claims = api_claims(stack)
    working = sorted({i for _, _, i in claims})
    wait_for(
        lambda: all(cleared_at(counted, i) for i in working),
        timeout=INTERVAL + GRACE + TICK_LATENCY + 10,
        interval=0.2,
        what="protection cleared on every instance that worked",
    )
    time.sleep(INTERVAL)  # one more slot: nothing more may happen after the clear
    workers_stop(stack, *names)
    stopped = time.time()

    assert len(claims) == VIDEOS
    assert sorted(v for _, v, _ in claims) == sorted(ids)
    assert protected_ids(aws) == set()
    calls = protection_calls(counted)
    per_instance: dict[str, list[int]] = {}
    for instance_id in instances:
        periods = busy_periods(claims, calls, instance_id)
        assert all(end is not None for _, end in periods), (instance_id, periods)
        in_periods = [
            sum(1 for at, _, batch in calls if instance_id in batch and start <= at <= (end or at))
            for start, end in periods
        ]
        naming = sum(1 for _, _, batch in calls if instance_id in batch)
        assert naming == sum(in_periods), f"{instance_id}: a call outside a busy period: {calls}"
        assert all(n <= 2 for n in in_periods), (instance_id, in_periods, calls)
        per_instance[instance_id] = in_periods
    assert set(i for _, _, batch in calls for i in batch) <= set(instances)

    describes = counted.requests(DESCRIBE)
    by_slot = per_slot(describes)
    slots = int(stopped // INTERVAL) - int(counted.requests()[0].at // INTERVAL) + 1
    assert max(by_slot.values()) == 1, sorted(by_slot.items())
    puts = per_slot(counted.requests("PutMetricData"))
    assert max(puts.values()) == 1, sorted(puts.items())
    done = Counter(i for _, _, i in claims)
    no_traceback(stack, "api", "worker", "beat", *names)
    operations = Counter(r.operation for r in counted.requests())
    print(
        f"\n{VIDEOS} videos READY in {took:.1f} s by 3 workers "
        f"({', '.join(f'{done[i]}' for i in instances)}); "
        f"SetInstanceProtection {len(calls)} in all, per busy period per instance "
        f"{[per_instance[i] for i in instances]}; DescribeAutoScalingGroups {len(describes)} "
        f"in {slots} slots (at most {max(by_slot.values())} a slot); "
        f"all API requests to AWS {dict(operations)}"
    )
