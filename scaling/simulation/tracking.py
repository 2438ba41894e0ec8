"""What target tracking does each metric period: one implementation, two users.

``simulate_scaling`` (``scaling.simulation.model``) feeds it the backlog it
computes; the local control plane of ``make run`` (``devstack.controlplane``)
feeds it the datapoint it reads back from the local CloudWatch endpoint and the
instances it reads from the local group. Both then apply the desired capacity
it answers. The rules, and the AWS page each comes from, are in
``docs/simulator.md`` ("What the model assumes"):

- a scale-out alarm: the metric above the target for ``scale_out_datapoints``
  periods in a row; a scale-in alarm: below ``scale_in_ratio`` x target for
  ``scale_in_datapoints`` periods in a row;
- the proportional rule ``ceil(capacity x metric / target)``, where capacity is
  the instances past their warmup (instances still warming up count in the
  desired capacity but not as current capacity); scale-out never lowers the
  desired capacity, scale-in never raises it and waits until no instance warms up;
- the wake rule (the installer's step policy): backlog waiting with no instance
  in service for ``wake_datapoints`` periods sets the desired capacity to one
  (``min_size`` if larger);
- per instance, the metric is backlog / in-service instances, and has no value
  with nothing in service (the m1 / m2 metric math has no divisor).

A period without a datapoint (``backlog=None``: the publisher published
nothing) is missing data: every alarm keeps its count and nothing is done, as
an alarm with missing data neither breaches nor recovers.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from scaling.policy.aim import MODES, AimError, ceil_ratio, size_clamp, target_check

# Alarms that EC2 Auto Scaling creates for a target tracking policy (see docs/simulator.md).
SCALE_OUT_DATAPOINTS = 3
SCALE_IN_DATAPOINTS = 15
SCALE_IN_RATIO = 0.9


@dataclass(frozen=True)
class TrackingRules:
    """The installed policy as target tracking applies it."""

    mode: str
    target: float
    min_size: int = 0
    max_size: int = 10
    scale_out_datapoints: int = SCALE_OUT_DATAPOINTS
    scale_in_datapoints: int = SCALE_IN_DATAPOINTS
    scale_in_ratio: float = SCALE_IN_RATIO
    wake_datapoints: int = 1
    # The installed policy may disable scale-in (DisableScaleIn); ours never does.
    scale_in: bool = True

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise AimError(f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        target_check(self.target)
        if self.min_size < 0 or self.max_size < self.min_size:
            raise AimError(
                f"need 0 <= min size <= max size, got {self.min_size} and {self.max_size}"
            )


@dataclass(frozen=True)
class Observation:
    """One period as target tracking sees it."""

    backlog: int | None  # the datapoint (UPLOADED + PROCESSING); None: none published
    in_service: int  # InService (booted) instances: the per-instance divisor
    warm: int  # in service and past the warmup: current capacity
    live: int  # every instance not terminating, booting ones included
    desired: int  # the group's desired capacity now


@dataclass(frozen=True)
class Decision:
    desired: int  # the desired capacity to set (equal to the observation's: nothing)
    metric: float | None  # what the scale-out and scale-in alarms compared
    reason: str  # "wake", "scale-out", "scale-in" or "" (nothing done)


class TargetTracking:
    """The alarm counts across periods; ``step`` once per metric period."""

    def __init__(self, rules: TrackingRules) -> None:
        self.rules = rules
        self.high = self.low = self.wake = 0

    def metric(self, *, backlog: int, in_service: int) -> float | None:
        if self.rules.mode == "total":
            return float(backlog)
        return backlog / in_service if in_service else None

    def step(self, seen: Observation) -> Decision:
        r = self.rules
        if seen.backlog is None:
            return Decision(seen.desired, None, "")
        metric = self.metric(backlog=seen.backlog, in_service=seen.in_service)
        self.high = self.high + 1 if metric is not None and metric > r.target else 0
        # The scale-in alarm's threshold as AWS stores it: 0.9 x 3 is 2.7, not the float
        # 2.7000000000000002 (27 videos on 10 instances is not below it).
        low_threshold = round(r.scale_in_ratio * r.target, 9)
        self.low = self.low + 1 if metric is not None and metric < low_threshold else 0
        self.wake = self.wake + 1 if seen.backlog > 0 and seen.in_service == 0 else 0

        if self.wake >= r.wake_datapoints and seen.desired == 0:
            return Decision(size_clamp(1, min_size=r.min_size, max_size=r.max_size), metric, "wake")
        if self.high >= r.scale_out_datapoints and seen.warm > 0:
            aim = self.proportional(seen)
            if aim > seen.desired:
                return Decision(aim, metric, "scale-out")
        elif r.scale_in and self.low >= r.scale_in_datapoints and seen.warm == seen.live:
            aim = self.proportional(seen)
            if aim < seen.desired:
                return Decision(aim, metric, "scale-in")
        return Decision(seen.desired, metric, "")

    def proportional(self, seen: Observation) -> int:
        """ceil(current capacity x metric / target), clamped to the group's bounds."""
        r = self.rules
        backlog = seen.backlog or 0
        target = Fraction(r.target)
        if r.mode == "total":
            aim = ceil_ratio(Fraction(seen.warm * backlog), target)
        else:
            aim = ceil_ratio(Fraction(seen.warm * backlog), Fraction(seen.in_service) * target)
        return size_clamp(aim, min_size=r.min_size, max_size=r.max_size)
