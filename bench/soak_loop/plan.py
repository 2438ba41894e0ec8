"""What a loop soak will do, drawn from its seed before anything starts: bursts and faults.

Everything here is pure (no process, no clock): the same seed and settings give the
same plan, so a run can be repeated and a failure looked at again.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

# Every fault the soak knows. Signals hit one worker (the one holding a video when
# there is one); the proxies cut one role's path to PostgreSQL, Redis or the AWS
# endpoint; the freeze stops the whole API (gunicorn and its workers) with SIGSTOP.
FAULT_KINDS: tuple[str, ...] = (
    "worker-kill",  # SIGKILL a busy video worker
    "worker-term",  # SIGTERM a busy video worker (it releases its video)
    "api-freeze-short",  # SIGSTOP the API for a quarter to half a lease
    "api-freeze-long",  # SIGSTOP the API for 1.5 to 2.5 leases
    "pg-web-refuse",  # PostgreSQL refused to the API (gunicorn)
    "pg-web-hang",  # ... hanging (connections accepted, never answered)
    "pg-tick-refuse",  # PostgreSQL refused to the tick (celery worker and beat)
    "pg-tick-hang",
    "pg-workers-refuse",  # PostgreSQL refused to the fleet and its video workers
    "pg-workers-hang",
    "redis-refuse",  # Redis (broker and slot claims) refused to every process
    "aws-refuse",  # the AWS endpoint refused (connection errors) to API, tick and workers
    "aws-error",  # ... answering every request 500 (InternalFailure)
    "aws-hang",  # ... hanging
    "queue-purge",  # the SQS job queue purged (every waiting message gone)
)
# Every kind by default: since claim-next (workers ask the API for the oldest waiting
# video when their queue is empty) a purge no longer strands the videos it emptied.
DEFAULT_FAULTS: tuple[str, ...] = FAULT_KINDS
INSTANT_KINDS = frozenset({"worker-kill", "worker-term", "queue-purge"})


@dataclass(frozen=True)
class SoakLoopConfig:
    minutes: float
    seed: int
    faults: tuple[str, ...] = DEFAULT_FAULTS
    interval: int = 10  # the publisher's slot
    lease: int = 12  # VIDEO_LEASE_SECONDS (renewed every lease // 3)
    max_attempts: int = 3  # VIDEO_MAX_ATTEMPTS
    hold: int = 20  # seconds each (stand-in) job takes
    boot: int = 5  # DEVSTACK_BOOT_SECONDS
    target: float = 3.0  # per-instance target of the installed policy
    warmup: int = 10
    scale_in_datapoints: int = 3  # the control plane's scale-in alarm (AWS: 15)
    burst_sizes: tuple[int, int] = (5, 30)
    burst_gaps: tuple[float, float] = (60.0, 150.0)  # seconds between two bursts
    fault_gaps: tuple[float, float] = (15.0, 45.0)  # seconds between two faults
    first_fault_after: float = 20.0  # the first burst's workers are busy by then
    drain_seconds: float = 480.0  # after the soak window: everything done and the group down

    @property
    def renew(self) -> int:
        return self.lease // 3

    @property
    def lease_losing_seconds(self) -> float:
        """The shortest outage of the API's answers that can let a lease run out: a renewal
        lands, the next renewals (every lease // 3) go unanswered, the lease expires."""
        return float(self.lease - self.renew)


@dataclass(frozen=True)
class PlannedFault:
    kind: str
    at: float  # seconds after the soak's start
    seconds: float  # 0 for instant faults


@dataclass(frozen=True)
class Plan:
    bursts: tuple[tuple[float, int], ...]  # (seconds after start, videos)
    faults: tuple[PlannedFault, ...] = field(default_factory=tuple)


def fault_seconds(kind: str, config: SoakLoopConfig, rng: random.Random) -> float:
    if kind in INSTANT_KINDS:
        return 0.0
    if kind == "api-freeze-short":
        return round(rng.uniform(0.25, 0.5) * config.lease, 1)
    if kind == "api-freeze-long":
        return round(rng.uniform(1.5, 2.5) * config.lease, 1)
    if kind.startswith("pg-") or kind == "redis-refuse":
        return round(rng.uniform(5, 25), 1)
    return round(rng.uniform(5, 20), 1)  # aws


def plan_draw(config: SoakLoopConfig) -> Plan:
    """Bursts from the start to the end of the window; one fault at a time (so each loss
    has one suspect), kinds drawn evenly from ``config.faults``, none running past the
    window's end."""
    unknown = sorted(set(config.faults) - set(FAULT_KINDS))
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}: choose from {', '.join(FAULT_KINDS)}")
    window = config.minutes * 60
    rng = random.Random(config.seed)
    bursts: list[tuple[float, int]] = []
    t = 2.0
    while t < window:
        bursts.append((round(t, 1), rng.randint(*config.burst_sizes)))
        t += rng.uniform(*config.burst_gaps)
    faults: list[PlannedFault] = []
    t = config.first_fault_after
    kinds = sorted(config.faults)
    while kinds:
        kind = rng.choice(kinds)
        seconds = fault_seconds(kind, config, rng)
        if t + seconds > window:
            break
        faults.append(PlannedFault(kind, round(t, 1), seconds))
        t += seconds + rng.uniform(*config.fault_gaps)
    return Plan(bursts=tuple(bursts), faults=tuple(faults))
