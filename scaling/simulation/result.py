"""What a simulated run produced: the timeline, the waits, the cost and the rework."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
        }
