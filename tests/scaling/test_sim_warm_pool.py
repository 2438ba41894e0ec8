"""The warm pool in the simulator: AWS's size rule, the boot it saves, its cost, reuse."""

from __future__ import annotations

import pytest

from scaling.simulation.model import Workload, simulate
from scaling.simulation.policy import SimPolicy, SimulationError
from scaling.simulation.result import SimResult
from scaling.simulation.warm_pool import WarmPoolSpec, pool_draw, pool_target, scale_in_returns


def _policy(*, pool: WarmPoolSpec | None, max_size: int = 10, boot: int = 180) -> SimPolicy:
    return SimPolicy.build(
        mode="per-instance", target=3, max_size=max_size, boot_seconds=boot, warm_pool=pool
    )


def _workload(arrivals: list[float], processing: float) -> Workload:
    return Workload(
        arrivals=tuple(arrivals), processing=(processing,) * len(arrivals), description="t"
    )


@pytest.mark.parametrize(
    ("desired", "max_size", "min_size", "max_prepared", "expected"),
    [
        (0, 10, 0, None, 10),  # MaxSize - desired
        (4, 10, 0, None, 6),
        (10, 10, 0, None, 0),
        (10, 10, 2, None, 2),  # never below the pool's MinSize
        (2, 10, 0, 5, 3),  # MaxGroupPreparedCapacity - desired
        (7, 10, 0, 5, 0),  # desired above the prepared capacity: empty...
        (7, 10, 1, 5, 1),  # ...unless MinSize says otherwise
    ],
)
def test_pool_target_follows_put_warm_pool(
    desired: int, max_size: int, min_size: int, max_prepared: int | None, expected: int
) -> None:
    spec = WarmPoolSpec(min_size=min_size, max_prepared=max_prepared)
    assert pool_target(desired, max_size=max_size, spec=spec) == expected


def test_pool_draw_and_scale_in_rules() -> None:
    assert pool_draw(5, pool_ready=3) == (3, 2)
    assert pool_draw(2, pool_ready=3) == (2, 0)
    spec = WarmPoolSpec()
    assert scale_in_returns(pool_size=5, desired=4, max_size=10, spec=spec)
    assert not scale_in_returns(pool_size=6, desired=4, max_size=10, spec=spec)
    no_reuse = WarmPoolSpec(reuse_on_scale_in=False)
    assert not scale_in_returns(pool_size=0, desired=4, max_size=10, spec=no_reuse)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"min_size": -1}, "--warm-pool-min-size must be 0 or more, got -1"),
        ({"max_prepared": -2}, "--warm-pool-max-prepared must be 0 or more, got -2"),
        (
            {"state": "Warm"},
            "--warm-pool-state must be one of Stopped, Running, Hibernated, got 'Warm'",
        ),
        ({"warm_boot_seconds": -5}, "--warm-boot-time must be 0 or more seconds, got -5"),
    ],
)
def test_bad_pool_values_are_one_sentence(spec: dict[str, object], message: str) -> None:
    with pytest.raises(SimulationError) as caught:
        WarmPoolSpec(**spec)  # type: ignore[arg-type]
    assert str(caught.value) == message


@pytest.mark.parametrize("period", [10, 60])
def test_a_burst_starts_within_warm_boot_and_a_period_of_the_scale_out(period: int) -> None:
    workload = _workload([60.0] * 30, processing=300)
    warm = simulate(workload=workload, policy=_policy(pool=WarmPoolSpec()), period_seconds=period)
    cold = simulate(workload=workload, policy=_policy(pool=None), period_seconds=period)

    def scale_out(result: SimResult) -> float:
        return next(t.seconds for t in result.timeline if t.desired > 0)

    first_warm = 60 + min(warm.waits)
    first_cold = 60 + min(cold.waits)
    assert first_warm <= scale_out(warm) + 30 + period
    assert first_cold >= scale_out(cold) + 180
    assert warm.p95_wait < cold.p95_wait


def test_stopped_pool_seconds_are_counted_exactly() -> None:
    # MaxSize 2: the pool holds 2 at rest. One video at 60 s wakes the group (one
    # instance from the pool, in service at 90 s, done at 150 s); the scale-in alarm
    # counts from 120 s and scales in at 960 s, when the instance returns to the pool.
    result = simulate(
        workload=_workload([60.0], processing=60),
        policy=_policy(pool=WarmPoolSpec(), max_size=2),
        period_seconds=60,
    )
    assert (result.drained, result.simulated_seconds) == (True, 960.0)
    assert min(result.waits) == 30.0  # the warm boot, not the 180 s cold one
    assert result.pool_stopped_seconds == 60.0 + 960.0
    assert result.pool_running_seconds == 0.0
    assert result.instance_seconds == 900.0

    running = simulate(
        workload=_workload([60.0], processing=60),
        policy=_policy(pool=WarmPoolSpec(state="Running"), max_size=2),
        period_seconds=60,
    )
    assert (running.pool_stopped_seconds, running.pool_running_seconds) == (0.0, 1020.0)


def test_reuse_returns_instances_and_without_it_the_pool_relaunches() -> None:
    # A second video long after the first scale-in keeps the run going past it.
    workload = _workload([60.0, 3000.0], processing=60)
    reuse = simulate(
        workload=workload, policy=_policy(pool=WarmPoolSpec(), max_size=2), period_seconds=60
    )
    fresh = simulate(
        workload=workload,
        policy=_policy(pool=WarmPoolSpec(reuse_on_scale_in=False), max_size=2),
        period_seconds=60,
    )
    # Reused: nothing is ever launched into the pool, so it never runs an instance.
    assert reuse.pool_running_seconds == 0.0
    # Terminated: each scale-in is followed by a launch into the pool, which runs for
    # the 180 s boot before it stops (the last one is cut by the end of the run).
    assert fresh.pool_running_seconds == 180.0
    assert min(reuse.waits) == min(fresh.waits) == 30.0
