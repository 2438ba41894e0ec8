from __future__ import annotations

import json
import random
from io import StringIO

from django.core.management import call_command

from scaling.simulation.advisor import Advice, advise
from scaling.simulation.forecast import PredictiveSpec
from scaling.simulation.model import Workload
from scaling.simulation.policy import SimPolicy
from scaling.simulation.pricing import Prices
from scaling.simulation.report import advice_command
from scaling.simulation.warm_pool import WarmPoolSpec
from scaling.simulation.workloads import ProcessingTimes, workload_build


def _bursts() -> Workload:
    """Ten 2-minute videos every two hours, six times: the group is back at 0 before
    each burst, so every burst waits for a boot."""
    arrivals = [burst * 7200.0 + i for burst in range(6) for i in range(10)]
    return workload_build(
        arrivals=arrivals,
        processing=ProcessingTimes(mean_seconds=120),
        rng=random.Random(0),
        description="bursts",
    )


def _advise(
    *,
    boot: int,
    wait: float = 600,
    periods: tuple[int, ...] = (60,),
    mode: str = "per-instance",
    prices: Prices | None = None,
) -> Advice:
    return advise(
        workload=_bursts(),
        policy_for=lambda t: SimPolicy.build(mode=mode, target=t, max_size=10, boot_seconds=boot),
        periods=periods,
        targets=[1, 2, 4],
        acceptable_wait=wait,
        prices=prices or Prices(),
        pool=WarmPoolSpec(warm_boot_seconds=30),
        predictive=PredictiveSpec(),
    )


def test_a_warm_pool_is_chosen_when_a_cold_boot_breaks_the_wait() -> None:
    # A 15-minute boot: no target meets 10 minutes from cold; the pool starts in 30 s.
    advice = _advise(boot=900)

    assert advice.choice is not None
    assert advice.choice.lever == "warm pool"
    assert advice.choice.result.p95_wait <= 600
    cold = [c for c in advice.candidates if c.lever == "none"]
    assert cold
    assert all(c.result.p95_wait > 600 for c in cold)
    assert advice.reasons[0].startswith("warm pool: pays: without it no target tried meets")
    assert [c.lever for c in advice.comparison] == ["none", "warm pool"]


def test_a_warm_pool_is_left_out_when_it_saves_nothing() -> None:
    # A 30-second boot is the pool's own start: the pool only adds its volumes.
    advice = _advise(boot=30)

    assert advice.choice is not None
    assert advice.choice.lever == "none"
    pooled = next(c for c in advice.comparison if c.lever == "warm pool")
    assert pooled.bill.total > advice.choice.bill.total
    assert pooled.result.p95_wait == advice.choice.result.p95_wait
    assert advice.reasons[0].startswith(
        "warm pool: does not pay: it leaves instance-hours as they are and leaves p95 as it is"
    )


def test_a_pool_that_pays_in_waits_is_dropped_when_its_volumes_cost_more() -> None:
    # Same bursts, a 15-minute boot and a wait loose enough for a cold start: the pool
    # still saves instance-hours; priced volumes a thousand times dearer, it does not pay.
    cheap = _advise(boot=900, wait=3600)
    dear = _advise(boot=900, wait=3600, prices=Prices(volume_gb_month=80.0))

    assert cheap.choice is not None
    assert cheap.choice.lever == "warm pool"
    assert dear.choice is not None
    assert dear.choice.lever == "none"


def test_predictive_is_left_out_without_a_day_of_history() -> None:
    advice = _advise(boot=30)

    assert advice.levers == ("none", "warm pool")
    assert advice.notes == [
        "Predictive scaling was left out: the workload has 0.0 h of history before its "
        "measured part and AWS forecasts only from 24 h (try --pattern academy --weeks 2 "
        "or more)."
    ]


def test_faster_intervals_try_only_each_levers_best_target_and_its_neighbours() -> None:
    advice = _advise(boot=30, periods=(10, 60))

    at_10 = sorted((c.lever, c.target) for c in advice.candidates if c.period == 10)
    at_60 = [c for c in advice.candidates if c.period == 60]
    assert len(at_60) == 6  # every target, each lever
    best_60 = {
        lever: min(
            (c for c in at_60 if c.lever == lever),
            key=lambda c: (c.result.instance_seconds, c.result.p95_wait),
        ).target
        for lever in ("none", "warm pool")
    }
    assert best_60 == {"none": 4, "warm pool": 4}
    assert at_10 == [("none", 2), ("none", 4), ("warm pool", 2), ("warm pool", 4)]
    # One sentence on the interval not chosen: its CloudWatch against its instance-hours.
    assert sum(r.startswith("interval ") for r in advice.reasons) == 1


def test_the_command_of_a_pooled_choice_carries_the_interval_and_the_pool() -> None:
    advice = _advise(boot=900)
    assert advice.choice is not None

    line = advice_command(advice.choice.result, asg_name="g")

    assert line.startswith("SCALING_PUBLISH_INTERVAL_SECONDS=60 python manage.py ")
    assert "--warm-pool" in line.split()
    assert "--warm-pool-state Stopped" in line


def test_the_json_carries_every_bill_and_the_choice() -> None:
    out = StringIO()
    call_command(
        "simulate_scaling",
        "--pattern=spike",
        "--count=20",
        "--processing-mean=300",
        "--recommend",
        "--acceptable-wait=900",
        "--json",
        stdout=out,
    )
    payload = json.loads(out.getvalue())

    candidates = payload["candidates"]
    assert {c["period_seconds"] for c in candidates} == {10, 30, 60}
    assert all(set(c["bill"]) >= {"instance", "volumes", "pool", "total"} for c in candidates)
    assert all(c["lever"] in ("none", "warm pool") for c in candidates)
    chosen = payload["recommended"]
    assert chosen["bill"]["total"] == min(
        c["bill"]["total"] for c in candidates if c["p95_wait_seconds"] <= 900 and c["drained"]
    )
    advisor = payload["advisor"]
    assert advisor["levers"] == ["none", "warm pool"]
    assert advisor["reasons"][0].startswith("warm pool: ")
    assert advisor["prices"]["instance_hour"] == 0.34
    assert "2026-12-04" in advisor["prices"]["source"]
    assert advisor["seconds"] >= 0
    assert payload["command"].startswith(
        f"SCALING_PUBLISH_INTERVAL_SECONDS={chosen['period_seconds']} python manage.py"
    )
