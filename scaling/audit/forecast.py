"""The predictive scaling policy and AWS's forecast, or one sentence why there is none.

install_scaling_policy ``--predictive`` puts a PredictiveScaling policy named
``PREDICTIVE_POLICY_NAME``; AWS forecasts its load metric and the capacity it would
schedule (``GetPredictiveScalingForecast``, hourly points), once it has 24 hours
of the metric's history. This module reads both, on the status role (it may call
GetPredictiveScalingForecast: deploy/iam/status.json), for ``scaling_status`` (the
next 24 hours) and the admin chart (its window: the forecast beside what happened).

A forecast never fails the rest: every failure is a ``reason`` sentence. moto does
not implement the call (its server answers an HTML error page): that too is a sentence.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError
from django.core.cache import cache

from scaling.audit.aws_errors import error_sentence
from scaling.audit.aws_reads import policies_describe
from scaling.aws import autoscaling_client
from scaling.conf import scaling_settings
from scaling.policy.requests import PREDICTIVE_POLICY_NAME

FORECAST_HOURS = 24  # scaling_status: from now to 24 h ahead
# The admin reads it at most this often per group and window (AWS updates it every 6 h).
FORECAST_CACHE_SECONDS = 300
_LIMIT = 300
_NOT_IMPLEMENTED = frozenset({"InvalidAction", "NotImplemented", "UnknownOperationException"})


@dataclass(frozen=True)
class PredictivePolicy:
    name: str
    mode: str | None  # ForecastOnly | ForecastAndScale
    buffer_seconds: int | None  # SchedulingBufferTime: launch this early
    max_capacity_breach: str | None  # HonorMaxCapacity | IncreaseMaxCapacity


@dataclass(frozen=True)
class ForecastPoint:
    at: str  # ISO 8601, UTC
    value: float


@dataclass(frozen=True)
class Forecast:
    """Field names are the keys of ``scaling_status --json``'s ``predictive``."""

    policy: PredictivePolicy | None
    start: str
    end: str
    load: list[ForecastPoint] = field(default_factory=list)
    capacity: list[ForecastPoint] = field(default_factory=list)
    updated: str | None = None
    reason: str = ""  # why there is no forecast; "" when there is one

    @property
    def ok(self) -> bool:
        return not self.reason


def predictive_policy_of(policies: list[dict[str, Any]]) -> PredictivePolicy | None:
    """install_scaling_policy's predictive policy in a DescribePolicies answer."""
    for policy in policies:
        if policy.get("PolicyName") != PREDICTIVE_POLICY_NAME:
            continue
        if policy.get("PolicyType") != "PredictiveScaling":
            continue
        config = policy.get("PredictiveScalingConfiguration") or {}
        return PredictivePolicy(
            name=PREDICTIVE_POLICY_NAME,
            mode=config.get("Mode"),
            buffer_seconds=config.get("SchedulingBufferTime"),
            max_capacity_breach=config.get("MaxCapacityBreachBehavior"),
        )
    return None


def _iso(at: Any) -> str:
    if isinstance(at, datetime):
        return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    return str(at)


def _points(series: dict[str, Any] | None) -> list[ForecastPoint]:
    if not series:
        return []
    return [
        ForecastPoint(_iso(at), float(value))
        for at, value in zip(series.get("Timestamps", []), series.get("Values", []), strict=False)
    ]


def forecast_reason(exc: BaseException, *, asg_name: str, policy: str) -> str:
    """Why GetPredictiveScalingForecast gave nothing, in one sentence."""
    endpoint = scaling_settings().endpoint_url or "the AWS endpoint"
    unimplemented = (
        f"the endpoint {endpoint} does not implement GetPredictiveScalingForecast "
        "(a local endpoint such as moto has no forecasts; real AWS has)"
    )
    if isinstance(exc, ResponseParserError):
        return unimplemented
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if code in _NOT_IMPLEMENTED or status == 501:
            return unimplemented
        if code == "ValidationError":
            message = " ".join(str(error.get("Message", "")).split())[:160]
            return (
                f"AWS has no forecast for {policy} on {asg_name} yet ({message}); it forecasts "
                "once the metric has 24 hours of history"
            )
    return error_sentence(exc, role="status", limit=_LIMIT)


def forecast_read(
    autoscaling: Any,
    asg_name: str,
    *,
    policies: list[dict[str, Any]] | None,
    start: datetime,
    end: datetime,
    policies_error: str = "",
) -> Forecast:
    """The predictive policy and its forecast from ``start`` to ``end``; never raises.

    ``policies``: DescribePolicies' answer already read (None: it failed, for
    ``policies_error``'s reason).
    """
    begins, ends = _iso(start), _iso(end)
    if policies is None:
        return Forecast(
            None, start=begins, end=ends, reason=f"the policies were not read ({policies_error})"
        )
    policy = predictive_policy_of(policies)
    if policy is None:
        return Forecast(
            None,
            start=begins,
            end=ends,
            reason=(
                f"no predictive scaling policy on {asg_name}: install_scaling_policy "
                f"--predictive forecast-only installs {PREDICTIVE_POLICY_NAME}"
            ),
        )
    try:
        answer = autoscaling.get_predictive_scaling_forecast(
            AutoScalingGroupName=asg_name, PolicyName=policy.name, StartTime=start, EndTime=end
        )
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        reason = forecast_reason(exc, asg_name=asg_name, policy=policy.name)
        return Forecast(policy, start=begins, end=ends, reason=reason)
    loads = answer.get("LoadForecast") or []
    load = _points(loads[0] if loads else None)
    capacity = _points(answer.get("CapacityForecast"))
    if not load and not capacity:
        reason = (
            f"AWS has no forecast for {policy.name} on {asg_name} yet: it forecasts once the "
            "metric has 24 hours of history"
        )
        return Forecast(policy, start=begins, end=ends, reason=reason)
    updated = answer.get("UpdateTime")
    return Forecast(
        policy,
        start=begins,
        end=ends,
        load=load,
        capacity=capacity,
        updated=None if updated is None else _iso(updated),
    )


def forecast_ahead(
    autoscaling: Any,
    asg_name: str,
    *,
    policies: list[dict[str, Any]] | None,
    policies_error: str = "",
    now: datetime | None = None,
) -> Forecast:
    """scaling_status's forecast: the next FORECAST_HOURS hours."""
    start = (now or datetime.now(UTC)).replace(microsecond=0)
    return forecast_read(
        autoscaling,
        asg_name,
        policies=policies,
        policies_error=policies_error,
        start=start,
        end=start + timedelta(hours=FORECAST_HOURS),
    )


def forecast_page_get(*, asg_name: str, start: datetime, end: datetime, window: str) -> Forecast:
    """For the admin chart: its window's forecast, one short attempt per call to AWS,
    remembered for FORECAST_CACHE_SECONDS per group and window (answer or reason)."""
    key = f"scaling:forecast:{asg_name}:{window}"
    cached = cache.get(key)
    if cached is not None:
        return cast("Forecast", cached)
    policies: list[dict[str, Any]] | None
    try:
        autoscaling = autoscaling_client(role="status", for_page=True)
        policies, error = policies_describe(autoscaling, asg_name), ""
    except (BotoCoreError, ClientError, ResponseParserError) as exc:
        autoscaling, policies = None, None
        error = error_sentence(exc, role="status", limit=_LIMIT)
    result = forecast_read(
        autoscaling, asg_name, policies=policies, policies_error=error, start=start, end=end
    )
    cache.set(key, result, FORECAST_CACHE_SECONDS)
    return result
