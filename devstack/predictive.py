"""`make run`'s predictive scaling: what AWS does with install_scaling_policy --predictive.

moto's server stores a PredictiveScaling policy and forecasts nothing, so the local
control plane (``devstack.controlplane``) plays it: each period it reads the policy
back (from the control plane's one ``DescribePolicies``), reads the history of the
policy's load metric from the endpoint (``GetMetricData``, the last 14 days an hour at a
time, once an hour: ``HistoryCache``) and asks the very
functions the simulator's predictor runs (``scaling.simulation.forecast``:
``hourly_load``, ``forecast_day``, ``forecast_capacity``) for the capacity of the hour
that starts within the policy's SchedulingBufferTime. In ForecastAndScale the group
is held at least at that capacity (target tracking may ask more, never less: the
higher of the two, as AWS combines them); ForecastOnly changes nothing. With less
than 24 hours of history there is no forecast, as in AWS, and the plane says so.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from scaling.policy.aim import AimError
from scaling.policy.requests import PREDICTIVE_POLICY_NAME
from scaling.simulation.forecast import (
    HOUR_SECONDS,
    MAX_HISTORY_HOURS,
    MIN_HISTORY_HOURS,
    PredictiveSpec,
    forecast_capacity,
    forecast_day,
    hourly_load,
)

# PutScalingPolicy's words -> the simulator's (scaling.simulation.forecast.PredictiveSpec).
_MODES = {"ForecastOnly": "forecast-only", "ForecastAndScale": "forecast-and-scale"}
_BREACH = {"HonorMaxCapacity": "honor", "IncreaseMaxCapacity": "increase"}


@dataclass(frozen=True)
class InstalledPredictive:
    """The predictive policy as the endpoint holds it, in the simulator's terms."""

    spec: PredictiveSpec
    target: float
    load_metric: dict[str, Any]  # Namespace, MetricName, Dimensions of the load query


@dataclass(frozen=True)
class Forecast:
    """What the predictive policy asks this period: a capacity, or why none."""

    capacity: int | None  # None: no forecast (the reason says why)
    reason: str
    history_hours: int = 0


def predictive_parse(policies: Sequence[Mapping[str, Any]]) -> InstalledPredictive | None:
    """install_scaling_policy's predictive policy in ``ScalingPolicies``, or None.

    AimError (one sentence) when it is there but not the installer's shape: one
    metric specification with a TargetValue and a load query on a metric.
    """
    policy = next((p for p in policies if p.get("PolicyName") == PREDICTIVE_POLICY_NAME), None)
    if policy is None or policy.get("PolicyType") != "PredictiveScaling":
        return None
    config = policy.get("PredictiveScalingConfiguration") or {}
    specs = config.get("MetricSpecifications") or []
    load = (specs[0].get("CustomizedLoadMetricSpecification") or {}) if specs else {}
    queries = [q for q in load.get("MetricDataQueries", []) if q.get("MetricStat")]
    if len(specs) != 1 or not specs[0].get("TargetValue") or not queries:
        raise AimError(
            f"{PREDICTIVE_POLICY_NAME} is not install_scaling_policy's shape (one metric "
            "specification, a target, a load metric): reinstall it with --predictive"
        )
    return InstalledPredictive(
        spec=PredictiveSpec(
            mode=_MODES.get(str(config.get("Mode")), "forecast-only"),
            scheduling_buffer_seconds=int(config.get("SchedulingBufferTime") or 0),
            max_capacity_breach=_BREACH.get(str(config.get("MaxCapacityBreachBehavior")), "honor"),
            max_capacity_buffer=int(config.get("MaxCapacityBuffer") or 0),
        ),
        target=float(specs[0]["TargetValue"]),
        load_metric=dict(queries[0]["MetricStat"]["Metric"]),
    )


def load_history(cloudwatch: Any, metric: Mapping[str, Any], *, now: float) -> list[float]:
    """The load metric's hourly mean over the last 14 days, complete hours only, from
    the first hour with data (``hourly_load``: an hour without a datapoint is 0)."""
    this_hour = now - now % HOUR_SECONDS
    start = this_hour - MAX_HISTORY_HOURS * HOUR_SECONDS
    samples: list[tuple[float, float]] = []
    token: str | None = None
    while True:
        page = cloudwatch.get_metric_data(
            MetricDataQueries=[
                {
                    "Id": "load",
                    "MetricStat": {
                        "Metric": dict(metric),
                        "Period": HOUR_SECONDS,
                        "Stat": "Average",
                    },
                    "ReturnData": True,
                }
            ],
            StartTime=datetime.fromtimestamp(start, tz=UTC),
            EndTime=datetime.fromtimestamp(this_hour, tz=UTC),
            **({"NextToken": token} if token else {}),
        )
        for result in page["MetricDataResults"]:
            for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
                samples.append((stamp.timestamp(), float(value)))
        token = page.get("NextToken")
        if not token:
            break
    if not samples:
        return []
    first = min(seconds for seconds, _ in samples)
    first -= first % HOUR_SECONDS
    loads = hourly_load(sorted(samples), start_seconds=first)
    complete = int((this_hour - first) // HOUR_SECONDS)
    return (loads + [0.0] * complete)[:complete]


def forecast_now(
    installed: InstalledPredictive,
    history: Sequence[float],
    *,
    now: float,
    min_size: int,
    max_size: int,
) -> Forecast:
    """The capacity the policy holds at ``now``: the forecast hour that starts within
    SchedulingBufferTime (or the current one), from ``history`` (complete hours ending at
    the current hour's start)."""
    hours = len(history)
    if hours < MIN_HISTORY_HOURS:
        return Forecast(
            None,
            f"{hours} h of load history, AWS forecasts from {MIN_HISTORY_HOURS} h: no forecast",
            hours,
        )
    ahead = int((now % HOUR_SECONDS + installed.spec.scheduling_buffer_seconds) // HOUR_SECONDS)
    loads = forecast_day(history, hours=ahead + 1)
    capacity = forecast_capacity(
        loads[ahead],
        target=installed.target,
        min_size=min_size,
        max_size=max_size,
        spec=installed.spec,
    )
    hour = datetime.fromtimestamp(now - now % HOUR_SECONDS, tz=UTC) + timedelta(hours=ahead)
    return Forecast(
        capacity, f"forecast load {loads[ahead]:g} for {hour:%H:%M} UTC -> {capacity}", hours
    )


class HistoryCache:
    """The load history of the current hour: complete hours only, so it changes at the hour
    and one GetMetricData an hour is enough (not one a period)."""

    def __init__(self) -> None:
        self.key: tuple[float, str] | None = None
        self.loads: list[float] = []

    def get(self, cloudwatch: Any, metric: Mapping[str, Any], *, now: float) -> list[float]:
        key = (now - now % HOUR_SECONDS, repr(sorted(metric.items())))
        if key != self.key:
            self.loads = load_history(cloudwatch, metric, now=now)
            self.key = key
        return self.loads


def predictive_floor(
    policies: Sequence[Mapping[str, Any]],
    cloudwatch: Any,
    *,
    history: HistoryCache,
    now: float,
    min_size: int,
    max_size: int,
) -> tuple[int, str]:
    """(the capacity the installed predictive policy in ``policies`` (DescribePolicies'
    answer) holds the group at, a line saying why).

    0 without a predictive policy, in ForecastOnly, or without a forecast; AWS errors
    propagate (the control plane turns them into its one line).
    """
    installed = predictive_parse(policies)
    if installed is None:
        return 0, ""
    forecast = forecast_now(
        installed,
        history.get(cloudwatch, installed.load_metric, now=now),
        now=now,
        min_size=min_size,
        max_size=max_size,
    )
    if forecast.capacity is None:
        return 0, f"predictive: {forecast.reason}"
    if not installed.spec.scales:
        return 0, f"predictive (forecast only): {forecast.reason}, not applied"
    return forecast.capacity, f"predictive: {forecast.reason}"
