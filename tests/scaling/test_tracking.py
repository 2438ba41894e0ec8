"""Target tracking's rules (scaling.simulation.tracking), case by case, worked by hand.

The simulator and `make run`'s local control plane both apply these rules; the
simulator's numbers are pinned in test_simulator.py, the control plane's use of
them in tests/devstack/test_controlplane.py.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scaling.policy.aim import AimError
from scaling.simulation.tracking import Decision, Observation, TargetTracking, TrackingRules


def seen(
    backlog: int | None,
    *,
    in_service: int,
    warm: int | None = None,
    live: int | None = None,
    desired: int | None = None,
) -> Observation:
    """A steady group by default: every live instance in service and warm, desired = live."""
    live = in_service if live is None else live
    return Observation(
        backlog=backlog,
        in_service=in_service,
        warm=in_service if warm is None else warm,
        live=live,
        desired=live if desired is None else desired,
    )


def steps(tracking: TargetTracking, observations: Iterable[Observation]) -> list[Decision]:
    return [tracking.step(o) for o in observations]


def tracker(target: float = 3, mode: str = "per-instance", **rules: Any) -> TargetTracking:
    return TargetTracking(TrackingRules(mode=mode, target=target, **rules))


# --- wake from zero -------------------------------------------------------------------


def test_backlog_at_zero_wakes_the_group_after_the_wake_datapoints() -> None:
    decisions = steps(tracker(wake_datapoints=2), [seen(5, in_service=0)] * 2)
    assert decisions == [Decision(0, None, ""), Decision(1, None, "wake")]


def test_the_wake_count_restarts_when_the_backlog_empties() -> None:
    observations = [seen(5, in_service=0), seen(0, in_service=0), seen(5, in_service=0)]
    assert [d.desired for d in steps(tracker(wake_datapoints=2), observations)] == [0, 0, 0]


def test_wake_acts_only_at_desired_zero() -> None:
    # One instance already launched and still booting: nothing in service, but desired 1.
    booting = seen(5, in_service=0, live=1, desired=1)
    assert [d.desired for d in steps(tracker(), [booting] * 5)] == [1] * 5


def test_without_backlog_nothing_wakes() -> None:
    assert [d.desired for d in steps(tracker(), [seen(0, in_service=0)] * 5)] == [0] * 5


# --- scale-out ------------------------------------------------------------------------


def test_scale_out_after_three_datapoints_above_the_target() -> None:
    # 2 warm instances, 12 videos: 6 per instance against 3 -> ceil(2 x 6 / 3) = 4.
    decisions = steps(tracker(), [seen(12, in_service=2)] * 3)
    assert decisions == [Decision(2, 6.0, ""), Decision(2, 6.0, ""), Decision(4, 6.0, "scale-out")]


def test_a_datapoint_at_or_below_the_target_restarts_the_scale_out_count() -> None:
    observations = (
        [seen(12, in_service=2)] * 2 + [seen(6, in_service=2)] + [seen(12, in_service=2)] * 2
    )
    assert [d.desired for d in steps(tracker(), observations)] == [2] * 5


def test_scale_out_waits_for_a_warm_instance() -> None:
    cold = seen(12, in_service=2, warm=0)
    t = tracker()
    assert [d.desired for d in steps(t, [cold] * 4)] == [2] * 4
    # The count went on: the first warm datapoint acts, on warm capacity only:
    # ceil(1 warm x 12 / 2 in service / 3) = 2, not above desired 2.
    assert t.step(seen(12, in_service=2, warm=1)) == Decision(2, 6.0, "")
    assert t.step(seen(30, in_service=2, warm=1)) == Decision(5, 15.0, "scale-out")


def test_instances_still_warming_count_in_the_desired_capacity_not_the_aim() -> None:
    # desired 3: one instance boots, one warms up, one is warm; 30 videos, 15 per
    # in-service instance: ceil(1 x 15 / 3) = 5.
    decisions = steps(tracker(), [seen(30, in_service=2, warm=1, live=3)] * 3)
    assert decisions[-1] == Decision(5, 15.0, "scale-out")


def test_scale_out_never_lowers_the_desired_capacity() -> None:
    # 4 in service, only 1 warm: ceil(1 x 4 / 3) = 2 < 4, nothing done.
    decisions = steps(tracker(), [seen(16, in_service=4, warm=1)] * 5)
    assert {(d.desired, d.reason) for d in decisions} == {(4, "")}


def test_scale_out_stays_within_the_maximum() -> None:
    assert steps(tracker(max_size=6), [seen(300, in_service=2)] * 3)[-1].desired == 6


# --- scale-in -------------------------------------------------------------------------


def test_scale_in_after_fifteen_datapoints_below_ninety_percent_of_the_target() -> None:
    # 4 instances, 4 videos: 1 per instance < 2.7 -> ceil(4 x 1 / 3) = 2.
    decisions = steps(tracker(), [seen(4, in_service=4)] * 15)
    assert [d.desired for d in decisions] == [4] * 14 + [2]
    assert decisions[-1] == Decision(2, 1.0, "scale-in")


def test_a_datapoint_between_ninety_percent_and_the_target_restarts_the_scale_in_count() -> None:
    # Target 10: 9 per instance is not below 0.9 x 10 = 9.
    observations = (
        [seen(4, in_service=4)] * 14 + [seen(36, in_service=4)] + [seen(4, in_service=4)] * 14
    )
    assert {d.desired for d in steps(tracker(10), observations)} == {4}


def test_scale_in_waits_until_nothing_warms_up_or_boots() -> None:
    t = tracker()
    warming = steps(t, [seen(4, in_service=4, warm=3)] * 20)
    booting = steps(t, [seen(4, in_service=4, live=5, desired=5)] * 3)
    assert {d.desired for d in warming} == {4}
    assert {d.desired for d in booting} == {5}
    # Every instance warm: the count (23 by now) acts at once.
    assert t.step(seen(4, in_service=4)) == Decision(2, 1.0, "scale-in")


def test_scale_in_never_raises_the_desired_capacity() -> None:
    # A protected instance outlived an earlier scale-in to 1: ceil(4 x 1 / 3) = 2 > 1.
    decisions = steps(tracker(), [seen(4, in_service=4, desired=1)] * 20)
    assert {(d.desired, d.reason) for d in decisions} == {(1, "")}


def test_scale_in_stays_within_the_minimum() -> None:
    assert steps(tracker(min_size=2), [seen(0, in_service=4)] * 15)[-1].desired == 2


def test_scale_in_disabled_never_scales_in() -> None:
    decisions = steps(tracker(scale_in=False), [seen(0, in_service=4)] * 30)
    assert {d.desired for d in decisions} == {4}


# --- missing data, no divisor, total ----------------------------------------------------


def test_a_missing_datapoint_does_nothing_and_keeps_every_count() -> None:
    t = tracker(wake_datapoints=2)
    assert steps(t, [seen(12, in_service=2)] * 2) == [Decision(2, 6.0, "")] * 2
    assert t.step(seen(None, in_service=2)) == Decision(2, None, "")
    assert t.step(seen(12, in_service=2)) == Decision(4, 6.0, "scale-out")  # third datapoint

    t = tracker(wake_datapoints=2)
    woken = steps(t, [seen(5, in_service=0), seen(None, in_service=0), seen(5, in_service=0)])
    assert [d.reason for d in woken] == ["", "", "wake"]


def test_a_missing_datapoint_does_nothing_even_when_an_alarm_is_due() -> None:
    t = tracker()
    steps(t, [seen(0, in_service=4)] * 15)  # scaled in to 0 on paper; the group still says 4
    assert t.step(seen(None, in_service=4)) == Decision(4, None, "")


def test_per_instance_metric_has_no_value_with_nothing_in_service() -> None:
    # desired 1, its instance still booting: no divisor, no metric, no count.
    t = tracker()
    booting = steps(t, [seen(30, in_service=0, live=1, desired=1)] * 3)
    assert booting == [Decision(1, None, "")] * 3
    # In service (and warm) now: the scale-out count starts from zero here.
    up = steps(t, [seen(30, in_service=1)] * 3)
    assert [d.desired for d in up] == [1, 1, 10]
    assert up[0].metric == 30.0


def test_total_mode_tracks_the_raw_backlog() -> None:
    # Target 4 videos in all; 2 warm instances, 20 videos -> ceil(2 x 20 / 4) = 10.
    decisions = steps(tracker(4, mode="total"), [seen(20, in_service=2)] * 3)
    assert decisions[-1] == Decision(10, 20.0, "scale-out")
    # 1 warm of 2: ceil(1 x 10 / 4) = 3.
    assert steps(tracker(4, mode="total"), [seen(10, in_service=2, warm=1)] * 3)[-1].desired == 3
    # 5 instances, 2 videos: 2 < 3.6 for 15 datapoints -> ceil(5 x 2 / 4) = 3.
    assert steps(tracker(4, mode="total"), [seen(2, in_service=5)] * 15)[-1].desired == 3


def test_total_mode_has_a_metric_with_nothing_in_service_and_still_wakes() -> None:
    decisions = steps(tracker(4, mode="total"), [seen(6, in_service=0)])
    assert decisions == [Decision(1, 6.0, "wake")]


@pytest.mark.parametrize(
    "rules",
    [
        {"mode": "average", "target": 3},
        {"mode": "total", "target": 0},
        {"mode": "total", "target": math.inf},
        {"mode": "total", "target": 3, "min_size": 3, "max_size": 2},
        {"mode": "total", "target": 3, "min_size": -1},
    ],
)
def test_rules_it_cannot_apply_are_refused(rules: dict[str, object]) -> None:
    with pytest.raises(AimError):
        TrackingRules(**rules)  # type: ignore[arg-type]


# --- properties -----------------------------------------------------------------------


def reference_aim(rules: TrackingRules, o: Observation) -> int:
    divisor = Fraction(rules.target) * (1 if rules.mode == "total" else o.in_service)
    value = math.ceil(Fraction(o.warm * (o.backlog or 0)) / divisor)
    return max(rules.min_size, min(rules.max_size, value))


def reference(rules: TrackingRules, observations: list[Observation]) -> list[int]:
    """The simulator's inline rules before they moved to tracking.py (git history), with
    one change since: the scale-in threshold is 0.9 x target as AWS stores it (rounded)."""
    high = low = wake = 0
    out = []
    for o in observations:
        assert o.backlog is not None
        if rules.mode == "total":
            metric: float | None = float(o.backlog)
        else:
            metric = o.backlog / o.in_service if o.in_service else None
        high = high + 1 if metric is not None and metric > rules.target else 0
        threshold = round(rules.scale_in_ratio * rules.target, 9)
        low = low + 1 if metric is not None and metric < threshold else 0
        wake = wake + 1 if o.backlog > 0 and o.in_service == 0 else 0

        wanted = o.desired
        if wake >= rules.wake_datapoints and o.desired == 0:
            wanted = max(rules.min_size, min(rules.max_size, 1))
        elif high >= rules.scale_out_datapoints and o.warm > 0:
            wanted = max(o.desired, reference_aim(rules, o))
        elif low >= rules.scale_in_datapoints and o.warm == o.live:
            wanted = min(o.desired, reference_aim(rules, o))
        out.append(wanted)
    return out


@st.composite
def observation(draw: st.DrawFn, *, missing: bool) -> Observation:
    live = draw(st.integers(0, 10))
    in_service = draw(st.integers(0, live))
    backlog = draw(st.one_of(st.none(), st.integers(0, 60)) if missing else st.integers(0, 60))
    return Observation(
        backlog=backlog,
        in_service=in_service,
        warm=draw(st.integers(0, in_service)),
        live=live,
        desired=draw(st.integers(0, 10)),
    )


RULES = st.builds(
    TrackingRules,
    mode=st.sampled_from(["per-instance", "total"]),
    target=st.sampled_from([0.5, 1, 2.5, 3, 4, 10]),
    max_size=st.just(10),
    wake_datapoints=st.integers(1, 3),
    scale_in_datapoints=st.integers(1, 15),
)


@settings(max_examples=300, deadline=None)
@given(rules=RULES, observations=st.lists(observation(missing=False), max_size=40))
def test_the_rules_match_the_simulators_former_inline_copy(
    rules: TrackingRules, observations: list[Observation]
) -> None:
    decided = steps(TargetTracking(rules), observations)
    assert [d.desired for d in decided] == reference(rules, observations)
    for o, d in zip(observations, decided, strict=True):
        assert 0 <= d.desired <= 10
        assert d.reason in {"", "wake", "scale-out", "scale-in"}
        assert (d.desired != o.desired) == bool(d.reason)
        assert d.reason != "scale-out" or d.desired > o.desired
        assert d.reason != "scale-in" or d.desired < o.desired


@settings(max_examples=300, deadline=None)
@given(rules=RULES, observations=st.lists(observation(missing=True), max_size=40))
def test_a_missing_datapoint_is_as_if_the_period_never_was(
    rules: TrackingRules, observations: list[Observation]
) -> None:
    decided = steps(TargetTracking(rules), observations)
    present = [o for o in observations if o.backlog is not None]
    without = steps(TargetTracking(rules), present)
    assert [
        d for o, d in zip(observations, decided, strict=True) if o.backlog is not None
    ] == without
    for o, d in zip(observations, decided, strict=True):
        if o.backlog is None:
            assert d == Decision(o.desired, None, "")


def test_the_scale_in_threshold_is_the_one_aws_stores_not_a_float_above_it() -> None:
    """0.9 x 3 is 2.7000000000000002 in floats; 27 videos on 10 instances (2.7) is not below
    AWS's threshold 2.7, so fifteen such datapoints scale nothing in."""
    tracking = TargetTracking(TrackingRules(mode="per-instance", target=3))
    seen = Observation(backlog=27, in_service=10, warm=10, live=10, desired=10)
    decisions = [tracking.step(seen) for _ in range(20)]
    assert {d.desired for d in decisions} == {10}
    assert tracking.low == 0
