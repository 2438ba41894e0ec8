"""A warm pool beside the group: its settings and the rules both the simulator and the
local control plane apply (pure functions of what each of them reads).

AWS pages (Amazon EC2 Auto Scaling User Guide unless named): "Warm pools for Amazon EC2
Auto Scaling", the API reference of ``PutWarmPool`` (``MaxGroupPreparedCapacity``,
``MinSize``, ``PoolState``, ``InstanceReusePolicy``). What the simulator assumes beyond
them is listed in docs/simulator.md, "Warm pools and predictive scaling in the model".
"""

from __future__ import annotations

from dataclasses import dataclass

# The class scaling.simulation.policy calls SimulationError (that module imports this one).
from scaling.policy.aim import AimError as SimulationError

POOL_STATES: tuple[str, ...] = ("Stopped", "Running", "Hibernated")
DEFAULT_WARM_BOOT_SECONDS = 30


@dataclass(frozen=True)
class WarmPoolSpec:
    """``PutWarmPool``'s settings, plus how long a warmed instance takes to serve."""

    min_size: int = 0
    # MaxGroupPreparedCapacity; None: not set, the group's MaxSize counts instead (as AWS).
    max_prepared: int | None = None
    state: str = "Stopped"  # PoolState
    reuse_on_scale_in: bool = True  # InstanceReusePolicy.ReuseOnScaleIn
    # Assumption: from leaving the pool to taking videos (start + the worker's own start).
    warm_boot_seconds: int = DEFAULT_WARM_BOOT_SECONDS

    def __post_init__(self) -> None:
        if self.min_size < 0:
            raise SimulationError(f"--warm-pool-min-size must be 0 or more, got {self.min_size}")
        if self.max_prepared is not None and self.max_prepared < 0:
            raise SimulationError(
                f"--warm-pool-max-prepared must be 0 or more, got {self.max_prepared}"
            )
        if self.state not in POOL_STATES:
            raise SimulationError(
                f"--warm-pool-state must be one of {', '.join(POOL_STATES)}, got {self.state!r}"
            )
        if self.warm_boot_seconds < 0:
            raise SimulationError(
                f"--warm-boot-time must be 0 or more seconds, got {self.warm_boot_seconds}"
            )

    @property
    def pays_instance(self) -> bool:
        """A Running pool pays for its instances; Stopped and Hibernated pay only volumes."""
        return self.state == "Running"

    @property
    def label(self) -> str:
        return "+pool"


def pool_target(desired: int, *, max_size: int, spec: WarmPoolSpec) -> int:
    """How many instances the warm pool holds for this desired capacity.

    PutWarmPool: without MaxGroupPreparedCapacity the pool is the group's maximum
    capacity minus its desired capacity; with it, that value minus the desired
    capacity; never below the pool's MinSize (0 when the desired capacity is above
    the prepared capacity and no MinSize is set).
    """
    prepared = max_size if spec.max_prepared is None else spec.max_prepared
    return max(spec.min_size, prepared - desired, 0)


def pool_draw(wanted: int, *, pool_ready: int) -> tuple[int, int]:
    """A scale-out of ``wanted`` instances: (taken from the pool, launched cold).

    "Warm pools for Amazon EC2 Auto Scaling": a scale-out takes warmed instances
    first; when the pool has none left, instances launch directly into the group.
    Only initialised pool instances (Warmed:Stopped/Running/Hibernated) count.
    """
    taken = min(max(wanted, 0), max(pool_ready, 0))
    return taken, max(wanted, 0) - taken


def scale_in_returns(*, pool_size: int, desired: int, max_size: int, spec: WarmPoolSpec) -> bool:
    """Whether an instance removed by scale-in goes back to the pool (else terminates).

    InstanceReusePolicy.ReuseOnScaleIn: the instance returns to the warm pool instead
    of terminating; the simulator returns it while the pool (initialising instances
    included) is below ``pool_target`` for the new desired capacity (assumption: AWS
    does not say what happens past that size; terminating keeps the pool's size rule).
    """
    if not spec.reuse_on_scale_in:
        return False
    return pool_size < pool_target(desired, max_size=max_size, spec=spec)
