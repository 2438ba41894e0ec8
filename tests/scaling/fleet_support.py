"""Helpers for the fleet tests (scaling.fleet): a group with instances on moto's
server, the AWS calls the app makes, a reconciler run, a Stubber'd client."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.stub import Stubber

from devstack.localaws import local_aws_bootstrap, local_client
from scaling.aws import aws_call_observers, fleet_client
from scaling.fleet.marks import BUSY
from scaling.fleet.reconcile import FleetOutcome, fleet_reconcile
from scaling.state import state_store_get

ASG = "academy-video-worker-asg"
OTHER_ASG = "someone-elses-asg"
INTERVAL = 60

Call = tuple[str, str, str, dict[str, Any], int]


def group_instances(aws: Mapping[str, str], asg: str = ASG) -> dict[str, tuple[str, bool]]:
    """{instance id: (lifecycle state, protected)} as moto holds them (not through the app)."""
    autoscaling = local_client("autoscaling", aws["endpoint"], aws["region"])
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[asg])
    return {
        i["InstanceId"]: (i["LifecycleState"], i["ProtectedFromScaleIn"])
        for i in groups["AutoScalingGroups"][0]["Instances"]
    }


def protected_ids(aws: Mapping[str, str], asg: str = ASG) -> set[str]:
    return {i for i, (_, on) in group_instances(aws, asg).items() if on}


def group_resize(aws: Mapping[str, str], desired: int, asg: str = ASG) -> set[str]:
    """What target tracking does: set the desired capacity. Answers the instances left."""
    autoscaling = local_client("autoscaling", aws["endpoint"], aws["region"])
    autoscaling.set_desired_capacity(AutoScalingGroupName=asg, DesiredCapacity=desired)
    return set(group_instances(aws, asg))


def other_group(aws: Mapping[str, str], desired: int = 1) -> set[str]:
    """A second group in the same account and region, with instances of its own."""
    local_aws_bootstrap(aws["endpoint"], region=aws["region"], asg_name=OTHER_ASG, desired=desired)
    return set(group_instances(aws, OTHER_ASG))


def reconcile(now: float | None = None) -> FleetOutcome:
    return fleet_reconcile(
        store=state_store_get(),
        database_answered=True,
        now=time.time() if now is None else now,
        timeout_seconds=10,
    )


def grace_over(*instance_ids: str) -> None:
    """As if the instances were last seen busy a whole slot ago (time moves in the store)."""
    state_store_get().marks_set(BUSY, {i: time.time() - INTERVAL - 1 for i in instance_ids})


@pytest.fixture
def calls() -> Iterator[list[Call]]:
    """Every AWS call the app makes (answered by the endpoint), in order."""
    seen: list[Call] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        seen.append((role, service, operation, dict(params), status))

    aws_call_observers.append(observe)
    yield seen
    aws_call_observers.remove(observe)


def operations(seen: list[Call], name: str | None = None) -> list[Call]:
    return [c for c in seen if name is None or c[2] == name]


def ids_touched(seen: list[Call]) -> set[str]:
    """Every instance id a call named (protection in batches, lifecycle one at a time)."""
    touched: set[str] = set()
    for _, _, _, params, _ in seen:
        touched.update(params.get("InstanceIds", []))
        if "InstanceId" in params:
            touched.add(params["InstanceId"])
    return touched


# --- botocore's Stubber: what moto does not model (Terminating:Wait, throttling) ---------


def instance_described(instance_id: str, state: str, *, protected: bool = False) -> dict[str, Any]:
    """One instance as DescribeAutoScalingGroups documents it."""
    return {
        "InstanceId": instance_id,
        "InstanceType": "t3.small",
        "AvailabilityZone": "ap-northeast-2a",
        "LifecycleState": state,
        "HealthStatus": "Healthy",
        "LaunchTemplate": {
            "LaunchTemplateId": "lt-0123456789abcdef0",
            "LaunchTemplateName": f"{ASG}-template",
            "Version": "1",
        },
        "ProtectedFromScaleIn": protected,
    }


def group_described(*instances: dict[str, Any]) -> dict[str, Any]:
    return {
        "AutoScalingGroups": [
            {
                "AutoScalingGroupName": ASG,
                "AutoScalingGroupARN": "arn:aws:autoscaling:ap-northeast-2:123456789012:"
                f"autoScalingGroup:0b6a3a2e-1c5f-4d0e-9d43-1f4a7c9e2b11:autoScalingGroupName/{ASG}",
                "MinSize": 0,
                "MaxSize": 10,
                "DesiredCapacity": len(instances),
                "DefaultCooldown": 300,
                "AvailabilityZones": ["ap-northeast-2a"],
                "HealthCheckType": "EC2",
                "CreatedTime": datetime(2026, 1, 1, tzinfo=UTC),
                "Instances": list(instances),
            }
        ]
    }


def stubbed_fleet(monkeypatch: pytest.MonkeyPatch, *modules: str) -> Stubber:
    """The app's own fleet client (role publisher, observed), answering from a Stubber,
    for the reconciler (and the claim, with ``scaling.fleet.protection``)."""
    client = fleet_client()
    stub = Stubber(client)
    stub.activate()
    for module in modules or ("scaling.fleet.reconcile",):
        monkeypatch.setattr(f"{module}.fleet_client", lambda **kwargs: client)
    return stub
