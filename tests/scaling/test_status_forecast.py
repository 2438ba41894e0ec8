"""The predictive policy and AWS's forecast in scaling_status and the admin chart
(scaling.audit.forecast).

moto does not implement GetPredictiveScalingForecast (its server answers an HTML 500
page): on moto the status and the page say so in one line and the rest stands. The
forecast's own shapes come from botocore's Stubber, holding the exact request.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.test import Client

from devstack.localaws import local_client
from scaling.audit.charts import publication_chart_svg
from scaling.audit.forecast import Forecast, forecast_ahead
from scaling.audit.part import Part
from scaling.audit.report import predictive_lines
from scaling.audit.status import ScalingStatus
from scaling.policy.requests import PREDICTIVE_POLICY_NAME

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
NOW = datetime(2026, 3, 2, 9, 0, 0, tzinfo=UTC)
LIST_URL = "/admin/scaling/metricpublication/"
METRIC_SPECIFICATION: dict[str, Any] = {
    "TargetValue": 3.0,
    "CustomizedLoadMetricSpecification": {
        "MetricDataQueries": [
            {
                "Id": "load",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "Academy/VideoProcessing",
                        "MetricName": "BacklogCount",
                        "Dimensions": [
                            {"Name": "WorkerType", "Value": "Video"},
                            {"Name": "AutoScalingGroupName", "Value": ASG},
                        ],
                    },
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
        ]
    },
}
PREDICTIVE: dict[str, Any] = {
    "AutoScalingGroupName": ASG,
    "PolicyName": PREDICTIVE_POLICY_NAME,
    "PolicyARN": f"arn:aws:autoscaling:ap-northeast-2:123456789012:scalingPolicy:1:"
    f"autoScalingGroupName/{ASG}:policyName/{PREDICTIVE_POLICY_NAME}",
    "PolicyType": "PredictiveScaling",
    "PredictiveScalingConfiguration": {
        "MetricSpecifications": [METRIC_SPECIFICATION],
        "Mode": "ForecastOnly",
        "SchedulingBufferTime": 300,
        "MaxCapacityBreachBehavior": "HonorMaxCapacity",
    },
    "Alarms": [],
    "Enabled": True,
}


def _answer(start: datetime, hours: int = 3) -> dict[str, Any]:
    """GetPredictiveScalingForecast's answer as AWS documents it: hourly points."""
    stamps = [start + timedelta(hours=h) for h in range(hours)]
    return {
        "LoadForecast": [
            {
                "Timestamps": stamps,
                "Values": [12.0, 30.5, 8.0][:hours],
                "MetricSpecification": METRIC_SPECIFICATION,
            }
        ],
        "CapacityForecast": {"Timestamps": stamps, "Values": [4.0, 10.0, 3.0][:hours]},
        "UpdateTime": start - timedelta(hours=2),
    }


def _client() -> Any:
    return boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("autoscaling", region_name="ap-northeast-2")


def _request(start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "AutoScalingGroupName": ASG,
        "PolicyName": PREDICTIVE_POLICY_NAME,
        "StartTime": start,
        "EndTime": end,
    }


def _status(forecast: Forecast) -> list[str]:
    down: Part[Any] = Part(error="not read")
    status = ScalingStatus(
        asg_name=ASG,
        region="ap-northeast-2",
        database=down,
        publications=down,
        agreement=down,
        group=down,
        policies=down,
        alarms=down,
        aim=down,
        predictive=Part(data=forecast),
    )
    lines: list[str] = []
    predictive_lines(status, lines.append, lambda line: lines.append("! " + line))
    return lines


def test_the_next_24_hours_exact_request_and_answer() -> None:
    client = _client()
    stub = Stubber(client)
    stub.add_response(
        "get_predictive_scaling_forecast", _answer(NOW), _request(NOW, NOW + timedelta(hours=24))
    )
    with stub:
        forecast = forecast_ahead(client, ASG, policies=[PREDICTIVE], now=NOW)
    stub.assert_no_pending_responses()

    assert forecast.ok
    assert forecast.policy is not None
    assert (forecast.policy.mode, forecast.policy.buffer_seconds) == ("ForecastOnly", 300)
    assert [(p.at, p.value) for p in forecast.load] == [
        ("2026-03-02T09:00:00+00:00", 12.0),
        ("2026-03-02T10:00:00+00:00", 30.5),
        ("2026-03-02T11:00:00+00:00", 8.0),
    ]
    assert [p.value for p in forecast.capacity] == [4.0, 10.0, 3.0]
    assert _status(forecast) == [
        f"Predictive scaling: {PREDICTIVE_POLICY_NAME}, mode ForecastOnly, buffer 300 s.",
        "Forecast, 2026-03-02 09:00 to 2026-03-03 09:00 UTC "
        "(AWS updated it 2026-03-02T07:00:00+00:00):",
        "  hour (UTC)        load      capacity",
        "  2026-03-02 09:00  12        4",
        "  2026-03-02 10:00  30.5      10",
        "  2026-03-02 11:00  8         3",
    ]


@pytest.mark.parametrize(
    ("code", "message", "status", "reason"),
    [
        (
            "ValidationError",
            "No forecast data is available for the specified time range.",
            400,
            f"AWS has no forecast for {PREDICTIVE_POLICY_NAME} on {ASG} yet (No forecast data is "
            "available for the specified time range.); it forecasts once the metric has 24 "
            "hours of history",
        ),
        (
            "AccessDenied",
            "User: arn:aws:sts::123456789012:assumed-role/academy-status/x is not authorized "
            "to perform: autoscaling:GetPredictiveScalingForecast",
            403,
            "the role lacks autoscaling:GetPredictiveScalingForecast: attach "
            "deploy/iam/status.json to the role this host runs as",
        ),
        (
            "InvalidAction",
            "The action GetPredictiveScalingForecast is not valid for this web service.",
            400,
            "the endpoint the AWS endpoint does not implement GetPredictiveScalingForecast "
            "(a local endpoint such as moto has no forecasts; real AWS has)",
        ),
    ],
)
def test_why_not_in_one_sentence(code: str, message: str, status: int, reason: str) -> None:
    client = _client()
    stub = Stubber(client)
    stub.add_client_error(
        "get_predictive_scaling_forecast",
        service_error_code=code,
        service_message=message,
        http_status_code=status,
        expected_params=_request(NOW, NOW + timedelta(hours=24)),
    )
    with stub:
        forecast = forecast_ahead(client, ASG, policies=[PREDICTIVE], now=NOW)

    assert forecast.reason == reason
    assert _status(forecast)[-1] == f"! Forecast: none ({reason})."


def test_an_empty_answer_is_no_forecast_yet() -> None:
    client = _client()
    stub = Stubber(client)
    stub.add_response(
        "get_predictive_scaling_forecast",
        {
            "LoadForecast": [],
            "CapacityForecast": {"Timestamps": [], "Values": []},
            "UpdateTime": NOW,
        },
        _request(NOW, NOW + timedelta(hours=24)),
    )
    with stub:
        forecast = forecast_ahead(client, ASG, policies=[PREDICTIVE], now=NOW)

    assert forecast.reason == (
        f"AWS has no forecast for {PREDICTIVE_POLICY_NAME} on {ASG} yet: it forecasts once the "
        "metric has 24 hours of history"
    )


def test_no_predictive_policy_no_call() -> None:
    client = _client()
    with Stubber(client):  # any call would be unstubbed
        forecast = forecast_ahead(client, ASG, policies=[], now=NOW)
    assert forecast.policy is None
    assert _status(forecast) == [
        f"Predictive scaling: none (no predictive scaling policy on {ASG}: install_scaling_policy "
        f"--predictive forecast-only installs {PREDICTIVE_POLICY_NAME})."
    ]


def _predictive_on_moto(aws: dict[str, str]) -> None:
    autoscaling = local_client("autoscaling", aws["endpoint"], aws["region"])
    keys = ("PredictiveScalingConfiguration",)
    autoscaling.put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName=PREDICTIVE_POLICY_NAME,
        PolicyType="PredictiveScaling",
        **{k: PREDICTIVE[k] for k in keys},
    )


def test_on_moto_the_status_says_the_endpoint_cannot_and_the_rest_stands(
    aws: dict[str, str],
) -> None:
    _predictive_on_moto(aws)
    unimplemented = (
        f"the endpoint {aws['endpoint']} does not implement GetPredictiveScalingForecast "
        "(a local endpoint such as moto has no forecasts; real AWS has)"
    )

    out = StringIO()
    call_command("scaling_status", stdout=out)  # exits 0: a part down is a line
    lines = out.getvalue().splitlines()
    data = json.loads(_json())

    assert (
        f"Predictive scaling: {PREDICTIVE_POLICY_NAME}, mode ForecastOnly, buffer 300 s."
    ) in lines
    assert f"Forecast: none ({unimplemented})." in lines
    assert any(line.startswith("Capacity: min 0, max 10") for line in lines)
    assert data["predictive"]["ok"] is True
    assert data["predictive"]["data"]["reason"] == unimplemented
    assert data["predictive"]["data"]["policy"]["mode"] == "ForecastOnly"
    assert data["group"]["ok"] is True


def _json() -> str:
    out = StringIO()
    call_command("scaling_status", "--json", stdout=out)
    return out.getvalue()


def test_the_chart_draws_the_forecast_from_a_stubbed_answer(
    admin_client: Client, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.AWS_REGION = "ap-northeast-2"
    client = _client()
    stub = Stubber(client)
    stub.add_response("describe_policies", {"ScalingPolicies": [PREDICTIVE]})
    # The chart's window, whatever now is: any start and end, checked below.
    stub.add_response("get_predictive_scaling_forecast", _answer(_hour_ago()))
    stub.activate()
    monkeypatch.setattr("scaling.audit.forecast.autoscaling_client", lambda **kwargs: client)

    html = admin_client.get(LIST_URL + "?window=6h").content.decode()

    stub.assert_no_pending_responses()
    # Three hourly values, all inside the last 6 hours: three steps (each across its
    # hour, the last cut at now), dashed.
    assert 'data-forecast="3"' in html
    [line] = re.findall(r'<polyline class="series forecast"[^>]*points="([^"]+)"', html)
    points = [tuple(map(float, p.split(","))) for p in line.split()]
    assert len(points) == 6
    assert [p[1] for p in points[0::2]] == [p[1] for p in points[1::2]]  # flat in each hour
    assert '<g class="legend" data-series="forecast">' in html
    assert 'id="forecast-note"' not in html


def _hour_ago() -> datetime:
    return (datetime.now(UTC) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)


def test_the_chart_forecast_series_scales_with_the_backlog_axis() -> None:
    start = NOW - timedelta(hours=6)
    svg = publication_chart_svg(
        slots=[],
        start=start,
        end=NOW,
        forecast=[(start + timedelta(hours=h), v) for h, v in ((1, 12.0), (2, 30.5), (9, 8.0))],
    )
    # The point outside the window is left out; the axis reaches the forecast's peak (50).
    assert 'data-forecast="2"' in svg
    assert '<polyline class="series forecast"' in svg
    assert re.search(r'fill="#2b6cb0">50</text>', svg)


def test_on_moto_the_admin_says_why_there_is_no_forecast(
    admin_client: Client, aws: dict[str, str]
) -> None:
    _predictive_on_moto(aws)

    html = admin_client.get(LIST_URL).content.decode()

    assert response_ok(html)
    note = re.search(r'<p id="forecast-note"[^>]*>([^<]+)</p>', html)
    assert note is not None
    assert note.group(1) == (
        f"Forecast load not drawn: the endpoint {aws['endpoint']} does not implement "
        "GetPredictiveScalingForecast (a local endpoint such as moto has no forecasts; "
        "real AWS has)."
    )
    assert 'data-series="forecast"' not in html


def response_ok(html: str) -> bool:
    return 'id="publication-chart"' in html and 'id="fleet-table"' in html
