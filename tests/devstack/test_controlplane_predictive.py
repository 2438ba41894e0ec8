"""`make run`'s control plane plays the predictive policy (devstack.predictive) on moto.

moto stores a PredictiveScaling policy and forecasts nothing; the control plane reads
it back and the load metric's history from the endpoint and asks the simulator's own
forecast functions (scaling.simulation.forecast) for the capacity of the hour that
starts within the scheduling buffer. The history is put into moto's CloudWatch an
hour at a time, a burst at the same hour of each day.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from devstack.controlplane import ControlPlane
from devstack.localaws import local_client
from devstack.predictive import (
    InstalledPredictive,
    forecast_now,
    load_history,
    predictive_parse,
)
from scaling.metric_spec import metric_spec_get
from scaling.policy.aim import AimError
from scaling.policy.requests import PREDICTIVE_POLICY_NAME, published_metric
from scaling.simulation.forecast import PredictiveSpec

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
HOUR = 3600
BURST = 30  # the backlog at the burst hour of every day; target 3 -> 10 instances


def _predictive_policy(mode: str, *, target: float = 3.0, buffer: int = 300) -> dict[str, Any]:
    """The PutScalingPolicy install_scaling_policy --predictive sends (its load query)."""
    backlog = {"Metric": published_metric(metric_spec_get()), "Unit": "Count"}
    return {
        "AutoScalingGroupName": ASG,
        "PolicyName": PREDICTIVE_POLICY_NAME,
        "PolicyType": "PredictiveScaling",
        "PredictiveScalingConfiguration": {
            "MetricSpecifications": [
                {
                    "TargetValue": target,
                    "CustomizedLoadMetricSpecification": {
                        "MetricDataQueries": [
                            {
                                "Id": "load",
                                "MetricStat": {**backlog, "Stat": "Sum"},
                                "ReturnData": True,
                            }
                        ]
                    },
                    "CustomizedScalingMetricSpecification": {
                        "MetricDataQueries": [
                            {
                                "Id": "scaling",
                                "MetricStat": {**backlog, "Stat": "Average"},
                                "ReturnData": True,
                            }
                        ]
                    },
                }
            ],
            "Mode": mode,
            "SchedulingBufferTime": buffer,
            "MaxCapacityBreachBehavior": "HonorMaxCapacity",
        },
    }


def _history(cloudwatch: Any, *, this_hour: float, hours: int, burst_hour: float) -> None:
    """``hours`` hours of published backlog before ``this_hour``: BURST at the hour of the
    day of ``burst_hour``, 0 otherwise (one datapoint a minute into each hour)."""
    spec = metric_spec_get()
    for back in range(hours, 0, -1):
        start = this_hour - back * HOUR
        value = BURST if (burst_hour - start) % (24 * HOUR) == 0 else 0
        cloudwatch.put_metric_data(
            Namespace=spec.namespace,
            MetricData=[
                {
                    "MetricName": spec.metric_name,
                    "Dimensions": spec.dimensions_api(),
                    "Timestamp": datetime.fromtimestamp(start + 60, tz=UTC),
                    "Value": value,
                    "Unit": spec.unit,
                }
            ],
        )


@pytest.fixture
def clients(aws: dict[str, str]) -> dict[str, Any]:
    return {
        name: local_client(name, aws["endpoint"], aws["region"])
        for name in ("autoscaling", "cloudwatch", "ec2")
    }


def _plane(clients: dict[str, Any]) -> ControlPlane:
    return ControlPlane(
        autoscaling=clients["autoscaling"],
        cloudwatch=clients["cloudwatch"],
        ec2=clients["ec2"],
        asg_name=ASG,
        interval_seconds=60,
        boot_seconds=0,
    )


def _setup(clients: dict[str, Any], mode: str, *, hours: int) -> float:
    """Target tracking and the predictive policy installed, ``hours`` of history; the
    evaluation time returned is 2 minutes before the next hour, whose load is the burst."""
    call_command("install_scaling_policy", "--target-value", "3", stdout=StringIO())
    clients["autoscaling"].put_scaling_policy(**_predictive_policy(mode))
    this_hour = time.time() // HOUR * HOUR
    _history(clients["cloudwatch"], this_hour=this_hour, hours=hours, burst_hour=this_hour + HOUR)
    return this_hour + HOUR - 120


def _desired(clients: dict[str, Any]) -> int:
    group = clients["autoscaling"].describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    return int(group["AutoScalingGroups"][0]["DesiredCapacity"])


def test_forecast_and_scale_raises_the_group_before_the_burst_hour(
    clients: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    now = _setup(clients, "ForecastAndScale", hours=48)
    period = _plane(clients).step(now=now)
    assert period is not None
    # Target tracking alone sees no datapoint and asks nothing; the forecast asks 30 / 3.
    assert (period.predictive, period.set_to, _desired(clients)) == (10, 10, 10)
    assert period.reason == "predictive forecast"
    assert any("forecast load 30 for" in r.getMessage() for r in caplog.records)


def test_forecast_only_forecasts_and_changes_nothing(
    clients: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    now = _setup(clients, "ForecastOnly", hours=48)
    period = _plane(clients).step(now=now)
    assert period is not None
    assert (period.predictive, period.set_to, _desired(clients)) == (0, 0, 0)
    said = [r.getMessage() for r in caplog.records if "forecast only" in r.getMessage()]
    assert said
    assert "-> 10, not applied" in said[0]


def test_less_than_a_day_of_history_is_no_forecast_and_said(
    clients: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    now = _setup(clients, "ForecastAndScale", hours=20)
    period = _plane(clients).step(now=now)
    assert period is not None
    assert (period.predictive, _desired(clients)) == (0, 0)
    said = [r.getMessage() for r in caplog.records if "predictive:" in r.getMessage()]
    assert said == [
        "control plane: predictive: 20 h of load history, AWS forecasts from 24 h: no forecast"
    ]


def test_the_history_is_read_back_an_hour_at_a_time(clients: dict[str, Any], aws: Any) -> None:
    this_hour = time.time() // HOUR * HOUR
    _history(clients["cloudwatch"], this_hour=this_hour, hours=30, burst_hour=this_hour)
    loads = load_history(clients["cloudwatch"], published_metric(metric_spec_get()), now=this_hour)
    assert len(loads) == 30
    assert [i for i, load in enumerate(loads) if load] == [6]  # 24 h before this hour


def test_the_scheduling_buffer_decides_which_hour_is_held() -> None:
    installed = InstalledPredictive(
        spec=PredictiveSpec(mode="forecast-and-scale", scheduling_buffer_seconds=300),
        target=3.0,
        load_metric={},
    )
    # 47 complete hours; "now" is in hour 47; bursts in hours 0 and 24, days before hour 48:
    # its forecast is 30 (10 instances, MaxSize 8), the current hour's 0.
    ahead = [30.0] + [0.0] * 23 + [30.0] + [0.0] * 22
    assert (
        forecast_now(installed, ahead, now=HOUR * 47 + 3400, min_size=0, max_size=8).capacity == 8
    )
    assert (
        forecast_now(installed, ahead, now=HOUR * 47 + 3000, min_size=0, max_size=8).capacity == 0
    )


def test_a_predictive_policy_of_another_shape_is_one_sentence() -> None:
    policy = _predictive_policy("ForecastAndScale")
    policy["PredictiveScalingConfiguration"]["MetricSpecifications"][0].pop(
        "CustomizedLoadMetricSpecification"
    )
    with pytest.raises(AimError, match="reinstall it with --predictive"):
        predictive_parse([policy])
    assert predictive_parse([]) is None


def test_the_load_history_is_read_once_an_hour_and_the_policies_once_a_period(
    clients: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = _setup(clients, "ForecastAndScale", hours=48)
    calls: list[str] = []
    for service, method in (
        ("cloudwatch", "get_metric_data"),
        ("autoscaling", "describe_policies"),
    ):
        real = getattr(clients[service], method)

        def counted(*args: Any, _real: Any = real, _name: str = method, **kwargs: Any) -> Any:
            queries = kwargs.get("MetricDataQueries", [{}])
            hourly = queries[0].get("MetricStat", {}).get("Period") == HOUR
            calls.append("history" if hourly else _name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(clients[service], method, counted)
    plane = _plane(clients)

    assert plane.step(now=now - 60) is not None
    assert plane.step(now=now) is not None  # the same hour: the history is not read again
    assert plane.step(now=now + 180) is not None  # the next hour: read again

    assert calls.count("history") == 2
    assert calls.count("describe_policies") == 3
