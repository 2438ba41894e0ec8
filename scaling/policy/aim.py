"""What a target tracking policy aims for: the capacity it drives the group towards.

The admin, ``scaling_status`` and the simulator all use this one rule; the
simulator imports it from here, never the other way round.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Literal

Mode = Literal["per-instance", "total"]
MODES: tuple[Mode, ...] = ("per-instance", "total")


class AimError(ValueError):
    """A problem with the aim's input (or the simulator's), worded as one sentence."""


def target_check(target: float) -> None:
    if not (isinstance(target, int | float) and math.isfinite(target) and target > 0):
        raise AimError(f"the target must be a finite number above 0, got {target!r}")


def size_clamp(value: int, *, min_size: int, max_size: int) -> int:
    return max(min_size, min(max_size, value))


def ceil_ratio(numerator: Fraction, denominator: Fraction) -> int:
    # Exact arithmetic: ceil(6 / 3) must be 2, not 3 because of a float's last bit.
    return math.ceil(numerator / denominator)


def capacity_aim(*, backlog: int, target: float, mode: str, min_size: int, max_size: int) -> int:
    """The capacity target tracking drives the group towards for this backlog.

    ``per-instance``: metric = backlog / in service, so the proportional rule
    ``ceil(capacity * metric / target)`` is ``ceil(backlog / target)`` whatever
    the capacity is now; clamped to the group's min and max.

    ``total``: the raw count does not fall when instances are added, so each
    evaluation multiplies the capacity by ``backlog / target``. Above the target
    that only stops at ``max_size``; below it, the capacity shrinks towards one
    instance while anything is waiting and to ``min_size`` once nothing is.
    """
    if mode not in MODES:
        raise AimError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    target_check(target)
    if backlog < 0:
        raise AimError(f"backlog must be 0 or more, got {backlog}")
    if min_size < 0 or max_size < min_size:
        raise AimError(f"need 0 <= min_size <= max_size, got {min_size} and {max_size}")
    if mode == "per-instance":
        aim = ceil_ratio(Fraction(backlog), Fraction(target))
    elif backlog > target:
        aim = max_size
    else:
        aim = 1 if backlog > 0 else 0
    return size_clamp(aim, min_size=min_size, max_size=max_size)
