"""The warm pool in scaling_status (text and --json) and in the admin's fleet table
(scaling.audit.warm_pool, scaling.audit.fleet).

moto keeps a pool's configuration (PutWarmPool, DescribeWarmPool) but lists no pool
instances (``Instances: []``): the instances come from DescribeWarmPool answers in
the shapes AWS documents (botocore's Stubber, or the parser fed one).
"""

from __future__ import annotations

import json
from io import StringIO
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from django.core.management import call_command
from django.test import Client

from devstack.localaws import local_client
from scaling.audit.warm_pool import WarmPool, warm_pool_line, warm_pool_of
from scaling.fleet.pool import POOL_PAGE
from tests.factories import video_leased
from tests.scaling.fleet_support import ASG, group_described, instance_described

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/scaling/metricpublication/"
IN_SERVICE = "i-0abc0000000000e01"
STOPPED = "i-0abc0000000000e02"
RETURNING = "i-0abc0000000000e03"
CONFIGURATION = {
    "MinSize": 1,
    "MaxGroupPreparedCapacity": 4,
    "PoolState": "Stopped",
    "InstanceReusePolicy": {"ReuseOnScaleIn": True},
}


def _pooled(instance_id: str, state: str) -> dict[str, Any]:
    return {**instance_described(instance_id, state), "ProtectedFromScaleIn": False}


def _status(*args: str) -> str:
    out = StringIO()
    call_command("scaling_status", *args, stdout=out)
    return out.getvalue()


def test_a_pool_put_on_moto_shows_its_configuration(aws: dict[str, str]) -> None:
    local_client("autoscaling", aws["endpoint"], aws["region"]).put_warm_pool(
        AutoScalingGroupName=ASG, **CONFIGURATION
    )

    lines = _status().splitlines()
    data = json.loads(_status("--json"))

    assert (
        "Warm pool: min 1, max group prepared capacity 4, pool state Stopped, reuse on "
        "scale-in yes; 0 instances: no instances."
    ) in lines
    assert data["warm_pool"] == {
        "ok": True,
        "error": "",
        "data": {
            "configured": True,
            "min_size": 1,
            "max_group_prepared_capacity": 4,
            "pool_state": "Stopped",
            "status": None,
            "reuse_on_scale_in": True,
            "instances": [],
            "complete": True,
        },
    }


def test_no_pool_is_said_plainly(aws: dict[str, str]) -> None:
    data = json.loads(_status("--json"))
    assert data["warm_pool"]["data"]["configured"] is False
    assert "Warm pool: none (install_scaling_policy --warm-pool adds one)." in _status()


def test_the_pool_and_its_instances_in_the_status(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool's instances by state, and each listed in the fleet, marked as in the pool."""
    pool = warm_pool_of(
        CONFIGURATION,
        [_pooled(STOPPED, "Warmed:Stopped"), _pooled(RETURNING, "Warmed:Pending:Wait")],
    )
    monkeypatch.setattr("scaling.audit.status.warm_pool_read", lambda client, name: pool)
    video_leased(instance_id=RETURNING, expires_in=120)

    lines = _status().splitlines()
    data = json.loads(_status("--json"))

    assert (
        "Warm pool: min 1, max group prepared capacity 4, pool state Stopped, reuse on "
        "scale-in yes; 2 instances: 1 Warmed:Pending:Wait, 1 Warmed:Stopped."
    ) in lines
    start = lines.index(
        "Fleet: 0 in the group, 1 busy, 0 protected from scale-in, 2 in the warm pool:"
    )
    assert lines[start + 1 : start + 3] == [
        f"  {STOPPED} Warmed:Stopped (in the warm pool): idle",
        f"  {RETURNING} Warmed:Pending:Wait (in the warm pool): video "
        f"{lines[start + 2].split('video ')[1]}",
    ]
    members = {i["instance_id"]: i for i in data["fleet"]["data"]["instances"]}
    assert members[STOPPED]["in_pool"] is True
    assert members[STOPPED]["protected"] is None  # AWS protects no pool instance
    assert data["warm_pool"]["data"]["instances"] == [
        {"instance_id": STOPPED, "state": "Warmed:Stopped"},
        {"instance_id": RETURNING, "state": "Warmed:Pending:Wait"},
    ]


def test_a_pool_being_deleted_and_a_default_capacity() -> None:
    pool = warm_pool_of(
        {
            "MinSize": 0,
            "MaxGroupPreparedCapacity": -1,
            "PoolState": "Running",
            "Status": "PendingDelete",
        },
        [],
    )
    assert warm_pool_line(pool) == (
        "Warm pool: min 0, max group prepared capacity the group's max, pool state Running, "
        "reuse on scale-in no; PendingDelete; 0 instances: no instances."
    )
    assert warm_pool_of(None, [_pooled(STOPPED, "Warmed:Stopped")]) == WarmPool(configured=False)


def test_the_admin_fleet_table_lists_pool_instances(
    admin_client: Client, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("autoscaling", region_name="ap-northeast-2")
    stub = Stubber(client)
    described = group_described(instance_described(IN_SERVICE, "InService"))
    described["AutoScalingGroups"][0]["WarmPoolConfiguration"] = CONFIGURATION
    stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [ASG]})
    stub.add_response(
        "describe_warm_pool",
        {"WarmPoolConfiguration": CONFIGURATION, "Instances": [_pooled(STOPPED, "Warmed:Stopped")]},
        {"AutoScalingGroupName": ASG, "MaxRecords": POOL_PAGE},
    )
    stub.activate()
    monkeypatch.setattr("scaling.audit.fleet.autoscaling_client", lambda **kwargs: client)

    html = admin_client.get(LIST_URL).content.decode()

    stub.assert_no_pending_responses()
    rows = html.split('<table id="fleet-table">', 1)[1].split("</table>", 1)[0]
    assert (
        "Fleet: 1 in the group, 0 busy, 0 protected from scale-in, 1 in the warm pool</caption>"
    ) in rows
    assert (
        f'<tr><td>{STOPPED}</td><td class="in-pool" data-pool="yes">Warmed:Stopped '
        "(in the warm pool)</td><td>-</td><td>idle</td><td>-</td></tr>"
    ) in rows
    assert f"<tr><td>{IN_SERVICE}</td><td>InService</td><td>no</td>" in rows


def test_the_admin_says_why_pool_instances_are_missing(
    admin_client: Client, aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("autoscaling", region_name="ap-northeast-2")
    stub = Stubber(client)
    described = group_described(instance_described(IN_SERVICE, "InService"))
    described["AutoScalingGroups"][0]["WarmPoolConfiguration"] = CONFIGURATION
    stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [ASG]})
    stub.add_client_error(
        "describe_warm_pool",
        service_error_code="AccessDenied",
        service_message="not authorized to perform: autoscaling:DescribeWarmPool",
        http_status_code=403,
    )
    stub.activate()
    monkeypatch.setattr("scaling.audit.fleet.autoscaling_client", lambda **kwargs: client)

    html = admin_client.get(LIST_URL).content.decode()

    assert (
        '<p id="pool-error" class="errornote">Warm pool instances not listed: the role lacks '
        "autoscaling:DescribeWarmPool: attach deploy/iam/status.json to the role this host "
        "runs as</p>"
    ) in html
    assert f"<td>{IN_SERVICE}</td>" in html  # the group's instances still listed
