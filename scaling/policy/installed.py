"""What a DescribePolicies answer says is installed: the one parser of it.

``scaling_status`` lists every policy (``policies_parse``); the admin and
``make run``'s control plane read install_scaling_policy's target tracking
policy back (``installed_policy_parse``): per instance (metric math m1 / m2) or
total, its target, warmup, the metric it names, DisableScaleIn, and the
wake-from-zero step policy with its alarm's datapoints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from scaling.policy.aim import Mode
from scaling.policy.requests import TARGET_POLICY_NAME


class PolicyNotInstalled(LookupError):
    """No target tracking policy to read back; the message says what to do."""


@dataclass(frozen=True)
class ScalingPolicy:
    """One policy of the answer. Field names are the keys of ``scaling_status --json``."""

    name: str
    type: str | None
    target_value: float | None
    mode: Mode | None  # None when it tracks no backlog metric
    tracks: str | None  # the expression that returns data, or Namespace/MetricName
    warmup_seconds: int | None
    alarms: list[str]


@dataclass(frozen=True)
class InstalledPolicy:
    """install_scaling_policy's target tracking policy as read back, with its wake rule."""

    name: str
    mode: Mode
    target: float
    warmup_seconds: int
    metric: dict[str, Any]  # Namespace, MetricName, Dimensions of the tracked backlog
    stat: str
    scale_in: bool  # DisableScaleIn unset or false
    # The datapoints the wake-from-zero alarm needs; None: no wake rule (or no alarms given).
    wake_datapoints: int | None


@dataclass(frozen=True)
class _Tracked:
    mode: Mode
    tracks: str | None
    metric: dict[str, Any] | None
    stat: str


def _tracked(policy: dict[str, Any]) -> _Tracked | None:
    """What a policy's customized metric tracks; None for none (a step or predefined one)."""
    config = policy.get("TargetTrackingConfiguration") or {}
    custom = config.get("CustomizedMetricSpecification") or {}
    if "Metrics" in custom:
        queries = {m.get("Id"): m for m in custom["Metrics"]}
        tracks = next((m.get("Expression") for m in custom["Metrics"] if m.get("ReturnData")), None)
        backlog = queries.get("m1", {}).get("MetricStat")
        if backlog is None or "e1" not in queries:
            return _Tracked("per-instance", tracks, None, "Average")
        return _Tracked("per-instance", tracks, backlog["Metric"], backlog.get("Stat", "Average"))
    if "MetricName" in custom:
        metric = {k: custom[k] for k in ("Namespace", "MetricName") if k in custom}
        metric["Dimensions"] = custom.get("Dimensions", [])
        tracks = f"{custom.get('Namespace')}/{custom['MetricName']}"
        return _Tracked("total", tracks, metric, custom.get("Statistic", "Average"))
    return None


def policies_parse(policies: Sequence[dict[str, Any]]) -> list[ScalingPolicy]:
    """Every policy of DescribePolicies' ``ScalingPolicies``, in its order."""
    out = []
    for policy in policies:
        tracked = _tracked(policy)
        out.append(
            ScalingPolicy(
                name=policy["PolicyName"],
                type=policy.get("PolicyType"),
                target_value=(policy.get("TargetTrackingConfiguration") or {}).get("TargetValue"),
                mode=None if tracked is None else tracked.mode,
                tracks=None if tracked is None else tracked.tracks,
                warmup_seconds=policy.get("EstimatedInstanceWarmup"),
                alarms=[a["AlarmName"] for a in policy.get("Alarms", [])],
            )
        )
    return out


def installed_policy_parse(
    policies: Sequence[dict[str, Any]],
    *,
    asg_name: str,
    alarms: Sequence[dict[str, Any]] = (),
) -> InstalledPolicy:
    """The installer's policy in DescribePolicies' ``ScalingPolicies``; ``alarms``
    (DescribeAlarms' ``MetricAlarms``) give the wake alarm's datapoints.

    Raises PolicyNotInstalled when it is missing, tracks no customized metric, or its
    metric math is not the installer's m1 (backlog) / m2 (in service).
    """
    policy = next((p for p in policies if p.get("PolicyName") == TARGET_POLICY_NAME), None)
    target = (policy or {}).get("TargetTrackingConfiguration", {}).get("TargetValue")
    if policy is None or policy.get("PolicyType") != "TargetTrackingScaling" or not target:
        raise PolicyNotInstalled(
            f"no target tracking policy on {asg_name}: run manage.py install_scaling_policy"
        )
    tracked = _tracked(policy)
    if tracked is None:
        raise PolicyNotInstalled(
            f"{TARGET_POLICY_NAME} tracks no customized backlog metric: reinstall it with "
            "install_scaling_policy"
        )
    if tracked.metric is None:
        raise PolicyNotInstalled(
            f"{TARGET_POLICY_NAME}'s metric math is not m1 / m2 (backlog per in-service "
            "instance): reinstall it with install_scaling_policy"
        )
    config = policy["TargetTrackingConfiguration"]
    return InstalledPolicy(
        name=TARGET_POLICY_NAME,
        mode=tracked.mode,
        target=float(target),
        warmup_seconds=int(policy.get("EstimatedInstanceWarmup") or 0),
        metric=tracked.metric,
        stat=tracked.stat,
        scale_in=not config.get("DisableScaleIn", False),
        wake_datapoints=_wake_datapoints(policies, alarms),
    )


def _wake_datapoints(
    policies: Sequence[dict[str, Any]], alarms: Sequence[dict[str, Any]]
) -> int | None:
    """The datapoints the wake alarm needs, if a step policy that adds capacity has one."""
    arns = {
        p["PolicyARN"]
        for p in policies
        if p.get("PolicyType") == "StepScaling"
        and any(s.get("ScalingAdjustment", 0) > 0 for s in p.get("StepAdjustments", []))
    }
    for alarm in alarms if arns else ():
        if arns & set(alarm.get("AlarmActions", [])):
            return int(alarm.get("DatapointsToAlarm") or alarm.get("EvaluationPeriods") or 1)
    return None
