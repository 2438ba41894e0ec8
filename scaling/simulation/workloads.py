"""The workload a simulation replays: upload times and each video's processing time.

Built-in patterns (steady, spike, diurnal, academy: ``scaling.simulation.academy``), a
CSV of upload times, and the processing times of recent READY videos; or a fleet's own
history (``--fleet`` without a pattern): arrivals estimated from its audit rows. The only
randomness is a ``random.Random`` made from the caller's seed, spent here, while the
workload is built: every policy compared on one workload sees the very same videos.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scaling.simulation.academy import academy_arrivals, academy_measure_from
from scaling.simulation.model import DAY_SECONDS, Workload
from scaling.simulation.policy import SimulationError

PATTERNS: tuple[str, ...] = ("steady", "spike", "diurnal", "academy")

HISTORY_MIN_VIDEOS = 20
HISTORY_LIMIT = 500
HISTORY_DAYS = 30
FLEET_HISTORY_SECONDS = 86_400.0


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
) -> list[float] | None:
    """Processing durations of the most recent finished items, in seconds, from the
    host's backlog source (``scaling.port``); None when the source offers none.

    The reference video app answers with upload-to-READY durations: queue wait
    plus processing, an upper bound, so a simulation fed with it errs towards
    more waiting and more instances.
    """
    # Imported here: the simulation itself needs neither Django nor the database.
    from django.utils import timezone

    from scaling.port import processing_history

    since = (now or timezone.now()) - timedelta(days=days)
    return processing_history(since=since, limit=limit)


@dataclass(frozen=True)
class BacklogPoint:
    """One audit row of a fleet, as the history replay reads it."""

    seconds: float  # since the first row
    backlog: int
    # Instances that could work through it in the slot that follows: busy if recorded,
    # else in service, else 0 (the row predates the reconciler, or the fleet has none).
    workers: int


def arrivals_from_backlog(points: Sequence[BacklogPoint], *, processing_mean: float) -> list[float]:
    """Upload times that reproduce a recorded backlog, slot by slot (an estimate).

    The first backlog arrives at 0 s. Between two rows, what arrived is the rise of the
    backlog plus what the recorded workers could finish in that time at the mean
    processing time (at most what was waiting): ``max(0, B1 - B0 + done)``, spread
    evenly over the interval. A fleet whose rows record no workers (SQS-measured, before
    the reconciler) gets the rises alone: a lower bound of its traffic.
    """
    if not points:
        return []
    arrivals = [0.0] * points[0].backlog
    for before, after in itertools.pairwise(points):
        span = after.seconds - before.seconds
        done = min(before.backlog, int(before.workers * span / processing_mean))
        new = max(0, after.backlog - before.backlog + done)
        arrivals += [before.seconds + span * (i + 1) / new for i in range(new)]
    return arrivals


def backlog_history(
    *, fleet: str, seconds: float, now: datetime | None = None
) -> list[BacklogPoint]:
    """The fleet's audit rows with a measured value in the last ``seconds``, oldest first."""
    from django.utils import timezone

    from scaling.selectors import publications_recent

    since = (now or timezone.now()) - timedelta(seconds=seconds)
    # At most one row a slot, the shortest slot being 10 s.
    found = publications_recent(since=since, limit=int(seconds // 10) + 10, fleet=fleet)
    rows = sorted((p for p in found if p.value is not None), key=lambda p: p.slot_start)
    if not rows:
        return []
    first = rows[0].slot_start
    return [
        BacklogPoint(
            seconds=(p.slot_start - first).total_seconds(),
            backlog=int(p.value or 0),
            workers=next(
                (w for w in (p.busy_instances, p.in_service_instances) if w is not None), 0
            ),
        )
        for p in rows
    ]


# --------------------------------------------------------------------------- from the flags


@dataclass(frozen=True)
class WorkloadFlags:
    """The command's workload flags, as given (``None``: not given)."""

    pattern: str | None
    workload_csv: str | None
    rate: float | None
    trough_rate: float
    count: int | None
    duration: float | None
    processing_mean: float | None
    processing_spread: float
    # --fleet: whose history to replay without a pattern, and whose processing time to
    # take without --processing-mean (scaling.fleets); None: the port's own history.
    fleet: str | None = None
    fleet_source: str = "port"
    fleet_processing_time: float | None = None
    weeks: int | None = None  # academy: N-1 weeks of history, then the measured week


def workload_from_flags(
    flags: WorkloadFlags, *, rng: random.Random
) -> tuple[Workload, ProcessingTimes]:
    """The workload the flags describe, and where its processing times came from."""
    if flags.fleet and not flags.pattern and not flags.workload_csv:
        processing = _processing(flags)  # first: a fleet's history needs the mean
        arrivals, description = _fleet_arrivals(flags, processing=processing)
    else:
        arrivals, description = _arrivals(flags, rng=rng)
        processing = _processing(flags)
    workload = workload_build(
        arrivals=arrivals, processing=processing, rng=rng, description=description
    )
    workload = academy_measure_from(workload, flags=flags)  # unchanged unless academy
    return workload, processing


def _processing(flags: WorkloadFlags) -> ProcessingTimes:
    mean = flags.processing_mean
    spread = flags.processing_spread
    if mean is not None:
        return ProcessingTimes(mean_seconds=mean, spread_seconds=spread)
    if spread:
        raise SimulationError("--processing-spread needs --processing-mean")
    if flags.fleet_processing_time is not None:  # the fleet's policy.processing_time
        return ProcessingTimes(mean_seconds=flags.fleet_processing_time)
    if flags.fleet_source != "port":
        raise SimulationError(
            f"fleet {flags.fleet}'s backlog is an SQS queue, which keeps no processing "
            "history: pass --processing-mean SECONDS (or set the fleet's policy.processing_time)"
        )
    history = processing_history_seconds()
    if history is None:
        raise SimulationError(
            "the backlog source (SCALING_BACKLOG_SOURCE) keeps no processing history: "
            "pass --processing-mean SECONDS"
        )
    if len(history) < HISTORY_MIN_VIDEOS:
        raise SimulationError(
            f"only {len(history)} READY videos in the last {HISTORY_DAYS} days "
            f"(need {HISTORY_MIN_VIDEOS}) to learn processing times: pass --processing-mean SECONDS"
        )
    return ProcessingTimes.from_samples(history)


def _fleet_arrivals(
    flags: WorkloadFlags, *, processing: ProcessingTimes
) -> tuple[list[float], str]:
    seconds = FLEET_HISTORY_SECONDS if flags.duration is None else flags.duration
    _duration_check(seconds)
    name = str(flags.fleet)
    points = backlog_history(fleet=name, seconds=seconds)
    arrivals = arrivals_from_backlog(points, processing_mean=processing.mean_seconds)
    if not arrivals:
        raise SimulationError(
            f"fleet {name} has no recorded backlog in the last {seconds:g} s to replay: "
            "give a workload (--pattern or --workload-csv) or a longer --duration"
        )
    description = (
        f"fleet {name}'s history: {len(points)} audit rows over the last {seconds:g} s "
        "(arrivals estimated from the backlog)"
    )
    return arrivals, description


def _arrivals(flags: WorkloadFlags, *, rng: random.Random) -> tuple[list[float], str]:
    pattern = flags.pattern
    csv_name = flags.workload_csv
    if pattern and csv_name:
        raise SimulationError("--pattern and --workload-csv are exclusive; choose one")
    if not pattern and not csv_name:
        raise SimulationError(
            f"give a workload: --pattern {'|'.join(PATTERNS)} or --workload-csv FILE"
        )
    duration = flags.duration
    if csv_name:
        path = Path(csv_name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SimulationError(
                f"cannot read --workload-csv {csv_name}: {exc.__class__.__name__}"
            ) from None
        arrivals, description = arrivals_parse(text.splitlines(), source=csv_name), csv_name
    elif pattern == "spike":
        count = flags.count
        if count is None:
            raise SimulationError("--pattern spike needs --count N")
        arrivals = arrivals_spike(count=count)
        description = f"spike of {count} videos at 60 s"
    elif pattern == "academy":
        arrivals, description = academy_arrivals(weeks=flags.weeks, rng=rng)
    else:
        rate = flags.rate
        if rate is None:
            raise SimulationError(f"--pattern {pattern} needs --rate PER_MINUTE")
        if pattern == "steady":
            duration = 3600.0 if duration is None else duration
            arrivals = arrivals_steady(rate_per_minute=rate, duration_seconds=duration)
            description = f"steady {rate:g}/min for {duration:g} s"
        else:
            duration = 86_400.0 if duration is None else duration
            trough = flags.trough_rate
            arrivals = arrivals_diurnal(
                peak_per_minute=rate,
                trough_per_minute=trough,
                duration_seconds=duration,
                rng=rng,
            )
            description = f"diurnal {trough:g}..{rate:g}/min for {duration:g} s"
    return arrivals, description
