"""The warm pool and predictive scaling flags, checked into what the installer sends.

``scaling.policy.options`` calls ``capacity_options_parse`` from ``policy_options_parse``
(a ``CapacityFlagError`` becomes its ``PolicyError``, the same one sentence);
``scaling.policy.warm_pool`` and ``scaling.policy.predictive`` build the requests.
Absent flags mean "leave what the group holds as it is".
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# Warm pool (--warm-pool) and predictive scaling (--predictive): scaling.policy.warm_pool
# and scaling.policy.predictive build their requests. The choices and ranges are shared
# with a fleet's policy.warm_pool / policy.predictive keys (SCALING_FLEETS).
from scaling.fleet_levers import (
    DEFAULT_PREDICTIVE_BUFFER_SECONDS,
    MAX_PREDICTIVE_BUFFER_SECONDS,
    PREDICTIVE_MAX_CAPACITY,
    PREDICTIVE_MODES,
    WARM_POOL_MAX,
    WARM_POOL_STATES,
)
from scaling.policy.aim import Mode


class CapacityFlagError(ValueError):
    """A bad warm pool or predictive flag: one sentence (options makes it a PolicyError)."""


@dataclass(frozen=True)
class WarmPoolOptions:
    """--warm-pool: PutWarmPool's fields (max_prepared None: AWS sizes the pool from the
    group's MaxSize)."""

    min_size: int = 0
    max_prepared: int | None = None
    state: str = "Stopped"
    reuse_on_scale_in: bool = True


@dataclass(frozen=True)
class PredictiveOptions:
    """--predictive forecast-only | forecast-and-scale: the policy's AWS values."""

    mode: str  # ForecastOnly | ForecastAndScale
    buffer_seconds: int = DEFAULT_PREDICTIVE_BUFFER_SECONDS
    max_capacity: str = "HonorMaxCapacity"  # | IncreaseMaxCapacity
    max_buffer_percent: int | None = None  # only with IncreaseMaxCapacity


# The warm pool and predictive flags, as the command's option names.
CAPACITY_FLAGS = (
    "warm_pool",
    "no_warm_pool",
    "warm_pool_min_size",
    "warm_pool_max_prepared",
    "warm_pool_state",
    "warm_pool_reuse",
    "predictive",
    "predictive_buffer",
    "predictive_max_capacity",
    "predictive_max_buffer",
)


def _whole(flag: str, raw: str, low: int, high: int, what: str = "a whole number") -> int:
    if not re.fullmatch(r"\s*\d{1,9}\s*", raw) or not low <= int(raw) <= high:
        raise CapacityFlagError(f"{flag} must be {what} from {low} to {high}, got {raw[:100]!r}.")
    return int(raw)


def _needs(given: dict[str, Any], names: tuple[str, ...], needed: str) -> None:
    for flag in names:
        if given.get(flag) is not None:
            raise CapacityFlagError(f"--{flag.replace('_', '-')} needs {needed}.")


def capacity_options_parse(
    *, mode: Mode = "per-instance", **given: Any
) -> tuple[WarmPoolOptions | None, bool, PredictiveOptions | None, bool]:
    """The warm pool and predictive flags (CAPACITY_FLAGS) → (warm pool, its removal,
    predictive, its removal); CapacityFlagError with one sentence for a bad value or a sub-flag
    without its main flag. Absent flags: (None, False, None, False), "leave as is"."""
    unknown = set(given) - set(CAPACITY_FLAGS)
    if unknown:
        raise TypeError(f"unknown capacity flags {sorted(unknown)}")
    pool_subs = CAPACITY_FLAGS[2:6]
    pool: WarmPoolOptions | None = None
    if given.get("warm_pool") and given.get("no_warm_pool"):
        raise CapacityFlagError("Give --warm-pool or --no-warm-pool, not both.")
    if not given.get("warm_pool"):
        _needs(given, pool_subs, "--warm-pool (it shapes the pool --warm-pool installs)")
    else:
        raw_min, raw_max = given.get("warm_pool_min_size"), given.get("warm_pool_max_prepared")
        min_size = (
            0 if raw_min is None else _whole("--warm-pool-min-size", raw_min, 0, WARM_POOL_MAX)
        )
        max_prepared = None
        if raw_max is not None:
            max_prepared = _whole("--warm-pool-max-prepared", raw_max, 0, WARM_POOL_MAX)
            if min_size > max_prepared:
                raise CapacityFlagError(
                    f"--warm-pool-min-size {min_size} is above --warm-pool-max-prepared "
                    f"{max_prepared}: the pool's minimum must fit in the prepared capacity."
                )
        state = given.get("warm_pool_state") or "Stopped"
        states = {s.lower(): s for s in WARM_POOL_STATES}
        if state.lower() not in states:
            raise CapacityFlagError(
                f"--warm-pool-state must be Stopped, Running or Hibernated, got {state[:100]!r}."
            )
        reuse = given.get("warm_pool_reuse") or "on"
        if reuse not in ("on", "off"):
            raise CapacityFlagError(f"--warm-pool-reuse must be on or off, got {reuse[:100]!r}.")
        pool = WarmPoolOptions(min_size, max_prepared, states[state.lower()], reuse == "on")
    raw_mode = given.get("predictive")
    predictive_subs = CAPACITY_FLAGS[7:]
    if raw_mode is not None and raw_mode != "off" and raw_mode not in PREDICTIVE_MODES:
        raise CapacityFlagError(
            "--predictive must be forecast-only, forecast-and-scale or off, got "
            f"{raw_mode[:100]!r}."
        )
    if raw_mode is None or raw_mode == "off":
        _needs(given, predictive_subs, "--predictive forecast-only or forecast-and-scale")
        return pool, bool(given.get("no_warm_pool")), None, raw_mode == "off"
    if mode == "total":
        raise CapacityFlagError(
            "--predictive scales on backlog per in-service instance: it takes --mode "
            "per-instance, not --mode total."
        )
    raw_buffer = given.get("predictive_buffer")
    buffer = DEFAULT_PREDICTIVE_BUFFER_SECONDS
    if raw_buffer is not None:
        top = MAX_PREDICTIVE_BUFFER_SECONDS
        buffer = _whole("--predictive-buffer", raw_buffer, 0, top, "a whole number of seconds")
    behaviour = given.get("predictive_max_capacity") or "honor"
    if behaviour not in PREDICTIVE_MAX_CAPACITY:
        raise CapacityFlagError(
            f"--predictive-max-capacity must be honor or increase, got {behaviour[:100]!r}."
        )
    raw_percent = given.get("predictive_max_buffer")
    percent = None
    if behaviour == "honor" and raw_percent is not None:
        raise CapacityFlagError(
            "--predictive-max-buffer needs --predictive-max-capacity increase (AWS takes "
            "MaxCapacityBuffer only with IncreaseMaxCapacity)."
        )
    if behaviour == "increase":
        if raw_percent is None:
            raise CapacityFlagError(
                "--predictive-max-capacity increase needs --predictive-max-buffer PERCENT "
                "(0 to 100: how far above the forecast the maximum may rise)."
            )
        percent = _whole("--predictive-max-buffer", raw_percent, 0, 100, "a whole percentage")
    predictive = PredictiveOptions(
        PREDICTIVE_MODES[raw_mode], buffer, PREDICTIVE_MAX_CAPACITY[behaviour], percent
    )
    return pool, bool(given.get("no_warm_pool")), predictive, False


def capacity_flags_add(parser: Any) -> None:
    """The flags, as text (``capacity_options_parse`` checks each)."""
    parser.add_argument(
        "--warm-pool",
        action="store_true",
        default=None,
        help="Keep a warm pool of prepared instances (PutWarmPool); without it an existing "
        "pool is left as it is.",
    )
    parser.add_argument(
        "--no-warm-pool",
        action="store_true",
        default=None,
        help="Remove the warm pool this command installed (AWS deletes its instances).",
    )
    parser.add_argument("--warm-pool-min-size", help="Instances always kept in the pool [0].")
    parser.add_argument(
        "--warm-pool-max-prepared",
        help="MaxGroupPreparedCapacity: pool + group at most [unset: the group's MaxSize].",
    )
    parser.add_argument(
        "--warm-pool-state", help="Stopped, Running or Hibernated: the pool's instances [Stopped]."
    )
    parser.add_argument(
        "--warm-pool-reuse", help="on: scale-in returns instances to the pool; off [on]."
    )
    parser.add_argument(
        "--predictive",
        help="forecast-only | forecast-and-scale: a predictive policy on the published backlog "
        "(needs 24 h of published values); off removes it; without it: left as it is.",
    )
    parser.add_argument(
        "--predictive-buffer",
        help="SchedulingBufferTime: seconds instances launch ahead of the forecast, 0 to "
        f"{MAX_PREDICTIVE_BUFFER_SECONDS} [{DEFAULT_PREDICTIVE_BUFFER_SECONDS}].",
    )
    parser.add_argument(
        "--predictive-max-capacity",
        help="honor: never above MaxSize; increase: MaxSize may rise to the forecast [honor].",
    )
    parser.add_argument(
        "--predictive-max-buffer",
        help="With --predictive-max-capacity increase: percent above the forecast, 0 to 100.",
    )
