"""A ledger per video from the database and the logs, and which lost claims a fault explains.

Sources:

- the database: each Video's status, attempts and last_error, and its VideoRecovery
  rows (a lease that ran out: when, which attempt, which instance);
- the API's log (``api.log``): ``Video claimed | video_id=N attempts=K instance_id=I``,
  ``Video finished | video_id=N``, ``Video released | video_id=N`` (each written once the
  conditional UPDATE succeeded);
- the fleet's log (``fleet.log``, the video workers' lines prefixed with their instance):
  ``finished video N: READY`` (a second one for the same video: finished twice);
- the fault log (``inject.FaultRecord``) and the instances the watcher saw leave the group.

Each claim ends finished, released (not an attempt: the release takes it back), recovered
(a VideoRecovery row for that attempt) or taken over (the next claim of an expired lease).
A recovered or taken-over claim is a loss; the rule for "explained" is ``loss_explain``.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from bench.soak_loop.inject import FaultRecord
from bench.soak_loop.plan import SoakLoopConfig

_TIME = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[,.]\d{3})")
_CLAIMED = re.compile(r"Video claimed \| video_id=(\d+) attempts=(\d+) instance_id=(\S+)")
_FINISHED = re.compile(r"Video finished \| video_id=(\d+) status=(\w+)")
_RELEASED = re.compile(r"Video released \| video_id=(\d+)")
_WORKER_FINISHED = re.compile(r"finished video (\d+): (READY|FAILED)")
_WORKER_CLAIMED = re.compile(r"claimed video (\d+) \(attempt (\d+)")
# The video worker's HTTP timeout (video.worker.client.DEFAULT_TIMEOUT): a claim the API
# could not answer for this long is given up by its worker, and may still be served later.
WORKER_CLIENT_TIMEOUT = 10.0
# Faults that can let a live lease run out when they last long enough (the API cannot
# answer a renewal while the tick, on its own path, sees the lease expire).
LEASE_LOSING_OUTAGES = frozenset(
    {"api-freeze-short", "api-freeze-long", "pg-web-refuse", "pg-web-hang"}
)


def line_time(line: str) -> float | None:
    match = _TIME.search(line)
    if match is None:
        return None
    text = match.group(1).replace(",", ".").replace("T", " ")
    return datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=UTC).timestamp()


@dataclass
class Claim:
    video_id: int
    attempts: int
    instance_id: str
    at: float
    ended: str = "open"  # finished | released | recovered | taken over | open
    ended_at: float | None = None
    explained_by: str = ""  # for a loss: the fault that explains it ("" = none)
    received: bool = True  # a worker logged this lease as its own ("claimed video N ...")

    @property
    def lost(self) -> bool:
        return self.ended in ("recovered", "taken over")


@dataclass
class VideoLedger:
    video_id: int
    burst: str
    status: str
    attempts: int
    last_error: str
    claims: list[Claim] = field(default_factory=list)
    finishes: int = 0  # the API's successful finishes
    worker_finishes: int = 0  # the workers' "finished video N" lines
    releases: int = 0
    recoveries: list[tuple[float, int, str, str]] = field(default_factory=list)

    @property
    def losses(self) -> list[Claim]:
        return [c for c in self.claims if c.lost]

    @property
    def extra_attempts(self) -> int:
        return max(0, self.attempts - 1)

    @property
    def unexplained_attempts(self) -> int:
        """Attempts beyond the first whose previous claim's loss no fault explains (a loss
        missing from the logs counts as unexplained)."""
        explained = sum(1 for c in self.losses[: self.extra_attempts] if c.explained_by)
        return self.extra_attempts - explained

    @property
    def finished_twice(self) -> bool:
        return self.finishes > 1 or self.worker_finishes > 1


def _events(api_log: str) -> dict[int, list[tuple[float, str, int, str]]]:
    """video -> [(time, what, attempts, instance)] from the API's log, oldest first."""
    events: dict[int, list[tuple[float, str, int, str]]] = defaultdict(list)
    for line in api_log.splitlines():
        at = line_time(line)
        if at is None:
            continue
        if m := _CLAIMED.search(line):
            events[int(m.group(1))].append((at, "claimed", int(m.group(2)), m.group(3)))
        elif m := _FINISHED.search(line):
            events[int(m.group(1))].append((at, "finished", 0, ""))
        elif m := _RELEASED.search(line):
            events[int(m.group(1))].append((at, "released", 0, ""))
    for video_events in events.values():
        video_events.sort(key=lambda e: e[0])
    return events


def ledgers_build(
    *,
    videos: list[tuple[int, str, str, int, str]],  # id, title, status, attempts, last_error
    recoveries: list[tuple[int, float, int, str, str]],  # video, at, attempts, instance, status
    api_log: str,
    fleet_log: str,
) -> dict[int, VideoLedger]:
    ledgers = {
        pk: VideoLedger(pk, title.rsplit(" ", 1)[0], status, attempts, error)
        for pk, title, status, attempts, error in videos
    }
    by_video: dict[int, list[tuple[float, int, str, str]]] = defaultdict(list)
    for video_id, at, attempts, instance, status in recoveries:
        by_video[video_id].append((at, attempts, instance, status))
    worker_finishes = Counter(int(m.group(1)) for m in _WORKER_FINISHED.finditer(fleet_log))
    received = {(int(v), int(k)) for v, k in _WORKER_CLAIMED.findall(fleet_log)}
    for video_id, events in _events(api_log).items():
        ledger = ledgers.get(video_id)
        if ledger is None:
            continue
        ledger.recoveries = sorted(by_video.get(video_id, []))
        timeline = [(e[0], e[1], e[2], e[3]) for e in events]
        timeline += [(at, "recovered", k, i) for at, k, i, _ in ledger.recoveries]
        timeline.sort(key=lambda e: e[0])
        open_claim: Claim | None = None
        for at, what, attempts, instance in timeline:
            if what == "claimed":
                if open_claim is not None:
                    open_claim.ended, open_claim.ended_at = "taken over", at
                open_claim = Claim(video_id, attempts, instance, at)
                open_claim.received = (video_id, attempts) in received
                ledger.claims.append(open_claim)
                continue
            ledger.finishes += what == "finished"
            ledger.releases += what == "released"
            if open_claim is not None:
                open_claim.ended, open_claim.ended_at = what, at
                open_claim = None
    for video_id, ledger in ledgers.items():
        ledger.worker_finishes = worker_finishes.get(video_id, 0)
        if not ledger.recoveries:
            ledger.recoveries = sorted(by_video.get(video_id, []))
    return ledgers


def loss_explain(
    claim: Claim,
    faults: list[FaultRecord],
    *,
    config: SoakLoopConfig,
    instances_gone: dict[str, float],
    start: float,
) -> str:
    """The fault that explains a lost claim, or "".

    A loss (held from the claim to its recovery or take-over) is explained by:
    1. a worker fault (SIGKILL, SIGTERM) that hit that very video while it was held;
    2. an outage of the API's answers (SIGSTOP, or PostgreSQL refused or hanging for the
       API) of at least lease - lease // 3 seconds that overlapped the time it was held:
       a shorter one cannot let a renewed lease run out;
    3. its instance leaving the group while it was held (also counted as a busy
       instance scaled in);
    4. a claim no worker ever received (no "claimed video N (attempt K" line) that the
       API served within the workers' client timeout after an outage of its answers at
       least that long: the worker gave up on the request, the API served it once it
       could, and the lease it granted had no holder.
    Redis, the AWS endpoint, PostgreSQL for the tick or the workers and the queue purge
    explain nothing: none of them can lose a lease by design.
    """
    end = claim.ended_at if claim.ended_at is not None else float("inf")
    for fault in faults:
        if fault.kind in ("worker-kill", "worker-term"):
            if fault.video_id == claim.video_id and claim.at <= fault.start <= end:
                return f"{fault.kind} at +{fault.start - start:.0f} s"
        elif fault.kind in LEASE_LOSING_OUTAGES:
            long_enough = fault.end - fault.start >= config.lease_losing_seconds
            if long_enough and fault.start <= end and fault.end >= claim.at:
                return (
                    f"{fault.kind} {fault.end - fault.start:.0f} s at +{fault.start - start:.0f} s"
                )
    gone = instances_gone.get(claim.instance_id)
    if gone is not None and claim.at <= gone <= end + 2:
        return f"instance {claim.instance_id} left the group at +{gone - start:.0f} s"
    for fault in faults:
        if (
            not claim.received
            and fault.kind in LEASE_LOSING_OUTAGES
            and fault.end - fault.start >= WORKER_CLIENT_TIMEOUT
            and fault.start <= claim.at <= fault.end + WORKER_CLIENT_TIMEOUT
        ):
            return (
                f"{fault.kind} {fault.end - fault.start:.0f} s at +{fault.start - start:.0f} s "
                "(a claim served after its worker gave up)"
            )
    return ""


def busy_when_gone(ledgers: dict[int, VideoLedger], terminated: dict[str, float]) -> set[str]:
    """Instances terminated while a claim on them was live, from the logs and EC2's own
    termination time (whole seconds: ``terminated`` is the start of that second)."""
    busy = set()
    for ledger in ledgers.values():
        for claim in ledger.claims:
            at = terminated.get(claim.instance_id)
            if at is None:
                continue
            ended = claim.ended_at if claim.ended_at is not None else float("inf")
            if claim.at < at and ended > at + 1:
                busy.add(claim.instance_id)
    return busy
