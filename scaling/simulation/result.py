"""What a simulated run produced: the timeline, the waits, the cost and the rework."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scaling.simulation.forecast import ForecastHour
from scaling.simulation.policy import SimPolicy


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of already sorted values; 0 for none."""
    if not values:
        return 0.0
    rank = max(1, math.ceil(q / 100 * len(values)))
    return float(values[rank - 1])


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
    # Processing lost when a busy instance was terminated (its video started over).
    rework_seconds: float = 0.0
    restarted: int = 0
    # Warm pool instance-seconds in the measured window: a Stopped or Hibernated pool
    # pays only its volumes; a Running pool (and every instance while it initialises
    # before joining the pool) pays the instance.
    pool_stopped_seconds: float = 0.0
    pool_running_seconds: float = 0.0
    # Waits, instance-seconds, peak and actions cover [measured_from_seconds, end]: a
    # workload may carry history (Workload.measure_from) that feeds the forecast.
    measured_from_seconds: float = 0.0
    # The forecast hours the run scheduled (or, forecast-only, would have), in order.
    forecast: list[ForecastHour] = field(default_factory=list, repr=False)

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

    @property
    def rework_hours(self) -> float:
        return self.rework_seconds / 3600

    @property
    def pool_hours(self) -> float:
        return (self.pool_stopped_seconds + self.pool_running_seconds) / 3600

    def as_json(self) -> dict[str, Any]:
        p = self.policy
        return {
            "mode": p.rules.mode,
            "target": p.rules.target,
            "warmup_seconds": p.warmup_seconds,
            "min_size": p.rules.min_size,
            "max_size": p.rules.max_size,
            "boot_seconds": p.boot_seconds,
            "protection": "on" if p.protection else "off",
            "warm_pool": _warm_pool_json(p),
            "predictive": _predictive_json(p),
            "period_seconds": self.period_seconds,
            "videos": len(self.waits),
            "p50_wait_seconds": round(self.p50_wait, 3),
            "p95_wait_seconds": round(self.p95_wait, 3),
            "max_wait_seconds": round(self.max_wait, 3),
            "peak_instances": self.peak_instances,
            "instance_hours": round(self.instance_hours, 4),
            "rework_hours": round(self.rework_hours, 4),
            "restarted_videos": self.restarted,
            "scaling_actions": self.scaling_actions,
            "drained": self.drained,
            "simulated_seconds": self.simulated_seconds,
            "measured_from_seconds": self.measured_from_seconds,
            "pool_stopped_hours": round(self.pool_stopped_seconds / 3600, 4),
            "pool_running_hours": round(self.pool_running_seconds / 3600, 4),
            "forecast": [
                {"seconds": h.seconds, "load": round(h.load, 3), "capacity": h.capacity}
                for h in self.forecast
                if h.seconds >= self.measured_from_seconds
            ],
        }


def _warm_pool_json(policy: SimPolicy) -> dict[str, Any] | None:
    spec = policy.warm_pool
    if spec is None:
        return None
    return {
        "min_size": spec.min_size,
        "max_prepared": spec.max_prepared,
        "state": spec.state,
        "reuse_on_scale_in": spec.reuse_on_scale_in,
        "warm_boot_seconds": spec.warm_boot_seconds,
    }


def _predictive_json(policy: SimPolicy) -> dict[str, Any] | None:
    spec = policy.predictive
    if spec is None:
        return None
    return {
        "mode": spec.mode,
        "scheduling_buffer_seconds": spec.scheduling_buffer_seconds,
        "max_capacity_breach": spec.max_capacity_breach,
        "max_capacity_buffer": spec.max_capacity_buffer,
    }
