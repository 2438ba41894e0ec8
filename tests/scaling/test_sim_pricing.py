from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from scaling.simulation.forecast import PredictiveSpec
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.pricing import Prices, bill, cloudwatch_use
from scaling.simulation.result import SimResult
from scaling.simulation.warm_pool import WarmPoolSpec

HOUR = 3600.0
MONTH = 730.0


def _result(
    *,
    period: int = 60,
    instance_seconds: float = 2 * HOUR,
    window: float = HOUR,
    mode: str = "per-instance",
    min_size: int = 0,
    pool: WarmPoolSpec | None = None,
    predictive: PredictiveSpec | None = None,
    stopped: float = 0.0,
    running: float = 0.0,
) -> SimResult:
    policy = SimPolicy.build(mode=mode, target=3, min_size=min_size, max_size=10)
    policy = replace(policy, warm_pool=pool, predictive=predictive)
    return SimResult(
        policy=policy,
        period_seconds=period,
        waits=[0.0],
        peak_instances=2,
        instance_seconds=instance_seconds,
        scaling_actions=1,
        drained=True,
        simulated_seconds=window,
        timeline=[],
        pool_stopped_seconds=stopped,
        pool_running_seconds=running,
    )


def test_the_bill_of_a_run_worked_by_hand() -> None:
    # Two instance-hours in a one-hour window at 60 s, per-instance, default prices.
    got = bill(_result(), prices=Prices())

    assert got.window_seconds == HOUR
    assert got.instance == pytest.approx(2 * 0.34)
    assert got.volumes == pytest.approx(2 * 30 * 0.08 / MONTH)
    assert got.pool == 0
    # BacklogCount, OldestBacklogAgeSeconds, RecoveredVideos, BusyInstances,
    # ProtectedInstances.
    assert got.metrics == pytest.approx(5 * 0.30 / MONTH)
    # Standard alarms: wake 2 metrics, publisher-silent 1, wait-too-long 1, starved 3,
    # cannot-wake 2, work-lost 1, target tracking's two alarms 2 each (m1 and m2).
    assert got.use.alarms == 8
    assert (got.use.alarm_metrics, got.use.alarm_metrics_high_resolution) == (14, 0)
    assert got.alarms == pytest.approx(14 * 0.10 / MONTH)
    assert got.api == pytest.approx(60 / 1000 * 0.01)  # one PutMetricData a minute
    assert got.dashboard == pytest.approx(3 / MONTH)
    parts = (got.instance, got.volumes, got.metrics, got.alarms, got.api, got.dashboard)
    assert got.total == pytest.approx(sum(parts))
    assert got.as_json()["total"] == round(got.total, 6)


def test_total_mode_alarms_read_one_metric() -> None:
    use = cloudwatch_use(period_seconds=60, mode="total", target=3, warmup=60)

    assert (use.alarm_metrics, use.alarm_metrics_high_resolution) == (12, 0)


def test_ten_seconds_costs_more_cloudwatch_by_high_resolution_alarms_and_api() -> None:
    at_60 = bill(_result(period=60), prices=Prices())
    at_10 = bill(_result(period=10), prices=Prices())

    # publisher-silent (period = the interval) and target tracking's two alarms (m1, m2
    # each) go high-resolution: 5 alarm metrics at $0.30 instead of $0.10.
    assert (at_10.use.alarm_metrics, at_10.use.alarm_metrics_high_resolution) == (9, 5)
    assert at_10.alarms - at_60.alarms == pytest.approx(5 * (0.30 - 0.10) / MONTH)
    assert at_10.api - at_60.api == pytest.approx((360 - 60) / 1000 * 0.01)
    assert at_10.metrics == at_60.metrics  # a custom metric costs the same at any resolution
    assert at_10.cloudwatch > at_60.cloudwatch
    assert at_10.instance == at_60.instance


def test_a_stopped_pool_pays_volumes_a_running_pool_the_instance() -> None:
    volume_hour = 30 * 0.08 / MONTH
    alone = bill(_result(), prices=Prices())
    stopped = bill(_result(pool=WarmPoolSpec(state="Stopped"), stopped=3 * HOUR), prices=Prices())
    running = bill(_result(pool=WarmPoolSpec(state="Running"), running=3 * HOUR), prices=Prices())

    assert stopped.volumes - alone.volumes == pytest.approx(3 * volume_hour)
    assert stopped.pool == 0
    assert running.pool == pytest.approx(3 * 0.34)
    assert running.volumes - alone.volumes == pytest.approx(3 * volume_hour)
    assert stopped.cloudwatch == alone.cloudwatch  # group metrics are free


def test_predictive_scaling_adds_no_cloudwatch_charge() -> None:
    alone = bill(_result(), prices=Prices())
    predictive = bill(_result(predictive=PredictiveSpec()), prices=Prices())

    assert predictive.cloudwatch == alone.cloudwatch
    assert predictive.total == alone.total


def test_a_common_window_keeps_min_size_running_after_the_run() -> None:
    alone = bill(_result(min_size=1, instance_seconds=HOUR), prices=Prices())
    longer = bill(
        _result(min_size=1, instance_seconds=HOUR), prices=Prices(), window_seconds=2 * HOUR
    )

    assert longer.window_seconds == 2 * HOUR
    assert longer.instance == pytest.approx(2 * alone.instance)
    assert longer.api == pytest.approx(2 * alone.api)


def test_prices_from_options_and_a_changed_price_changes_the_bill() -> None:
    prices = Prices.from_options({"instance_price": 1.0, "volume_gb": 100.0, "api_price": None})

    assert prices == Prices(instance_hour=1.0, volume_gb=100.0)
    got = bill(_result(), prices=prices)
    assert got.instance == pytest.approx(2.0)
    assert got.volumes == pytest.approx(2 * 100 * 0.08 / MONTH)


def test_a_negative_price_in_code_is_refused() -> None:
    with pytest.raises(SimulationError, match=r"^--alarm-price must be a number 0 or more"):
        Prices(alarm_metric_month=-0.1)


def _command(*args: str) -> str:
    out = StringIO()
    call_command("simulate_scaling", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


SPIKE = (
    "--pattern=spike",
    "--count=20",
    "--processing-mean=300",
    "--recommend",
    "--acceptable-wait=900",
    "--period=60",
    "--json",
)


def test_the_price_flags_reach_the_bill() -> None:
    default = json.loads(_command(*SPIKE))["recommended"]
    dearer = json.loads(_command(*SPIKE, "--instance-price=0.68", "--dashboard-price=0"))[
        "recommended"
    ]

    hours = default["instance_hours"]
    assert default["bill"]["instance"] == pytest.approx(hours * 0.34, abs=1e-4)
    assert dearer["bill"]["instance"] == pytest.approx(hours * 0.68, abs=1e-4)
    assert dearer["bill"]["dashboard"] == 0


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        (
            "--instance-price=-1",
            "Error: argument --instance-price: give a number 0 or more (dollars; GB for "
            "--volume-gb), got '-1'",
        ),
        (
            "--alarm-price-high-resolution=x",
            "Error: argument --alarm-price-high-resolution: give a number 0 or more "
            "(dollars; GB for --volume-gb), got 'x'",
        ),
        (
            "--volume-gb=nan",
            "Error: argument --volume-gb: give a number 0 or more (dollars; GB for "
            "--volume-gb), got 'nan'",
        ),
    ],
)
def test_a_bad_price_is_one_sentence(flag: str, message: str) -> None:
    with pytest.raises(CommandError) as caught:
        _command(*SPIKE, flag)

    assert str(caught.value) == message
