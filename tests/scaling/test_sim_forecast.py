"""Predictive scaling in the simulator: the hourly load, the forecast, the capacity."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from scaling.simulation.academy import arrivals_academy
from scaling.simulation.forecast import (
    PredictiveSpec,
    forecast_capacity,
    forecast_day,
    hourly_load,
)
from scaling.simulation.model import Workload, simulate
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.workloads import ProcessingTimes, workload_build

DAY = [float(h % 7 + (10 if 10 <= h <= 18 else 0)) for h in range(24)]


def test_hourly_load_is_the_mean_of_each_hours_samples() -> None:
    samples = [(s, 2.0) for s in range(0, 3600, 10)]
    samples += [(3600 + s, 0.0 if s % 20 else 4.0) for s in range(0, 3600, 10)]
    samples += [(3 * 3600 + 5, 6.0)]  # hour 2 has no sample: load 0
    assert hourly_load(samples) == [2.0, 2.0, 0.0, 6.0]
    assert hourly_load([(7200.0, 3.0)], start_seconds=7200.0) == [3.0]


def test_a_workload_that_repeats_each_day_is_forecast_as_that_day() -> None:
    assert forecast_day(DAY * 3) == DAY
    assert forecast_day(DAY * 14, hours=48) == DAY * 2  # the weekly path, too


def test_the_same_hour_of_the_week_carries_the_weekend() -> None:
    quiet = [0.0] * 24
    week = DAY * 5 + quiet * 2
    # Two weeks held, the next day is a Monday: Monday's load, not a mean with Sunday.
    assert forecast_day(week * 2) == DAY
    assert forecast_day(week * 2 + DAY * 5) == quiet


def test_less_than_a_day_of_history_is_refused() -> None:
    with pytest.raises(SimulationError) as caught:
        forecast_day(DAY[:23])
    assert str(caught.value) == "a forecast needs at least 24 hours of history, got 23"


@pytest.mark.parametrize(
    ("load", "breach", "expected"),
    [
        (0.0, "honor", 1),
        (7.0, "honor", 3),
        (6.000000001, "honor", 2),
        (60.0, "honor", 10),
        (60.0, "increase", 20),
    ],
)
def test_forecast_capacity(load: float, breach: str, expected: int) -> None:
    spec = PredictiveSpec(max_capacity_breach=breach)
    assert forecast_capacity(load, target=3, min_size=1, max_size=10, spec=spec) == expected


def _academy(weeks: int) -> Workload:
    rng = random.Random(3)
    arrivals, measure_from = arrivals_academy(weeks=weeks, rng=rng)
    built = workload_build(
        arrivals=arrivals, processing=ProcessingTimes(mean_seconds=300), rng=rng, description="a"
    )
    return replace(built, measure_from=measure_from)


def _policy(predictive: PredictiveSpec | None) -> SimPolicy:
    return SimPolicy.build(mode="per-instance", target=3, boot_seconds=180, predictive=predictive)


def test_forecast_and_scale_raises_capacity_before_the_hour() -> None:
    workload = _academy(weeks=2)
    spec = PredictiveSpec(mode="forecast-and-scale", scheduling_buffer_seconds=300)
    result = simulate(workload=workload, policy=_policy(spec), period_seconds=60)
    desired = {t.seconds: t.desired for t in result.timeline}
    busy = [h for h in result.forecast if h.seconds >= workload.measure_from and h.capacity]
    assert len(busy) >= 20  # weekday class hours were forecast
    for hour in busy:
        assert desired[hour.seconds - 300] >= hour.capacity
    # Class ends (10:00 ... 18:00) are forecast busier than the night before them.
    by_start = {h.seconds % 86_400: h.capacity for h in busy}
    assert by_start.get(10 * 3600, 0) > by_start.get(3 * 3600, 0)


def test_forecast_only_records_the_forecast_and_changes_nothing() -> None:
    workload = _academy(weeks=2)
    alone = simulate(workload=workload, policy=_policy(None), period_seconds=60)
    only = simulate(
        workload=workload,
        policy=_policy(PredictiveSpec(mode="forecast-only")),
        period_seconds=60,
    )
    assert only.forecast
    assert not alone.forecast
    assert [t.desired for t in only.timeline] == [t.desired for t in alone.timeline]
    assert (only.instance_seconds, only.waits) == (alone.instance_seconds, alone.waits)


def test_no_forecast_before_a_day_of_history() -> None:
    short = Workload(arrivals=(60.0,) * 10, processing=(300.0,) * 10, description="spike")
    result = simulate(workload=short, policy=_policy(PredictiveSpec()), period_seconds=60)
    assert result.forecast == []
    assert result.policy.label == "per-instance 3 +predictive"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"mode": "always"},
            "--predictive must be one of forecast-only, forecast-and-scale, got 'always'",
        ),
        (
            {"scheduling_buffer_seconds": 3601},
            "--predictive-buffer must be between 0 and 3600 seconds, got 3601",
        ),
    ],
)
def test_bad_predictive_values_are_one_sentence(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationError) as caught:
        PredictiveSpec(**spec)  # type: ignore[arg-type]
    assert str(caught.value) == message
