"""The CloudWatch dashboard of the group's scaling, built from ``metric_spec_get()``.

Every metric on it is either one the publisher writes, with the spec's
dimensions exactly, or an ``AWS/AutoScaling`` group metric this command
collects (its one dimension, the group's name). CloudWatch renders it; the
widgets are listed in docs/scaling-policy.md.

One fleet (no --all, --fleet, or --all with one fleet configured): the group's
own dashboard, ``<group>-scaling``. ``--all`` with several fleets: one dashboard,
``academy-fleets-scaling``, with a row per fleet (a heading, then that fleet's
widgets on its own metric, dimensions and group).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from scaling.metric_spec import MetricSpec
from scaling.policy.alarms import ALARM_KINDS, alarm_name
from scaling.policy.options import PolicyOptions
from scaling.policy.requests import (
    GROUP_METRICS,
    ApiRequest,
    per_instance_expression,
    wake_alarm_name,
)

_WIDTH, _HEIGHT = 12, 6
_NAME_LIMIT = 255
_SUFFIX = "-scaling"
FLEETS_DASHBOARD_NAME = "academy-fleets-scaling"
_HEADING_HEIGHT = 1
_ROWS_PER_FLEET = 4  # seven widgets, two a row


def dashboard_name(asg_name: str) -> str:
    """The group's name with what a dashboard name may not hold (only A-Z a-z 0-9 - _)
    turned into "-"."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", asg_name)
    return safe[: _NAME_LIMIT - len(_SUFFIX)] + _SUFFIX


def alarm_arn(*, group_arn: str, region: str, name: str) -> str:
    """An alarm's ARN, in the partition and account of the group's ARN."""
    parts = group_arn.split(":")
    return f"arn:{parts[1]}:cloudwatch:{region}:{parts[4]}:alarm:{name}"


def _published(spec: MetricSpec, name: str, options: dict[str, Any]) -> list[Any]:
    dimensions = [part for pair in spec.dimensions for part in pair]
    return [spec.namespace, name, *dimensions, options]


def _group(asg_name: str, name: str, options: dict[str, Any]) -> list[Any]:
    return ["AWS/AutoScaling", name, "AutoScalingGroupName", asg_name, options]


def _widget(index: int, kind: str, properties: dict[str, Any], top: int = 0) -> dict[str, Any]:
    return {
        "type": kind,
        "x": (index % 2) * _WIDTH,
        "y": top + (index // 2) * _HEIGHT,
        "width": _WIDTH,
        "height": _HEIGHT,
        "properties": properties,
    }


def _graph(region: str, title: str, metrics: list[list[Any]], **extra: Any) -> dict[str, Any]:
    return {
        "title": title,
        "region": region,
        "view": "timeSeries",
        "stacked": False,
        "metrics": metrics,
        **extra,
    }


def _fleet_widgets(
    *, spec: MetricSpec, options: PolicyOptions, region: str, group_arn: str, top: int = 0
) -> list[dict[str, Any]]:
    """One fleet's seven widgets, placed from row ``top`` down."""
    asg = options.asg_name
    period = spec.period_seconds
    target_line = {"label": f"target {options.target_value:g}", "value": options.target_value}
    if options.mode == "total":
        tracked = _graph(
            region,
            "Backlog tracked (mode total) and the target",
            [_published(spec, spec.metric_name, {"stat": "Average", "period": period})],
            annotations={"horizontal": [target_line]},
        )
    else:
        tracked = _graph(
            region,
            "Backlog per in-service instance and the target",
            [
                _published(
                    spec,
                    spec.metric_name,
                    {"id": "m1", "stat": "Average", "period": period, "visible": False},
                ),
                _group(
                    asg,
                    GROUP_METRICS[0],
                    {"id": "m2", "stat": "Average", "period": period, "visible": False},
                ),
                [
                    {
                        "id": "e1",
                        "expression": per_instance_expression(spec),
                        "label": "Backlog per in-service instance",
                    }
                ],
            ],
            annotations={"horizontal": [target_line]},
        )
    alarm_arns = [
        alarm_arn(group_arn=group_arn, region=region, name=name)
        for name in [*(alarm_name(asg, kind) for kind in ALARM_KINDS), wake_alarm_name(asg)]
    ]
    wait_arn = alarm_arns[ALARM_KINDS.index("wait-too-long")]
    widgets = [
        _graph(
            region,
            f"Published backlog ({spec.metric_name}: videos waiting or processing)",
            [_published(spec, spec.metric_name, {"stat": "Average", "period": period})],
        ),
        tracked,
        _graph(
            region,
            "Instances: desired, in service, maximum",
            [_group(asg, name, {"stat": "Average", "period": 60}) for name in GROUP_METRICS],
        ),
        # The wait-too-long alarm's own graph: its metric and its threshold (the
        # acceptable wait), so the line moves with the alarm and never disagrees with it.
        {
            "title": "Oldest waiting video (s) and the acceptable wait",
            "region": region,
            "view": "timeSeries",
            "stacked": False,
            "annotations": {"alarms": [wait_arn]},
        },
        _graph(
            region,
            f"Videos recovered from lost leases ({spec.recovered_metric_name})",
            [_published(spec, spec.recovered_metric_name, {"stat": "Sum", "period": 60})],
        ),
        _graph(
            region,
            f"Fleet: busy and protected instances ({spec.busy_metric_name}, "
            f"{spec.protected_metric_name})",
            [
                _published(spec, name, {"stat": "Maximum", "period": period})
                for name in (spec.busy_metric_name, spec.protected_metric_name)
            ],
        ),
        {"title": "Scaling alarms", "alarms": alarm_arns, "sortBy": "stateUpdatedTimestamp"},
    ]
    kinds = ["metric"] * 6 + ["alarm"]
    return [
        _widget(i, kind, w, top) for i, (kind, w) in enumerate(zip(kinds, widgets, strict=True))
    ]


def dashboard_body_build(
    *, spec: MetricSpec, options: PolicyOptions, region: str, group_arn: str
) -> dict[str, Any]:
    return {
        "start": "-PT6H",
        "periodOverride": "inherit",
        "widgets": _fleet_widgets(spec=spec, options=options, region=region, group_arn=group_arn),
    }


@dataclass(frozen=True)
class DashboardRow:
    """One fleet's row on the fleets dashboard."""

    fleet: str
    spec: MetricSpec
    options: PolicyOptions
    group_arn: str


def fleets_dashboard_body_build(*, rows: list[DashboardRow], region: str) -> dict[str, Any]:
    """One dashboard, a row per fleet: a heading, then the fleet's own seven widgets."""
    widgets: list[dict[str, Any]] = []
    band = _HEADING_HEIGHT + _ROWS_PER_FLEET * _HEIGHT
    for index, row in enumerate(rows):
        top = index * band
        heading = (
            f"## Fleet {row.fleet}: group {row.options.asg_name}, metric "
            f"{row.spec.namespace} {row.spec.metric_name} "
            + ", ".join(f"{name}={value}" for name, value in row.spec.dimensions)
        )
        widgets.append(
            {
                "type": "text",
                "x": 0,
                "y": top,
                "width": 2 * _WIDTH,
                "height": _HEADING_HEIGHT,
                "properties": {"markdown": heading},
            }
        )
        for widget in _fleet_widgets(
            spec=row.spec,
            options=row.options,
            region=region,
            group_arn=row.group_arn,
            top=top + _HEADING_HEIGHT,
        ):
            properties = widget["properties"]
            properties["title"] = f"{row.fleet}: {properties['title']}"
            widgets.append(widget)
    return {"start": "-PT6H", "periodOverride": "inherit", "widgets": widgets}


def fleets_dashboard_request_build(*, rows: list[DashboardRow], region: str) -> ApiRequest:
    body = fleets_dashboard_body_build(rows=rows, region=region)
    return ApiRequest(
        "cloudwatch",
        "PutDashboard",
        {
            "DashboardName": FLEETS_DASHBOARD_NAME,
            "DashboardBody": json.dumps(body, separators=(",", ":")),
        },
    )


def dashboard_request_build(
    *, spec: MetricSpec, options: PolicyOptions, region: str, group_arn: str
) -> ApiRequest:
    body = dashboard_body_build(spec=spec, options=options, region=region, group_arn=group_arn)
    return ApiRequest(
        "cloudwatch",
        "PutDashboard",
        {
            "DashboardName": dashboard_name(options.asg_name),
            "DashboardBody": json.dumps(body, separators=(",", ":")),
        },
    )


def dashboard_delete_request_build(*, asg_name: str | None = None) -> ApiRequest:
    """Delete the group's dashboard (None: the fleets dashboard)."""
    name = FLEETS_DASHBOARD_NAME if asg_name is None else dashboard_name(asg_name)
    return ApiRequest("cloudwatch", "DeleteDashboards", {"DashboardNames": [name]})
