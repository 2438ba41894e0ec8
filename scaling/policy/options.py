"""What the policy is asked to be: the flags, checked and turned into options.

One home for each rule the installer and the simulator share: the modes (from
``scaling.policy.aim``), the defaults, and the target derived from an
acceptable wait and a processing time.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any

from scaling.conf import scaling_settings
from scaling.fleets import FleetPolicy

# MODES and Mode are the aim's; the installer and the simulator take them from here.
from scaling.policy.aim import MODES, Mode
from scaling.policy.capacity_options import (
    CapacityFlagError,
    PredictiveOptions,
    WarmPoolOptions,
    capacity_flags_add,
    capacity_options_parse,
)
from scaling.port import lease_hooks

DEFAULT_TARGET_VALUE = 3.0  # the old policy's number; per instance in per-instance mode
DEFAULT_WARMUP_SECONDS = 60  # the old "scale out after about 60 s"
MAX_WARMUP_SECONDS = 3600
# The "waiting too long" alarm's threshold when neither --alarm-wait nor --acceptable-wait
# is given: ten minutes, the acceptable wait of the documented example.
DEFAULT_ALARM_WAIT_SECONDS = 600.0
# arn:<partition>:sns:<region>:<account>:<topic name> (standard topics: letters, digits, - _).
_SNS_TOPIC_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:sns:[a-z]{2}(?:-[a-z]+)+-\d:\d{12}:[A-Za-z0-9_-]{1,256}"
)
# The termination lifecycle hook's HeartbeatTimeout (--drain-timeout): PutLifecycleHook
# takes 30..7200 s; the default is two leases within those bounds (scaling.policy.hook).
DRAIN_TIMEOUT_RANGE = (30, 7200)
DRAIN_TIMEOUT_LEASES = 2
# Two leases of the reference video worker (VIDEO_LEASE_SECONDS 120), for hosts without leases.
DEFAULT_DRAIN_TIMEOUT_SECONDS = 240

TOTAL_MODE_WARNING = (
    "Warning: --mode total tracks the raw backlog, which does not fall as instances are "
    "added, so target tracking keeps adding capacity while the count stays above the "
    "target (over-scaling) and treats a long backlog on a large fleet like one on a "
    "single instance (under-scaling when the target is high)."
)


class PolicyError(Exception):
    """A bad input or a failed precondition: one sentence, shown as is."""


def target_from_wait(*, acceptable_wait: float, processing_time: float) -> float:
    """AWS's rule for a backlog-per-instance target: acceptable wait / processing time.

    One instance may have as many videos waiting as it can process within the
    wait a video may have; the caller checks that both numbers are above 0.
    """
    return acceptable_wait / processing_time


@dataclass(frozen=True)
class PolicyOptions:
    asg_name: str
    mode: Mode
    target_value: float
    warmup_seconds: int
    target_derivation: str
    # The alarms (scaling.policy.alarms): the oldest video's wait that raises
    # "waiting too long", and the SNS topic told of every alarm (None: no action).
    alarm_wait_seconds: float = DEFAULT_ALARM_WAIT_SECONDS
    alarm_topic: str | None = None
    # The termination lifecycle hook's HeartbeatTimeout (drain_timeout_default()).
    drain_timeout_seconds: int = DEFAULT_DRAIN_TIMEOUT_SECONDS
    # None: leave what the group holds as it is; *_off: remove what this command installed.
    warm_pool: WarmPoolOptions | None = None
    warm_pool_off: bool = False
    predictive: PredictiveOptions | None = None
    predictive_off: bool = False

    def as_json(self) -> dict[str, Any]:
        def asked(value: Any, off: bool) -> Any:
            return "off" if off else None if value is None else dataclasses.asdict(value)

        return {
            "mode": self.mode,
            "target_value": self.target_value,
            "target_derivation": self.target_derivation,
            "warmup_seconds": self.warmup_seconds,
            "alarm_wait_seconds": self.alarm_wait_seconds,
            "alarm_topic": self.alarm_topic,
            "drain_timeout_seconds": self.drain_timeout_seconds,
            "warm_pool": asked(self.warm_pool, self.warm_pool_off),
            "predictive": asked(self.predictive, self.predictive_off),
        }


def _number(flag: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise PolicyError(f"{flag} must be a number, got {raw!r}.") from None
    if not math.isfinite(value) or value <= 0:
        raise PolicyError(f"{flag} must be a finite number above 0, got {raw!r}.")
    return value


def asg_name_parse(raw: str | None) -> str:
    name = scaling_settings().asg_name if raw is None else raw.strip()
    if not 1 <= len(name) <= 255:
        raise PolicyError("--asg-name must be 1 to 255 characters.")
    return name


def alarm_topic_parse(raw: str | None) -> str | None:
    """An SNS topic ARN for the alarms' actions, or None; PolicyError names what is wrong."""
    if raw is None:
        return None
    if not _SNS_TOPIC_ARN.fullmatch(raw):
        raise PolicyError(
            "--alarm-topic must be an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT_ID:NAME), "
            f"got {raw[:300]!r}."
        )
    return raw


def drain_timeout_default() -> int:
    """Two of the host's leases, within the 30..7200 s AWS allows."""
    hooks = lease_hooks()
    if hooks is None:
        return DEFAULT_DRAIN_TIMEOUT_SECONDS
    low, high = DRAIN_TIMEOUT_RANGE
    return min(high, max(low, DRAIN_TIMEOUT_LEASES * hooks.lease_seconds()))


def drain_timeout_parse(raw: str | None) -> int:
    """--drain-timeout in seconds (the default without it); PolicyError names what is wrong."""
    if raw is None:
        return drain_timeout_default()
    low, high = DRAIN_TIMEOUT_RANGE
    if not re.fullmatch(r"\s*\d{1,9}\s*", raw) or not low <= int(raw) <= high:
        raise PolicyError(
            f"--drain-timeout must be a whole number of seconds from {low} to {high}, "
            f"got {raw[:100]!r}."
        )
    return int(raw)


def _mode_parse(raw: str | None) -> Mode:
    chosen = raw or "per-instance"
    for mode in MODES:
        if chosen == mode:
            return mode
    raise PolicyError(f"--mode must be 'per-instance' or 'total', got {chosen!r}.")


def policy_options_parse(
    *,
    asg_name: str | None,
    mode: str | None,
    target_value: str | None,
    acceptable_wait: str | None,
    processing_time: str | None,
    warmup: str | None,
    alarm_wait: str | None = None,
    alarm_topic: str | None = None,
    drain_timeout: str | None = None,
    fleet_policy: FleetPolicy | None = None,
    fleet_name: str = "",
    **capacity: Any,
) -> PolicyOptions:
    """Turn the command's raw flags into options, or raise PolicyError with one sentence.

    ``fleet_policy`` (a fleet's policy defaults, ``SCALING_FLEETS``) fills in the target
    (``target_value``, or ``acceptable_wait`` with ``processing_time``) and the warmup
    when no flag gives them. ``capacity``: the warm pool and predictive flags
    (``CAPACITY_FLAGS``, ``capacity_options_parse``).
    """
    name = asg_name_parse(asg_name)
    chosen_mode = _mode_parse(mode)
    try:
        warm_pool, warm_pool_off, predictive, predictive_off = capacity_options_parse(
            mode=chosen_mode, **capacity
        )
    except CapacityFlagError as exc:
        raise PolicyError(str(exc)) from None
    fleet_source = ""
    if fleet_policy is not None and target_value is None and acceptable_wait is None:
        if processing_time is None and fleet_policy.target_value is not None:
            target_value = f"{fleet_policy.target_value!r}"
            fleet_source = f" from fleet {fleet_name}'s policy"
        elif processing_time is None and fleet_policy.acceptable_wait is not None:
            if chosen_mode == "total":
                raise PolicyError(
                    f"Fleet {fleet_name}'s policy derives its target from acceptable_wait / "
                    "processing_time (per instance); --mode total takes --target-value."
                )
            acceptable_wait = f"{fleet_policy.acceptable_wait!r}"
            processing_time = f"{fleet_policy.processing_time!r}"
            fleet_source = f" (fleet {fleet_name}'s policy)"
    if fleet_policy is not None and warmup is None and fleet_policy.warmup is not None:
        warmup = str(fleet_policy.warmup)
    derived = acceptable_wait is not None or processing_time is not None
    if derived and target_value is not None:
        raise PolicyError(
            "Give either --target-value or --acceptable-wait with --processing-time, not both."
        )
    if acceptable_wait is not None and processing_time is None:
        raise PolicyError(
            "--acceptable-wait needs --processing-time (target = acceptable wait / processing "
            "time)."
        )
    if processing_time is not None and acceptable_wait is None:
        raise PolicyError(
            "--processing-time needs --acceptable-wait (target = acceptable wait / processing "
            "time)."
        )
    if derived and chosen_mode == "total":
        raise PolicyError(
            "--acceptable-wait and --processing-time derive a per-instance target; "
            "--mode total takes --target-value."
        )
    if acceptable_wait is not None and processing_time is not None:
        wait = _number("--acceptable-wait", acceptable_wait)
        each = _number("--processing-time", processing_time)
        value = target_from_wait(acceptable_wait=wait, processing_time=each)
        if not math.isfinite(value) or value <= 0:
            raise PolicyError(
                f"--acceptable-wait / --processing-time gives {value!r}, which is not a "
                "finite number above 0."
            )
        derivation = (
            f"target {_fmt(value)} = acceptable wait {_fmt(wait)} s / processing time "
            f"{_fmt(each)} s per video (videos waiting per in-service instance){fleet_source}"
        )
    elif target_value is not None:
        value = _number("--target-value", target_value)
        derivation = f"target {_fmt(value)}{fleet_source or ' from --target-value'}"
    else:
        value = DEFAULT_TARGET_VALUE
        derivation = f"target {_fmt(value)} (default)"
    warmup_seconds = DEFAULT_WARMUP_SECONDS
    if warmup is not None:
        if not re.fullmatch(r"\s*\d{1,9}\s*", warmup) or int(warmup) > MAX_WARMUP_SECONDS:
            raise PolicyError(
                f"--warmup must be a whole number of seconds from 0 to {MAX_WARMUP_SECONDS}, "
                f"got {warmup!r}."
            )
        warmup_seconds = int(warmup)
    if alarm_wait is not None:
        wait_seconds = _number("--alarm-wait", alarm_wait)
    elif acceptable_wait is not None:
        wait_seconds = _number("--acceptable-wait", acceptable_wait)
    else:
        wait_seconds = DEFAULT_ALARM_WAIT_SECONDS
    return PolicyOptions(
        asg_name=name,
        mode=chosen_mode,
        target_value=value,
        warmup_seconds=warmup_seconds,
        target_derivation=derivation,
        alarm_wait_seconds=wait_seconds,
        alarm_topic=alarm_topic_parse(alarm_topic),
        drain_timeout_seconds=drain_timeout_parse(drain_timeout),
        warm_pool=warm_pool,
        warm_pool_off=warm_pool_off,
        predictive=predictive,
        predictive_off=predictive_off,
    )


def _fmt(value: float) -> str:
    return f"{value:g}"


def policy_flags_add(parser: Any) -> None:
    """The flags that shape the policy, as install_scaling_policy and export_scaling_stack
    both take them (text: ``policy_options_parse`` checks each with its own sentence)."""
    parser.add_argument(
        "--mode",
        help="per-instance (default): backlog / in-service instances; "
        "total: the raw count, as the old policy did.",
    )
    parser.add_argument("--target-value", help="Videos per in-service instance (per-instance) [3].")
    parser.add_argument(
        "--acceptable-wait",
        help="Seconds a video may wait; with --processing-time gives the target.",
    )
    parser.add_argument("--processing-time", help="Average seconds one worker needs for one video.")
    parser.add_argument(
        "--warmup",
        help=f"EstimatedInstanceWarmup in seconds, 0 to {MAX_WARMUP_SECONDS} [60].",
    )
    parser.add_argument(
        "--alarm-wait",
        help="Seconds the oldest video may wait before the wait alarm [--acceptable-wait, "
        "else 600].",
    )
    capacity_flags_add(parser)
