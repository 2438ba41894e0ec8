"""The policy a simulation plays: target tracking's rules, plus what only the simulator needs.

The rules (``scaling.simulation.tracking.TrackingRules``) are the very ones the
local control plane plays; the simulator adds the instance warmup it models,
the boot time and whether busy instances are protected from scale-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.policy.aim import AimError
from scaling.policy.options import DEFAULT_WARMUP_SECONDS, MAX_WARMUP_SECONDS
from scaling.simulation.forecast import PredictiveSpec
from scaling.simulation.tracking import TrackingRules
from scaling.simulation.warm_pool import WarmPoolSpec

# One class for a bad input, whether the simulator or the aim it follows finds it.
SimulationError = AimError


def _values_check(*, warmup_seconds: int, min_size: int, max_size: int, boot_seconds: int) -> None:
    """What the simulator accepts beyond the rules' own checks (MaxSize 0 is a group
    that never runs anything), each refusal in the command's words."""
    if not 0 <= warmup_seconds <= MAX_WARMUP_SECONDS:
        raise SimulationError(
            f"--warmup must be between 0 and {MAX_WARMUP_SECONDS} seconds, got {warmup_seconds}"
        )
    if min_size < 0:
        raise SimulationError(f"--min-size must be 0 or more, got {min_size}")
    if max_size < max(1, min_size):
        raise SimulationError(
            f"--max-size must be at least 1 and at least --min-size ({min_size}), got {max_size}"
        )
    if boot_seconds < 0:
        raise SimulationError(f"--boot-time must be 0 or more seconds, got {boot_seconds}")


@dataclass(frozen=True)
class SimPolicy:
    """Target tracking's rules as installed, and the instances the simulator plays them on."""

    rules: TrackingRules
    warmup_seconds: int = DEFAULT_WARMUP_SECONDS
    boot_seconds: int = 60
    # Scale-in protection of busy instances (scaling.simulation.termination).
    protection: bool = True
    # A warm pool beside the group (scaling.simulation.warm_pool); None: none.
    warm_pool: WarmPoolSpec | None = None
    # A predictive scaling policy beside target tracking (scaling.simulation.forecast).
    predictive: PredictiveSpec | None = None

    def __post_init__(self) -> None:
        if self.predictive is not None and self.rules.mode != "per-instance":
            raise SimulationError(
                "--predictive forecasts capacity from a per-instance target: "
                "use --mode per-instance"
            )
        _values_check(
            warmup_seconds=self.warmup_seconds,
            min_size=self.rules.min_size,
            max_size=self.rules.max_size,
            boot_seconds=self.boot_seconds,
        )

    @classmethod
    def build(
        cls,
        *,
        mode: str,
        target: float,
        min_size: int = 0,
        max_size: int = 10,
        warmup_seconds: int = DEFAULT_WARMUP_SECONDS,
        boot_seconds: int = 60,
        protection: bool = True,
        warm_pool: WarmPoolSpec | None = None,
        predictive: PredictiveSpec | None = None,
    ) -> SimPolicy:
        """From the command's values, checked in the command's words before the rules
        check the group's size their own way."""
        _values_check(
            warmup_seconds=warmup_seconds,
            min_size=min_size,
            max_size=max_size,
            boot_seconds=boot_seconds,
        )
        return cls(
            rules=TrackingRules(mode=mode, target=target, min_size=min_size, max_size=max_size),
            warmup_seconds=warmup_seconds,
            boot_seconds=boot_seconds,
            protection=protection,
            warm_pool=warm_pool,
            predictive=predictive,
        )

    @property
    def label(self) -> str:
        """e.g. "per-instance 3 +pool +predictive"."""
        parts = [f"{self.rules.mode} {self.rules.target:g}"]
        if self.warm_pool is not None:
            parts.append(self.warm_pool.label)
        if self.predictive is not None:
            parts.append(self.predictive.label)
        return " ".join(parts)
