"""The academy-like week: bursts after classes on weekdays, quiet weekends, one per seed."""

from __future__ import annotations

import json
import random
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scaling.simulation.academy import (
    BURST_SPREAD_SECONDS,
    CLASS_ENDS_UTC,
    DAY_SECONDS,
    WEEK_SECONDS,
    WEEKEND_UPLOADS,
    arrivals_academy,
)


def _day(arrivals: list[float], day: int) -> list[float]:
    return [a for a in arrivals if day * DAY_SECONDS <= a < (day + 1) * DAY_SECONDS]


def test_weekdays_burst_after_classes_and_weekends_are_quiet() -> None:
    arrivals, measure_from = arrivals_academy(weeks=3, rng=random.Random(0))
    assert measure_from == 2 * WEEK_SECONDS
    for day in range(21):
        uploads = _day(arrivals, day)
        if day % 7 >= 5:
            assert len(uploads) == WEEKEND_UPLOADS
            continue
        for hour in CLASS_ENDS_UTC:
            end = day * DAY_SECONDS + hour * 3600
            burst = [a for a in uploads if end <= a < end + BURST_SPREAD_SECONDS]
            assert len(burst) >= 10
        # Nothing before the first class ends but what the evening before left: none.
        assert min(uploads) >= day * DAY_SECONDS + CLASS_ENDS_UTC[0] * 3600


def test_one_seed_one_week_another_seed_another() -> None:
    first, _ = arrivals_academy(weeks=2, rng=random.Random(7))
    again, _ = arrivals_academy(weeks=2, rng=random.Random(7))
    other, _ = arrivals_academy(weeks=2, rng=random.Random(8))
    assert first == again
    assert first != other


@pytest.mark.django_db
def test_the_command_measures_the_last_week_only() -> None:
    out = StringIO()
    call_command(
        "simulate_scaling",
        "--pattern=academy",
        "--weeks=2",
        "--processing-mean=300",
        "--boot-time=180",
        "--period=60",
        "--warm-pool",
        "--json",
        stdout=out,
    )
    payload = json.loads(out.getvalue())
    assert payload["workload"]["measure_from_seconds"] == WEEK_SECONDS
    result = payload["result"]
    assert result["measured_from_seconds"] == WEEK_SECONDS
    arrivals, _ = arrivals_academy(weeks=2, rng=random.Random(0))
    assert result["videos"] == sum(1 for a in arrivals if a >= WEEK_SECONDS)
    assert result["warm_pool"]["state"] == "Stopped"
    assert result["pool_stopped_hours"] > 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--weeks=9",),
            "--weeks must be between 1 and 8 (N-1 weeks of history, then the measured week), got 9",
        ),
        (("--warm-pool-min-size=2",), "--warm-pool-min-size needs --warm-pool"),
        (
            ("--warm-pool", "--warm-pool-reuse=maybe"),
            "--warm-pool-reuse must be on or off, got 'maybe'",
        ),
        (("--predictive-buffer=60",), "--predictive-buffer needs --predictive MODE"),
        (
            ("--predictive=forecast-only", "--mode=total"),
            "--predictive forecasts capacity from a per-instance target: use --mode per-instance",
        ),
    ],
)
def test_bad_lever_flags_are_one_sentence(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError) as caught:
        call_command(
            "simulate_scaling",
            "--pattern=academy",
            "--processing-mean=300",
            *args,
            stdout=StringIO(),
        )
    assert str(caught.value) == message
