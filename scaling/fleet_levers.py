"""A fleet's warm pool and predictive policy keys (``SCALING_FLEETS`` policy.warm_pool,
policy.predictive), read into the flags ``install_scaling_policy`` takes.

``scaling.fleet_config`` calls ``levers_parse`` for a fleet's ``policy`` object; a bad
key or value is a ValueError with one sentence (scaling.E011). The values are the
flags' own (``scaling.policy.capacity_options`` takes its choices and ranges from
here, so the two cannot drift apart), and ``FleetWarmPool.flags`` /
``FleetPredictive.flags`` give them back as the command's option strings, which
``scaling.policy.fleet_runs.fleet_options`` fills in where the command line says
nothing.

  "warm_pool":  {"min_size": 1, "max_prepared": 6, "state": "Stopped", "reuse": true}
  "predictive": {"mode": "forecast-only", "buffer": 600, "max_capacity": "increase",
                 "max_buffer": 10}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# The choices and ranges of the flags (--warm-pool-*, --predictive-*), in AWS's terms.
WARM_POOL_STATES = ("Stopped", "Running", "Hibernated")
WARM_POOL_MAX = 10000
PREDICTIVE_MODES = {"forecast-only": "ForecastOnly", "forecast-and-scale": "ForecastAndScale"}
PREDICTIVE_MAX_CAPACITY = {"honor": "HonorMaxCapacity", "increase": "IncreaseMaxCapacity"}
# SchedulingBufferTime: AWS's default; the API reference says it "must be less than the
# forecast interval duration of 3600 seconds".
DEFAULT_PREDICTIVE_BUFFER_SECONDS = 300
MAX_PREDICTIVE_BUFFER_SECONDS = 3599

WARM_POOL_KEYS = ("min_size", "max_prepared", "state", "reuse")
PREDICTIVE_KEYS = ("mode", "buffer", "max_capacity", "max_buffer")


@dataclass(frozen=True)
class FleetWarmPool:
    """policy.warm_pool: each key None when the fleet does not set it (the flag's
    default then, or the command line's value)."""

    min_size: int | None = None
    max_prepared: int | None = None
    state: str | None = None
    reuse: bool | None = None

    def flags(self) -> dict[str, Any]:
        """As the command's options (--warm-pool and its --warm-pool-* values)."""
        found: dict[str, Any] = {"warm_pool": True}
        for key, value in (
            ("warm_pool_min_size", self.min_size),
            ("warm_pool_max_prepared", self.max_prepared),
            ("warm_pool_state", self.state),
        ):
            if value is not None:
                found[key] = str(value)
        if self.reuse is not None:
            found["warm_pool_reuse"] = "on" if self.reuse else "off"
        return found


@dataclass(frozen=True)
class FleetPredictive:
    """policy.predictive: mode is required, the others None when not set."""

    mode: str  # forecast-only | forecast-and-scale
    buffer: int | None = None
    max_capacity: str | None = None  # honor | increase
    max_buffer: int | None = None

    def flags(self) -> dict[str, Any]:
        """As the command's options (--predictive and its --predictive-* values)."""
        found: dict[str, Any] = {"predictive": self.mode}
        for key, value in (
            ("predictive_buffer", self.buffer),
            ("predictive_max_capacity", self.max_capacity),
            ("predictive_max_buffer", self.max_buffer),
        ):
            if value is not None:
                found[key] = str(value)
        return found


def _object(raw: Any, name: str, known: tuple[str, ...], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: policy.{name} must be an object, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise ValueError(
            f"{where}: unknown policy.{name} key {unknown[0]!r} (known: {', '.join(known)})."
        )
    return raw


def _whole(raw: dict[str, Any], name: str, key: str, top: int, where: str) -> int | None:
    value = raw.get(key)
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not float(value).is_integer()
        or not 0 <= value <= top
    ):
        raise ValueError(
            f"{where}: policy.{name}.{key} must be a whole number from 0 to {top}, got {value!r}."
        )
    return int(value)


def _choice(raw: dict[str, Any], name: str, key: str, choices: tuple[str, ...], where: str) -> Any:
    value = raw.get(key)
    if value is not None and value not in choices:
        raise ValueError(
            f"{where}: policy.{name}.{key} must be {' or '.join(repr(c) for c in choices)}, "
            f"got {value!r}."
        )
    return value


def warm_pool_parse(raw: Any, where: str) -> FleetWarmPool | None:
    if raw is None:
        return None
    found = _object(raw, "warm_pool", WARM_POOL_KEYS, where)
    min_size = _whole(found, "warm_pool", "min_size", WARM_POOL_MAX, where)
    max_prepared = _whole(found, "warm_pool", "max_prepared", WARM_POOL_MAX, where)
    if min_size is not None and max_prepared is not None and min_size > max_prepared:
        raise ValueError(
            f"{where}: policy.warm_pool.min_size {min_size} is above max_prepared "
            f"{max_prepared}: the pool's minimum must fit in the prepared capacity."
        )
    state = _choice(found, "warm_pool", "state", WARM_POOL_STATES, where)
    reuse = found.get("reuse")
    if reuse is not None and not isinstance(reuse, bool):
        raise ValueError(
            f"{where}: policy.warm_pool.reuse must be true (scale-in returns instances to "
            f"the pool) or false, got {reuse!r}."
        )
    return FleetWarmPool(min_size, max_prepared, state, reuse)


def predictive_parse(raw: Any, where: str) -> FleetPredictive | None:
    if raw is None:
        return None
    found = _object(raw, "predictive", PREDICTIVE_KEYS, where)
    if found.get("mode") is None:
        raise ValueError(
            f"{where}: policy.predictive needs mode 'forecast-only' or 'forecast-and-scale' "
            "(leave policy.predictive out for none)."
        )
    mode = _choice(found, "predictive", "mode", tuple(PREDICTIVE_MODES), where)
    buffer = _whole(found, "predictive", "buffer", MAX_PREDICTIVE_BUFFER_SECONDS, where)
    behaviour = _choice(found, "predictive", "max_capacity", tuple(PREDICTIVE_MAX_CAPACITY), where)
    max_buffer = _whole(found, "predictive", "max_buffer", 100, where)
    if behaviour == "increase" and max_buffer is None:
        raise ValueError(
            f"{where}: policy.predictive.max_capacity 'increase' needs max_buffer, a whole "
            "percentage from 0 to 100 (how far above the forecast the maximum may rise)."
        )
    if behaviour != "increase" and max_buffer is not None:
        raise ValueError(
            f"{where}: policy.predictive.max_buffer needs max_capacity 'increase' (AWS takes "
            "MaxCapacityBuffer only with IncreaseMaxCapacity)."
        )
    return FleetPredictive(mode, buffer, behaviour, max_buffer)


def levers_parse(
    raw: dict[str, Any], where: str
) -> tuple[FleetWarmPool | None, FleetPredictive | None]:
    """A fleet policy object's warm_pool and predictive (None where absent); ValueError
    with one sentence for a bad one."""
    return warm_pool_parse(raw.get("warm_pool"), where), predictive_parse(
        raw.get("predictive"), where
    )
