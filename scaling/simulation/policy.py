"""The policy a simulation plays: target tracking's rules, plus what only the simulator needs.

The rules (``scaling.simulation.tracking.TrackingRules``) are the very ones the
local control plane plays; the simulator adds the instance warmup it models,
the boot time and whether busy instances are protected from scale-in.
"""

from __future__ import annotations

from dataclasses import dataclass

from scaling.policy.aim import AimError
from scaling.policy.options import DEFAULT_WARMUP_SECONDS, MAX_WARMUP_SECONDS
from scaling.simulation.tracking import TrackingRules

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

    def __post_init__(self) -> None:
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
        )

    @property
    def label(self) -> str:
        return f"{self.rules.mode} {self.rules.target:g}"
