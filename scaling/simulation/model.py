"""What target tracking would do with a workload, before anything touches AWS.

A deterministic discrete-time model: the clock advances one metric period at a
time (``SCALING_PUBLISH_INTERVAL_SECONDS``); between two ticks the workers take
videos first-in first-out, one at a time each, in continuous time. At every tick
the model measures the backlog exactly as the publisher does (UPLOADED +
PROCESSING), feeds it to target tracking's two alarms and its proportional rule,
and applies the resulting desired capacity. Every modelling choice, and the AWS
page it comes from or the word "assumption", is listed in ``docs/simulator.md``.

The simulation functions are pure: the only randomness is a ``random.Random``
made from the caller's seed, and it is spent while building the workload, so
every policy compared on one workload sees the very same videos.
``processing_history_seconds`` is the one database read, kept apart.
"""

from __future__ import annotations

import bisect
import heapq
import math
import random
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

PATTERNS: tuple[str, ...] = ("steady", "spike", "diurnal")
DAY_SECONDS = 86_400

# Alarms that EC2 Auto Scaling creates for a target tracking policy (see docs/simulator.md).
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_RATIO = 0.9

HISTORY_MIN_VIDEOS = 20
HISTORY_LIMIT = 500
HISTORY_DAYS = 30

# A run that has not drained this long after the last upload is reported as not drained.
DRAIN_LIMIT_SECONDS = DAY_SECONDS


from scaling.policy.aim import (  # noqa: E402  (the simulator follows the policy's rule)
    MODES,
    SimulationError,
    _ceil_ratio,
    _clamp,
    _target_check,
)

# --------------------------------------------------------------------------- helpers


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; 0 for none."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(values)))
    return float(values[rank - 1])


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True)
class ProcessingTimes:
    """Where each video's processing time comes from: mean/spread, or observed samples."""

    mean_seconds: float
    spread_seconds: float = 0.0
    samples: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        if not (math.isfinite(self.mean_seconds) and self.mean_seconds > 0):
            raise SimulationError(
                f"the processing mean must be above 0 seconds, got {self.mean_seconds:g}"
            )
        if not (math.isfinite(self.spread_seconds) and self.spread_seconds >= 0):
            raise SimulationError(
                f"the processing spread must be 0 or more seconds, got {self.spread_seconds:g}"
            )

    @classmethod
    def from_samples(cls, samples: Sequence[float]) -> ProcessingTimes:
        if not samples:
            raise SimulationError("no processing-time samples")
        mean = sum(samples) / len(samples)
        spread = math.sqrt(sum((s - mean) ** 2 for s in samples) / len(samples))
        return cls(mean_seconds=mean, spread_seconds=spread, samples=tuple(samples))

    def draw(self, rng: random.Random) -> float:
        if self.samples:
            return rng.choice(self.samples)
        if self.spread_seconds == 0:
            return self.mean_seconds
        # Normal, cut at one second: a transcode never takes no time at all.
        return max(1.0, rng.gauss(self.mean_seconds, self.spread_seconds))

    def describe(self) -> str:
        if self.samples:
            return (
                f"{len(self.samples)} observed durations "
                f"(mean {self.mean_seconds:.0f} s, sd {self.spread_seconds:.0f} s)"
            )
        return f"mean {self.mean_seconds:g} s, spread {self.spread_seconds:g} s"


@dataclass(frozen=True)
class Workload:
    """Upload times (seconds from the start, sorted) and each video's processing time."""

    arrivals: tuple[float, ...]
    processing: tuple[float, ...]
    description: str

    def as_json(self) -> dict[str, Any]:
        return {
            "description": self.description,
            "videos": len(self.arrivals),
            "last_upload_seconds": self.arrivals[-1] if self.arrivals else 0.0,
            "mean_processing_seconds": (
                round(sum(self.processing) / len(self.processing), 3) if self.processing else 0.0
            ),
        }


def workload_build(
    *, arrivals: Iterable[float], processing: ProcessingTimes, rng: random.Random, description: str
) -> Workload:
    ordered = tuple(sorted(arrivals))
    if not ordered:
        raise SimulationError("the workload has no uploads")
    durations = tuple(processing.draw(rng) for _ in ordered)
    return Workload(
        arrivals=ordered,
        processing=durations,
        description=f"{description}; processing {processing.describe()}",
    )


def arrivals_steady(*, rate_per_minute: float, duration_seconds: float) -> list[float]:
    """Evenly spaced uploads: the pattern whose answer can be worked out by hand."""
    if not (math.isfinite(rate_per_minute) and rate_per_minute > 0):
        raise SimulationError(f"--rate must be above 0 per minute, got {rate_per_minute:g}")
    _duration_check(duration_seconds)
    gap = 60.0 / rate_per_minute
    return [i * gap for i in range(math.ceil(duration_seconds / gap))]


def arrivals_spike(*, count: int, at_seconds: float = 60.0) -> list[float]:
    if count <= 0:
        raise SimulationError(f"--count must be 1 or more, got {count}")
    return [float(at_seconds)] * count


def arrivals_diurnal(
    *,
    peak_per_minute: float,
    trough_per_minute: float,
    duration_seconds: float,
    rng: random.Random,
) -> list[float]:
    """A Poisson stream whose rate follows a day: trough at midnight, peak at noon."""
    if not (math.isfinite(peak_per_minute) and peak_per_minute > 0):
        raise SimulationError(f"--rate must be above 0 per minute, got {peak_per_minute:g}")
    if not (0 <= trough_per_minute <= peak_per_minute):
        raise SimulationError(
            f"--trough-rate must be between 0 and --rate ({peak_per_minute:g}), "
            f"got {trough_per_minute:g}"
        )
    _duration_check(duration_seconds)
    peak = peak_per_minute / 60.0
    trough = trough_per_minute / 60.0
    arrivals: list[float] = []
    t = 0.0
    while True:
        # Thinning (Lewis and Shedler): candidates at the peak rate, kept with rate(t) / peak.
        t += rng.expovariate(peak)
        if t >= duration_seconds:
            return arrivals
        rate = trough + (peak - trough) * (1 - math.cos(2 * math.pi * t / DAY_SECONDS)) / 2
        if rng.random() * peak <= rate:
            arrivals.append(t)


def _duration_check(duration_seconds: float) -> None:
    if not (math.isfinite(duration_seconds) and duration_seconds > 0):
        raise SimulationError(f"--duration must be above 0 seconds, got {duration_seconds:g}")


def arrivals_parse(lines: Iterable[str], *, source: str = "the workload file") -> list[float]:
    """Upload times from text: one ISO 8601 timestamp or one offset in seconds a line.

    Only the first comma-separated field counts, so a CSV export with more columns
    works. Blank lines and lines starting with ``#`` are skipped. Timestamps
    become offsets from the earliest one; naive timestamps are read as UTC.
    """
    offsets: list[float] = []
    stamps: list[datetime] = []
    for number, raw in enumerate(lines, start=1):
        text = raw.split(",", 1)[0].strip()
        if not text or text.startswith("#"):
            continue
        value = _upload_time_parse(text)
        if value is None:
            raise SimulationError(
                f"{source}, line {number}: {text[:40]!r} is neither an ISO timestamp "
                "nor a number of seconds"
            )
        if (offsets and isinstance(value, datetime)) or (stamps and isinstance(value, float)):
            raise SimulationError(
                f"{source}, line {number}: mixes ISO timestamps and second offsets; use one kind"
            )
        if isinstance(value, datetime):
            stamps.append(value)
        elif math.isfinite(value) and value >= 0:
            offsets.append(value)
        else:
            raise SimulationError(
                f"{source}, line {number}: an offset must be 0 or more seconds, got {text!r}"
            )
    if stamps:
        start = min(stamps)
        offsets = [(stamp - start).total_seconds() for stamp in stamps]
    if not offsets:
        raise SimulationError(f"{source} has no upload times")
    return offsets


def _upload_time_parse(text: str) -> float | datetime | None:
    try:
        return float(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def processing_history_seconds(
    *, now: datetime | None = None, days: int = HISTORY_DAYS, limit: int = HISTORY_LIMIT
) -> list[float]:
    """Upload-to-READY durations of the most recent READY videos, in seconds.

    The model stores when a video was created and when its status last changed,
    not when it entered PROCESSING. For a READY video that gives upload -> READY:
    queue wait plus processing. That is an upper bound on the processing time, so
    a simulation fed with it errs towards more waiting and more instances.
    """
    # Imported here: the simulation itself needs neither Django nor the database.
    from django.utils import timezone

    from video.models import Video, VideoStatus

    since = (now or timezone.now()) - timedelta(days=days)
    rows = (
        Video.objects.filter(status=VideoStatus.READY, status_changed_at__gte=since)
        .order_by("-status_changed_at")
        .values_list("created_at", "status_changed_at")[:limit]
    )
    return [
        seconds for created, changed in rows if (seconds := (changed - created).total_seconds()) > 0
    ]


# --------------------------------------------------------------------------- policy and run


@dataclass(frozen=True)
class SimPolicy:
    mode: str
    target: float
    warmup_seconds: int = 60
    min_size: int = 0
    max_size: int = 10
    boot_seconds: int = 60
    scale_out_datapoints: int = SCALE_OUT_DATAPOINTS
    scale_in_datapoints: int = SCALE_IN_DATAPOINTS
    scale_in_ratio: float = SCALE_IN_RATIO
    wake_datapoints: int = 1

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SimulationError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        _target_check(self.target)
        if not 0 <= self.warmup_seconds <= 3600:
            raise SimulationError(
                f"--warmup must be between 0 and 3600 seconds, got {self.warmup_seconds}"
            )
        if self.min_size < 0:
            raise SimulationError(f"--min-size must be 0 or more, got {self.min_size}")
        if self.max_size < max(1, self.min_size):
            raise SimulationError(
                f"--max-size must be at least 1 and at least --min-size ({self.min_size}), "
                f"got {self.max_size}"
            )
        if self.boot_seconds < 0:
            raise SimulationError(f"--boot-time must be 0 or more seconds, got {self.boot_seconds}")

    @property
    def label(self) -> str:
        return f"{self.mode} {self.target:g}"


@dataclass
class _Instance:
    launched_at: float
    ready_at: float  # InService and taking videos
    busy_until: float = 0.0
    job: int | None = None
    job_started: float = 0.0
    terminated_at: float | None = None

    def available_at(self) -> float:
        return max(self.ready_at, self.busy_until)


@dataclass(frozen=True)
class Tick:
    seconds: float
    backlog: int
    metric: float | None
    desired: int
    in_service: int


@dataclass
class SimResult:
    policy: SimPolicy
    period_seconds: int
    waits: list[float]
    peak_instances: int
    instance_seconds: float
    scaling_actions: int
    drained: bool
    simulated_seconds: float
    timeline: list[Tick] = field(repr=False)

    @property
    def p50_wait(self) -> float:
        return percentile(self.waits, 50)

    @property
    def p95_wait(self) -> float:
        return percentile(self.waits, 95)

    @property
    def max_wait(self) -> float:
        return self.waits[-1] if self.waits else 0.0

    @property
    def instance_hours(self) -> float:
        return self.instance_seconds / 3600

    def as_json(self) -> dict[str, Any]:
        p = self.policy
        return {
            "mode": p.mode,
            "target": p.target,
            "warmup_seconds": p.warmup_seconds,
            "min_size": p.min_size,
            "max_size": p.max_size,
            "boot_seconds": p.boot_seconds,
            "period_seconds": self.period_seconds,
            "videos": len(self.waits),
            "p50_wait_seconds": round(self.p50_wait, 3),
            "p95_wait_seconds": round(self.p95_wait, 3),
            "max_wait_seconds": round(self.max_wait, 3),
            "peak_instances": self.peak_instances,
            "instance_hours": round(self.instance_hours, 4),
            "scaling_actions": self.scaling_actions,
            "drained": self.drained,
            "simulated_seconds": self.simulated_seconds,
        }


def simulate(*, workload: Workload, policy: SimPolicy, period_seconds: int) -> SimResult:
    """Replay the workload against the policy, one metric period per step."""
    if period_seconds <= 0:
        raise SimulationError(f"the period must be above 0 seconds, got {period_seconds}")
    return _Run(workload=workload, policy=policy, period=period_seconds).run()


class _Run:
    def __init__(self, *, workload: Workload, policy: SimPolicy, period: int) -> None:
        self.arrivals = workload.arrivals
        self.processing = workload.processing
        self.policy = policy
        self.period = period
        n = len(self.arrivals)
        self.start_at: list[float | None] = [None] * n
        self.finish_at: list[float | None] = [None] * n
        self.finishing: list[tuple[float, int]] = []  # heap of (finish time, video)
        self.finished = 0
        self.next_video = 0  # next never-started video, in upload order
        self.requeued: deque[tuple[int, float]] = deque()  # (video, available since)
        # The group starts at rest: MinSize instances, booted and warmed long ago.
        settled = -float(policy.boot_seconds + policy.warmup_seconds)
        self.instances = [
            _Instance(launched_at=0.0, ready_at=settled) for _ in range(policy.min_size)
        ]
        self.desired = policy.min_size

    def live(self) -> list[_Instance]:
        return [i for i in self.instances if i.terminated_at is None]

    def run(self) -> SimResult:
        p = self.policy
        high = low = wake = 0
        actions = 0
        peak = len(self.live())
        timeline: list[Tick] = []
        limit = self.arrivals[-1] + DRAIN_LIMIT_SECONDS
        drained = False
        step = 0
        while True:
            now = float(step * self.period)
            self.advance(until=now)
            while self.finishing and self.finishing[0][0] <= now:
                finish, video = heapq.heappop(self.finishing)
                if self.finish_at[video] == finish:  # else the run was cut by a scale-in
                    self.finished += 1
            # What the publisher measures: UPLOADED + PROCESSING at the tick.
            backlog = bisect.bisect_right(self.arrivals, now) - self.finished

            live = self.live()
            in_service = sum(1 for i in live if i.ready_at <= now)
            warm = sum(1 for i in live if i.ready_at + p.warmup_seconds <= now)
            metric: float | None
            if p.mode == "total":
                metric = float(backlog)
            else:
                # m1 / m2 with m2 = GroupInServiceInstances: no value without a divisor.
                metric = backlog / in_service if in_service else None

            high = high + 1 if metric is not None and metric > p.target else 0
            low = low + 1 if metric is not None and metric < p.scale_in_ratio * p.target else 0
            wake = wake + 1 if backlog > 0 and in_service == 0 else 0

            wanted = self.desired
            if wake >= p.wake_datapoints and self.desired == 0:
                wanted = _clamp(1, min_size=p.min_size, max_size=p.max_size)
            elif high >= p.scale_out_datapoints and warm > 0:
                # Capacity still warming up is not counted as current capacity, but
                # it is part of the desired capacity: no second launch for it.
                aim = self.proportional(backlog=backlog, basis=warm, in_service=in_service)
                wanted = max(self.desired, aim)
            elif low >= p.scale_in_datapoints and warm == len(live):
                # Scale-in waits until every new instance has finished warming up.
                aim = self.proportional(backlog=backlog, basis=warm, in_service=in_service)
                wanted = min(self.desired, aim)
            if wanted != self.desired:
                actions += 1
                self.resize(wanted, now=now)
            peak = max(peak, len(self.live()))
            timeline.append(
                Tick(
                    seconds=now,
                    backlog=backlog,
                    metric=metric,
                    desired=self.desired,
                    in_service=in_service,
                )
            )

            done = self.finished == len(self.arrivals)
            if done and self.desired == p.min_size and len(self.live()) == p.min_size:
                drained = True
                break
            if now >= limit:
                break
            step += 1

        end = timeline[-1].seconds
        instance_seconds = sum(
            (i.terminated_at if i.terminated_at is not None else end) - i.launched_at
            for i in self.instances
        )
        waits = sorted(
            start - arrival
            for start, arrival, finish in zip(
                self.start_at, self.arrivals, self.finish_at, strict=True
            )
            if start is not None and finish is not None
        )
        return SimResult(
            policy=p,
            period_seconds=self.period,
            waits=waits,
            peak_instances=peak,
            instance_seconds=instance_seconds,
            scaling_actions=actions,
            drained=drained,
            simulated_seconds=end,
            timeline=timeline,
        )

    def proportional(self, *, backlog: int, basis: int, in_service: int) -> int:
        """ceil(current capacity * metric / target), clamped to the group's bounds."""
        p = self.policy
        target = Fraction(p.target)
        if p.mode == "total":
            aim = _ceil_ratio(Fraction(basis * backlog), target)
        else:
            aim = _ceil_ratio(Fraction(basis * backlog), Fraction(in_service) * target)
        return _clamp(aim, min_size=p.min_size, max_size=p.max_size)

    def resize(self, wanted: int, *, now: float) -> None:
        self.desired = wanted
        live = self.live()
        for _ in range(wanted - len(live)):
            self.instances.append(
                _Instance(launched_at=now, ready_at=now + self.policy.boot_seconds)
            )
        surplus = len(live) - wanted
        if surplus <= 0:
            return

        # Instances not yet serving go first, then idle ones, then the busy ones
        # with the least work done; the video of a busy one goes back to the queue.
        def cost(inst: _Instance) -> tuple[int, float]:
            if inst.ready_at > now:
                return (0, -inst.launched_at)
            if inst.busy_until <= now:
                return (1, -inst.launched_at)
            return (2, now - inst.job_started)

        for inst in sorted(live, key=cost)[:surplus]:
            inst.terminated_at = now
            if inst.job is not None and inst.busy_until > now:
                self.finish_at[inst.job] = None
                self.start_at[inst.job] = None
                self.requeued.append((inst.job, now))
                inst.job = None

    def advance(self, *, until: float) -> None:
        """Start every video that a live worker can take before ``until``, in FIFO order."""
        live = self.live()
        if not live:
            return
        while True:
            if self.requeued:
                video, ready = self.requeued[0]
            elif self.next_video < len(self.arrivals):
                video, ready = self.next_video, self.arrivals[self.next_video]
            else:
                return
            worker = min(live, key=_Instance.available_at)
            start = max(ready, worker.available_at())
            if start >= until:
                return
            if self.requeued:
                self.requeued.popleft()
            else:
                self.next_video += 1
            finish = start + self.processing[video]
            worker.busy_until = finish
            worker.job = video
            worker.job_started = start
            self.start_at[video] = start
            self.finish_at[video] = finish
            heapq.heappush(self.finishing, (finish, video))


# --------------------------------------------------------------------------- advice


def target_candidates(*, acceptable_wait: float, processing_mean: float) -> list[float]:
    """Targets around AWS's formula (acceptable wait / processing time), low to high."""
    base = acceptable_wait / processing_mean
    factors = (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0)
    return sorted({max(0.1, round(base * f, 2)) for f in factors})


def recommend(results: Sequence[SimResult], *, acceptable_wait: float) -> SimResult | None:
    """The cheapest result whose p95 wait meets the requirement (ties: the shorter wait)."""
    passing = [r for r in results if r.drained and r.p95_wait <= acceptable_wait]
    if not passing:
        return None
    return min(passing, key=lambda r: (round(r.instance_seconds, 6), r.p95_wait, -r.policy.target))
