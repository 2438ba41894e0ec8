"""Predictive scaling: its settings, the hourly load, the forecast and the capacity it asks.

Pure functions of plain numbers, so the simulator (``scaling.simulation.model``) and the
local control plane (``devstack.controlplane``, from what it reads back from moto) share
one implementation. AWS pages (Amazon EC2 Auto Scaling User Guide unless named):
"Predictive scaling for Amazon EC2 Auto Scaling", "How predictive scaling works",
"Advanced predictive scaling policy using custom metrics", and the API reference of
``PredictiveScalingConfiguration``. AWS does not publish its forecasting algorithm:
``forecast_day``'s seasonal mean is this project's assumption (docs/simulator.md,
"Warm pools and predictive scaling in the model").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# The class scaling.simulation.policy calls SimulationError (that module imports this one).
from scaling.policy.aim import AimError as SimulationError

HOUR_SECONDS = 3600
DAY_HOURS = 24
WEEK_HOURS = 7 * DAY_HOURS
# AWS: the forecast needs at least 24 hours of history and uses at most the last 14 days.
MIN_HISTORY_HOURS = DAY_HOURS
MAX_HISTORY_HOURS = 14 * DAY_HOURS
# The forecast looks 48 hours ahead and is refreshed every 6 hours (AWS: "How
# predictive scaling works"); the simulator refreshes it on that clock.
FORECAST_HORIZON_HOURS = 48
FORECAST_REFRESH_SECONDS = 6 * HOUR_SECONDS

MODES: tuple[str, ...] = ("forecast-only", "forecast-and-scale")
MAX_CAPACITY_BREACH: tuple[str, ...] = ("honor", "increase")  # HonorMaxCapacity | Increase...
MAX_SCHEDULING_BUFFER_SECONDS = 3600  # SchedulingBufferTime: 0..3600


@dataclass(frozen=True)
class PredictiveSpec:
    """``PredictiveScalingConfiguration``'s settings, in the command's words."""

    mode: str = "forecast-and-scale"
    scheduling_buffer_seconds: int = 300
    max_capacity_breach: str = "honor"
    max_capacity_buffer: int = 0  # percent of the forecast capacity (IncreaseMaxCapacity)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise SimulationError(
                f"--predictive must be one of {', '.join(MODES)}, got {self.mode!r}"
            )
        if not 0 <= self.scheduling_buffer_seconds <= MAX_SCHEDULING_BUFFER_SECONDS:
            raise SimulationError(
                f"--predictive-buffer must be between 0 and {MAX_SCHEDULING_BUFFER_SECONDS} "
                f"seconds, got {self.scheduling_buffer_seconds}"
            )
        if self.max_capacity_breach not in MAX_CAPACITY_BREACH:
            raise SimulationError(
                f"the max capacity breach behaviour must be one of "
                f"{', '.join(MAX_CAPACITY_BREACH)}, got {self.max_capacity_breach!r}"
            )
        if not 0 <= self.max_capacity_buffer <= 100:
            raise SimulationError(
                f"the max capacity buffer must be between 0 and 100 percent, "
                f"got {self.max_capacity_buffer}"
            )

    @property
    def scales(self) -> bool:
        return self.mode == "forecast-and-scale"

    @property
    def label(self) -> str:
        return "+predictive" if self.scales else "+forecast-only"


@dataclass(frozen=True)
class ForecastHour:
    """One hour of a forecast as a run used it."""

    seconds: float  # the hour's start, seconds from the run's start
    load: float  # forecast hourly load (mean backlog)
    capacity: int  # forecast_capacity of that load


def hourly_load(
    samples: Sequence[tuple[float, float]], *, start_seconds: float = 0.0
) -> list[float]:
    """Published backlog samples (seconds, value) -> one load per hour from ``start_seconds``.

    AWS sums a custom load metric's datapoints within each hour ("Advanced predictive
    scaling policy using custom metrics") and relates that sum to the scaling metric
    (the per-instance average) to find capacity. The backlog is published once a period,
    so that sum is (datapoints in the hour) x (mean backlog); the simulator keeps the
    mean, which gives the same capacity against a per-instance target and does not
    depend on the period. An hour without a sample has load 0.
    """
    sums: list[float] = []
    counts: list[int] = []
    for seconds, value in samples:
        hour = int((seconds - start_seconds) // HOUR_SECONDS)
        if hour < 0:
            raise SimulationError(f"a sample at {seconds:g} s is before {start_seconds:g} s")
        while len(sums) <= hour:
            sums.append(0.0)
            counts.append(0)
        sums[hour] += value
        counts[hour] += 1
    return [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def forecast_day(history: Sequence[float], hours: int = DAY_HOURS) -> list[float]:
    """The load of the ``hours`` hours that follow ``history`` (hourly loads, oldest first).

    Assumption (AWS does not publish its model): with a week or more of history, each
    hour's forecast is the mean of the same hour of the week over the held weeks; with
    less, the mean of the same hour of the day over the held days. Only the last 14 days
    count (AWS). Refuses less than 24 hours of history, as AWS does.
    """
    if len(history) < MIN_HISTORY_HOURS:
        raise SimulationError(
            f"a forecast needs at least {MIN_HISTORY_HOURS} hours of history, got {len(history)}"
        )
    if not 1 <= hours <= WEEK_HOURS:
        raise SimulationError(f"a forecast covers 1 to {WEEK_HOURS} hours, got {hours}")
    held = list(history[-MAX_HISTORY_HOURS:])
    n = len(held)
    season = WEEK_HOURS if n >= WEEK_HOURS else DAY_HOURS
    out: list[float] = []
    for ahead in range(hours):
        index = n + ahead
        # The same hour one season back, two back, ... while inside the history.
        same = [held[i] for i in range(index - season, -1, -season) if i < n]
        if not same:  # more than a season ahead of a short history: a day's step
            same = [held[i] for i in range(index - DAY_HOURS, -1, -DAY_HOURS) if i < n]
        out.append(sum(same) / len(same) if same else 0.0)
    return out


def forecast_capacity(
    load: float, *, target: float, min_size: int, max_size: int, spec: PredictiveSpec
) -> int:
    """The capacity predictive scaling schedules for an hour whose load is forecast.

    ``ceil(load / target)`` (the per-instance target the scaling metric tracks), at
    least ``min_size``; at most ``max_size`` with HonorMaxCapacity; with
    IncreaseMaxCapacity the forecast may exceed MaxSize up to the forecast plus
    ``max_capacity_buffer`` percent, so the forecast itself is kept ("Predictive scaling
    for Amazon EC2 Auto Scaling", PredictiveScalingConfiguration.MaxCapacityBreachBehavior).
    """
    if not (math.isfinite(target) and target > 0):
        raise SimulationError(f"the target must be above 0, got {target:g}")
    if not (math.isfinite(load) and load >= 0):
        raise SimulationError(f"the load must be 0 or more, got {load:g}")
    # Rounded first: 6.000000001 videos per 2 is 3 instances, not 4.
    capacity = max(min_size, math.ceil(round(load / target, 9)))
    if spec.max_capacity_breach == "honor":
        return min(capacity, max_size)
    return capacity
