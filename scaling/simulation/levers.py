"""The levers beside target tracking on simulate_scaling's command line: a warm pool,
predictive scaling, and the academy week's length.

The installer (``install_scaling_policy``) takes the same warm-pool and predictive flag
names, so a simulated line can be installed as it is (``report.install_command``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from scaling.simulation.academy import DEFAULT_WEEKS
from scaling.simulation.forecast import MODES as PREDICTIVE_MODES
from scaling.simulation.forecast import PredictiveSpec
from scaling.simulation.policy import SimulationError
from scaling.simulation.warm_pool import DEFAULT_WARM_BOOT_SECONDS, POOL_STATES, WarmPoolSpec

_POOL_DETAILS = ("warm_pool_min_size", "warm_pool_max_prepared", "warm_pool_state")


def lever_flags_add(parser: Any) -> None:
    """The warm pool, predictive scaling and --weeks flags (checked by Levers.from_options)."""
    pool = parser.add_argument_group("warm pool (as install_scaling_policy takes it)")
    pool.add_argument("--warm-pool", action="store_true", help="A warm pool beside the group.")
    pool.add_argument(
        "--warm-pool-min-size", type=int, help="Instances the pool keeps at least [0]."
    )
    pool.add_argument(
        "--warm-pool-max-prepared",
        type=int,
        help="MaxGroupPreparedCapacity: group + pool at most [the group's MaxSize].",
    )
    pool.add_argument("--warm-pool-state", help=f"{' | '.join(POOL_STATES)} [Stopped].")
    pool.add_argument("--warm-pool-reuse", help="on: scale-in returns instances to the pool [on].")
    pool.add_argument(
        "--warm-boot-time",
        type=int,
        metavar="SECONDS",
        help=f"From leaving the pool to taking videos [{DEFAULT_WARM_BOOT_SECONDS}].",
    )
    predictive = parser.add_argument_group("predictive scaling (as install_scaling_policy)")
    predictive.add_argument(
        "--predictive",
        metavar="MODE",
        help=f"{' | '.join(PREDICTIVE_MODES)}: a predictive policy beside target tracking.",
    )
    predictive.add_argument(
        "--predictive-buffer",
        type=int,
        metavar="SECONDS",
        help="SchedulingBufferTime: capacity this long before each hour [300].",
    )
    parser.add_argument(
        "--weeks",
        type=int,
        help=f"academy: N-1 weeks of history, then the measured week [{DEFAULT_WEEKS}].",
    )


@dataclass(frozen=True)
class Levers:
    """What the lever flags ask for (None: not that lever)."""

    warm_pool: WarmPoolSpec | None = None
    predictive: PredictiveSpec | None = None

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Levers:
        """From the command's options; a detail without its lever is refused in a sentence."""
        return cls(warm_pool=_warm_pool(options), predictive=_predictive(options))


def _warm_pool(options: Mapping[str, Any]) -> WarmPoolSpec | None:
    details = [*_POOL_DETAILS, "warm_pool_reuse", "warm_boot_time"]
    if not options.get("warm_pool"):
        given = [name for name in details if options.get(name) is not None]
        if given:
            flag = "--" + given[0].replace("_", "-")
            raise SimulationError(f"{flag} needs --warm-pool")
        return None
    reuse = options.get("warm_pool_reuse") or "on"
    if reuse not in ("on", "off"):
        raise SimulationError(f"--warm-pool-reuse must be on or off, got {reuse!r}")
    boot = options.get("warm_boot_time")
    return WarmPoolSpec(
        min_size=options.get("warm_pool_min_size") or 0,
        max_prepared=options.get("warm_pool_max_prepared"),
        state=options.get("warm_pool_state") or "Stopped",
        reuse_on_scale_in=reuse == "on",
        warm_boot_seconds=DEFAULT_WARM_BOOT_SECONDS if boot is None else boot,
    )


def _predictive(options: Mapping[str, Any]) -> PredictiveSpec | None:
    mode = options.get("predictive")
    buffer = options.get("predictive_buffer")
    if mode is None:
        if buffer is not None:
            raise SimulationError("--predictive-buffer needs --predictive MODE")
        return None
    return PredictiveSpec(mode=mode, scheduling_buffer_seconds=300 if buffer is None else buffer)
