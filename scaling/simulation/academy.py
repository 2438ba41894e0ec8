"""The academy-like week: uploads after classes on weekdays, quiet weekends.

Shape (docs/simulator.md, "The academy-like week"): the run starts on a Monday at
00:00 UTC. On weekdays, classes end at 10:00, 12:00, 14:00, 16:00 and 18:00 UTC; each
end brings a burst of uploads spread over the next 15 minutes, most in the first few
(a triangular draw with its mode at 2 minutes). A burst's size is ``BURST_MEAN`` times
the weekday's factor times a seeded draw between 0.7 and 1.3. From 18:30 to 23:00 a
trickle (a Poisson stream of ``EVENING_PER_HOUR`` an hour); Saturdays and Sundays a
few uploads (``WEEKEND_UPLOADS`` a day, uniform between 09:00 and 21:00). With ``weeks``
N the first N-1 weeks are history (they feed the forecast) and the last one is
measured (``measure_from``). Every draw comes from the caller's ``random.Random``, so a
seed gives one workload.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from scaling.simulation.forecast import HOUR_SECONDS
from scaling.simulation.policy import SimulationError

if TYPE_CHECKING:
    from scaling.simulation.model import Workload

DEFAULT_WEEKS = 3
MAX_WEEKS = 8
DAY_SECONDS = 24 * HOUR_SECONDS
WEEK_SECONDS = 7 * DAY_SECONDS

CLASS_ENDS_UTC: tuple[int, ...] = (10, 12, 14, 16, 18)  # hours
BURST_MEAN = 40  # uploads after one class ends, before the day's factor and the draw
BURST_SPREAD_SECONDS = 15 * 60
BURST_MODE_SECONDS = 2 * 60
# Monday .. Friday: the timetable is fuller early in the week.
WEEKDAY_FACTORS: tuple[float, ...] = (1.0, 1.2, 1.1, 0.9, 0.6)
DRAW_LOW, DRAW_HIGH = 0.7, 1.3
EVENING_FROM_SECONDS = 18 * HOUR_SECONDS + 30 * 60
EVENING_TO_SECONDS = 23 * HOUR_SECONDS
EVENING_PER_HOUR = 6.0
WEEKEND_UPLOADS = 4
WEEKEND_FROM_SECONDS = 9 * HOUR_SECONDS
WEEKEND_TO_SECONDS = 21 * HOUR_SECONDS


def weeks_check(weeks: int) -> None:
    if not 1 <= weeks <= MAX_WEEKS:
        raise SimulationError(
            f"--weeks must be between 1 and {MAX_WEEKS} (N-1 weeks of history, then the "
            f"measured week), got {weeks}"
        )


def arrivals_academy(*, weeks: int, rng: random.Random) -> tuple[list[float], float]:
    """Upload times of ``weeks`` academy weeks, and where the measured (last) week starts."""
    weeks_check(weeks)
    arrivals: list[float] = []
    for day in range(7 * weeks):
        start = day * DAY_SECONDS
        weekday = day % 7
        if weekday >= 5:
            arrivals += [
                start + rng.uniform(WEEKEND_FROM_SECONDS, WEEKEND_TO_SECONDS)
                for _ in range(WEEKEND_UPLOADS)
            ]
            continue
        for hour in CLASS_ENDS_UTC:
            end = start + hour * HOUR_SECONDS
            size = round(BURST_MEAN * WEEKDAY_FACTORS[weekday] * rng.uniform(DRAW_LOW, DRAW_HIGH))
            arrivals += [
                end + rng.triangular(0, BURST_SPREAD_SECONDS, BURST_MODE_SECONDS)
                for _ in range(size)
            ]
        t = float(start + EVENING_FROM_SECONDS)
        while True:
            t += rng.expovariate(EVENING_PER_HOUR / HOUR_SECONDS)
            if t >= start + EVENING_TO_SECONDS:
                break
            arrivals.append(t)
    return sorted(arrivals), float((weeks - 1) * WEEK_SECONDS)


def academy_description(weeks: int) -> str:
    history = f"{weeks - 1} week(s) of history, then " if weeks > 1 else ""
    return (
        f"academy week: {history}the measured week (Monday 00:00 UTC on; bursts after "
        f"classes end at {', '.join(f'{h}:00' for h in CLASS_ENDS_UTC)} on weekdays, "
        "a trickle in the evening, quiet weekends)"
    )


def academy_arrivals(*, weeks: int | None, rng: random.Random) -> tuple[list[float], str]:
    """The workload module's hook: arrivals and description (``weeks`` None: the default)."""
    weeks = DEFAULT_WEEKS if weeks is None else weeks
    arrivals, _ = arrivals_academy(weeks=weeks, rng=rng)
    return arrivals, academy_description(weeks)


class _Flags(Protocol):
    """What academy_measure_from reads of ``workloads.WorkloadFlags`` (no import: a cycle)."""

    @property
    def pattern(self) -> str | None: ...
    @property
    def workload_csv(self) -> str | None: ...
    @property
    def weeks(self) -> int | None: ...


def academy_measure_from(workload: Workload, *, flags: _Flags) -> Workload:
    """An academy workload with its first N-1 weeks marked as history; others as they are."""
    if flags.pattern != "academy" or flags.workload_csv:
        return workload
    weeks = DEFAULT_WEEKS if flags.weeks is None else flags.weeks
    return replace(workload, measure_from=float((weeks - 1) * WEEK_SECONDS))
