"""What a simulated run costs: instances, their volumes, the warm pool, and CloudWatch.

The prices are options (``price_flags_add``) whose defaults are us-east-1 public
list prices (``PRICES_REGION``, ``PRICES_TAKEN``; docs/simulator.md names the
pages). What CloudWatch bills is counted from what the installer really sends
for the run's period: its alarms (``scaling.policy.alarms``, the wake alarm of
``scaling.policy.requests``), the two alarms AWS creates for the target tracking
policy, the dashboard, and the metrics the publisher writes with one
PutMetricData call a slot. Nothing is sent to AWS.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from typing import Any

from scaling.metric_spec import metric_spec_get
from scaling.policy.alarms import alarm_requests_build
from scaling.policy.options import PolicyOptions
from scaling.policy.requests import (
    ApiRequest,
    target_tracking_configuration_build,
    wake_alarm_request_build,
    wake_policy_arn_placeholder,
)
from scaling.publishing.cloudwatch import metric_datums_build
from scaling.simulation.policy import SimulationError
from scaling.simulation.result import SimResult
from scaling.simulation.warm_pool import pool_target

PRICES_REGION = "us-east-1"
PRICES_TAKEN = "2026-12-04"
PRICES_SOURCE = (
    f"{PRICES_REGION} public list prices as of {PRICES_TAKEN}, taken from AWS's published "
    "pricing pages (aws.amazon.com/ec2/pricing/on-demand, aws.amazon.com/ebs/pricing, "
    "aws.amazon.com/cloudwatch/pricing) from our records, not fetched"
)
HOURS_PER_MONTH = 730  # AWS's month for prorating monthly prices
HIGH_RESOLUTION_BELOW = 60  # an alarm whose period is under 60 s is high-resolution
TARGET_TRACKING_ALARMS = 2  # AlarmHigh and AlarmLow, created by AWS for the policy


@dataclass(frozen=True)
class Prices:
    """Dollars. Month = HOURS_PER_MONTH hours."""

    instance_hour: float = 0.34  # c6i.2xlarge on-demand, Linux
    volume_gb: float = 30.0  # each instance's EBS volume
    volume_gb_month: float = 0.08  # gp3
    metric_month: float = 0.30  # custom metric, first 10,000 (any resolution)
    alarm_metric_month: float = 0.10  # standard resolution, per metric the alarm reads
    alarm_metric_month_high_resolution: float = 0.30
    api_thousand: float = 0.01  # PutMetricData, per 1,000 requests
    dashboard_month: float = 3.0

    def __post_init__(self) -> None:
        for flag, (field, _) in PRICE_FLAGS.items():
            value = getattr(self, field)
            if not (math.isfinite(value) and value >= 0):
                raise SimulationError(f"{flag} must be a number 0 or more, got {value:g}")

    def as_json(self) -> dict[str, Any]:
        return {
            **{f.name: getattr(self, f.name) for f in fields(self)},
            "source": PRICES_SOURCE,
        }

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> Prices:
        """From the command's options (PRICE_FLAGS' destinations); a missing one keeps its
        default."""
        given = {f: options[d] for d, f in _DESTS.items() if options.get(d) is not None}
        return replace(cls(), **given)


# flag -> (Prices field, help)
PRICE_FLAGS: dict[str, tuple[str, str]] = {
    "--instance-price": ("instance_hour", "Dollars per instance-hour"),
    "--volume-gb": ("volume_gb", "GB of EBS volume per instance"),
    "--volume-price": ("volume_gb_month", "Dollars per GB-month of EBS volume"),
    "--metric-price": ("metric_month", "Dollars per custom metric-month"),
    "--alarm-price": ("alarm_metric_month", "Dollars per standard alarm metric-month"),
    "--alarm-price-high-resolution": (
        "alarm_metric_month_high_resolution",
        "Dollars per high-resolution (period < 60 s) alarm metric-month",
    ),
    "--api-price": ("api_thousand", "Dollars per 1,000 PutMetricData requests"),
    "--dashboard-price": ("dashboard_month", "Dollars per dashboard-month"),
}
_DESTS = {flag[2:].replace("-", "_"): field for flag, (field, _) in PRICE_FLAGS.items()}


def _price_type(flag: str) -> Any:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise argparse.ArgumentTypeError(
                f"give a number 0 or more (dollars; GB for --volume-gb), got {raw!r}"
            )
        return value

    return parse


def price_flags_add(parser: Any) -> None:
    """The price options of simulate_scaling (--recommend's bill), defaults PRICES_SOURCE."""
    group = parser.add_argument_group(
        f"prices (the bill; defaults: {PRICES_REGION} list prices of {PRICES_TAKEN})"
    )
    defaults = Prices()
    for flag, (field, text) in PRICE_FLAGS.items():
        group.add_argument(
            flag,
            type=_price_type(flag),
            metavar="N",
            help=f"{text} [{getattr(defaults, field):g}].",
        )


# --------------------------------------------------------------------------- CloudWatch


@dataclass(frozen=True)
class CloudWatchUse:
    """What the installed policy and the publisher hold in CloudWatch at one period."""

    period_seconds: int
    metrics: int  # custom metrics the publisher writes
    alarm_metrics: int  # standard resolution, summed over alarms
    alarm_metrics_high_resolution: int
    alarms: int
    calls_per_slot: int  # PutMetricData requests each publishing slot
    dashboards: int = 1

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def _alarm_metrics(request: ApiRequest) -> tuple[int, int]:
    """(metrics it reads, its period): a metric math alarm is billed per metric it reads."""
    params = request.params
    if "Metrics" in params:
        stats = [q["MetricStat"] for q in params["Metrics"] if "MetricStat" in q]
        return len(stats), min(s["Period"] for s in stats)
    return 1, params["Period"]


def cloudwatch_use(*, period_seconds: int, mode: str, target: float, warmup: int) -> CloudWatchUse:
    """Count what install_scaling_policy would install for this period (no AWS call)."""
    spec = replace(
        metric_spec_get(),
        period_seconds=period_seconds,
        storage_resolution=1 if period_seconds < HIGH_RESOLUTION_BELOW else 60,
    )
    options = PolicyOptions(
        asg_name=spec.asg_name,
        mode=mode,  # type: ignore[arg-type]
        target_value=target,
        warmup_seconds=warmup,
        target_derivation="simulate_scaling",
    )
    alarms = [
        wake_alarm_request_build(
            spec=spec, options=options, wake_policy_arn=wake_policy_arn_placeholder()
        ),
        *alarm_requests_build(spec=spec, options=options).values(),
    ]
    counted = [_alarm_metrics(r) for r in alarms]
    # Target tracking's own alarms read the policy's metric (both m1 and m2 of
    # backlog per instance), at the policy's period.
    tracked = target_tracking_configuration_build(spec=spec, options=options)[
        "CustomizedMetricSpecification"
    ]
    tracked_metrics = (
        sum(1 for q in tracked["Metrics"] if "MetricStat" in q) if "Metrics" in tracked else 1
    )
    counted += [(tracked_metrics, period_seconds)] * TARGET_TRACKING_ALARMS
    datums = metric_datums_build(
        spec=spec,
        timestamp=datetime(2026, 1, 1, tzinfo=UTC),
        backlog=0,
        oldest_age_seconds=0.0,
        recovered=0,
        busy_instances=0,
        protected_instances=0,
    )
    return CloudWatchUse(
        period_seconds=period_seconds,
        metrics=len({d["MetricName"] for d in datums}),
        alarm_metrics=sum(n for n, p in counted if p >= HIGH_RESOLUTION_BELOW),
        alarm_metrics_high_resolution=sum(n for n, p in counted if p < HIGH_RESOLUTION_BELOW),
        alarms=len(counted),
        calls_per_slot=1,  # one namespace, far under 1,000 datums
    )


# --------------------------------------------------------------------------- the bill


@dataclass(frozen=True)
class Bill:
    """Dollars for the measured window (``window_seconds``)."""

    window_seconds: float
    instance: float  # in-group instances (pending, in service, draining)
    volumes: float  # their volumes and the warm pool's
    pool: float  # warm pool instances kept Running
    metrics: float
    alarms: float
    api: float
    dashboard: float
    total: float
    use: CloudWatchUse

    @property
    def cloudwatch(self) -> float:
        return self.metrics + self.alarms + self.api + self.dashboard

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            name: round(getattr(self, name), 6)
            for name in (
                "window_seconds",
                "instance",
                "volumes",
                "pool",
                "metrics",
                "alarms",
                "api",
                "dashboard",
                "cloudwatch",
                "total",
            )
        }
        out["cloudwatch_use"] = self.use.as_json()
        return out


def measured_window(result: SimResult) -> float:
    """Seconds the result's figures cover: from the measured part's start to the end."""
    return result.simulated_seconds - result.measured_from_seconds


def bill(result: SimResult, *, prices: Prices, window_seconds: float | None = None) -> Bill:
    """The run's bill over its measured window, or over ``window_seconds`` when several
    runs are compared on one window (the group then rests at MinSize, and any warm pool
    at its minimum, after the run ended)."""
    own = measured_window(result)
    window = own if window_seconds is None else max(window_seconds, own)
    policy = result.policy
    rest = window - own
    instance_seconds = result.instance_seconds + rest * policy.rules.min_size
    pool_running = result.pool_running_seconds
    pool_stopped = result.pool_stopped_seconds
    spec = policy.warm_pool
    if spec is not None and rest > 0:
        # At rest the group holds MinSize and the pool its size for that capacity.
        resting = rest * pool_target(
            policy.rules.min_size, max_size=policy.rules.max_size, spec=spec
        )
        if spec.pays_instance:
            pool_running += resting
        else:
            pool_stopped += resting
    hours = window / 3600
    months = hours / HOURS_PER_MONTH
    volume_hour = prices.volume_gb * prices.volume_gb_month / HOURS_PER_MONTH
    instance = instance_seconds / 3600 * prices.instance_hour
    volumes = (instance_seconds + pool_running + pool_stopped) / 3600 * volume_hour
    pool = pool_running / 3600 * prices.instance_hour
    use = cloudwatch_use(
        period_seconds=result.period_seconds,
        mode=policy.rules.mode,
        target=policy.rules.target,
        warmup=policy.warmup_seconds,
    )
    metrics = use.metrics * prices.metric_month * months
    alarms = (
        use.alarm_metrics * prices.alarm_metric_month
        + use.alarm_metrics_high_resolution * prices.alarm_metric_month_high_resolution
    ) * months
    requests = math.ceil(window / result.period_seconds) * use.calls_per_slot
    api = requests / 1000 * prices.api_thousand
    dashboard = use.dashboards * prices.dashboard_month * months
    return Bill(
        window_seconds=window,
        instance=instance,
        volumes=volumes,
        pool=pool,
        metrics=metrics,
        alarms=alarms,
        api=api,
        dashboard=dashboard,
        total=instance + volumes + pool + metrics + alarms + api + dashboard,
        use=use,
    )
