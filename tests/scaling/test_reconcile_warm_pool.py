"""The reconciler with a warm pool (scaling.fleet.reconcile, scaling.fleet.pool).

AWS's states (docs/scaling-policy.md, "Warm pools: lifecycle states and the drain
hook"): an instance returning to the pool on scale-in waits in ``Warmed:Pending:Wait``
under our EC2_INSTANCE_TERMINATING hook; pool instances are listed by DescribeWarmPool,
not by DescribeAutoScalingGroups. moto lists no pool instances (its DescribeWarmPool
answers ``Instances: []``) and holds none in a wait state, so the answers come from
botocore's Stubber in the shapes AWS documents.

The client here is not the app's observed one: the publisher role's IAM document does
not grant autoscaling:DescribeWarmPool yet (the session's IAM check would flag these
stubbed calls); ``test_a_pool_the_role_cannot_read`` is what a deployment without it gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import boto3
import botocore.session
import pytest
from botocore.model import StringShape
from botocore.stub import Stubber
from django.test import Client

from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.fleet.marks import DRAINING, marks_read
from scaling.fleet.pool import POOL_PAGE
from scaling.fleet.reconcile import PROTECTABLE_STATES
from scaling.port import lease_hooks
from scaling.state import state_store_get
from tests.factories import video_leased
from tests.scaling.fleet_support import ASG, group_described, instance_described, reconcile
from video.models import Video
from video.services import video_finish

pytestmark = pytest.mark.django_db

WORKER_KEY = "wk-pool-5e10"
RETURNING = "i-0abc0000000000d01"  # back to the pool on scale-in, under our hook
STAYING = "i-0abc0000000000d02"  # InService
POOLED = "i-0abc0000000000d03"  # stopped in the pool
RUNNING_POOLED = "i-0abc0000000000d04"  # in a pool whose PoolState is Running

POOL_CONFIGURATION = {
    "MinSize": 1,
    "MaxGroupPreparedCapacity": 6,
    "PoolState": "Stopped",
    "InstanceReusePolicy": {"ReuseOnScaleIn": True},
}
# Every LifecycleState botocore's service model knows (Warmed:* included).
_STATE_SHAPE = botocore.session.get_session().get_service_model("autoscaling")
BOTOCORE_STATES = tuple(cast(StringShape, _STATE_SHAPE.shape_for("LifecycleState")).enum)


@pytest.fixture(autouse=True)
def keys(settings: Any) -> None:
    settings.WORKER_API_KEYS = [WORKER_KEY]
    settings.VIDEO_LEASE_SECONDS = "120"
    settings.AWS_REGION = "ap-northeast-2"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Iterator[Stubber]:
    client = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing"
    ).client("autoscaling", region_name="ap-northeast-2")
    stubber = Stubber(client)
    stubber.activate()
    monkeypatch.setattr("scaling.fleet.reconcile.fleet_client", lambda **kwargs: client)
    yield stubber
    stubber.deactivate()


def _described(stub: Stubber, *instances: dict[str, Any], pool: bool = True) -> None:
    answer = group_described(*instances)
    if pool:
        answer["AutoScalingGroups"][0]["WarmPoolConfiguration"] = POOL_CONFIGURATION
        answer["AutoScalingGroups"][0]["WarmPoolSize"] = 2
    stub.add_response("describe_auto_scaling_groups", answer, {"AutoScalingGroupNames": [ASG]})


def _pool(stub: Stubber, *instances: dict[str, Any]) -> None:
    for instance in instances:
        instance["ProtectedFromScaleIn"] = False  # AWS protects no pool instance
    stub.add_response(
        "describe_warm_pool",
        {"WarmPoolConfiguration": POOL_CONFIGURATION, "Instances": list(instances)},
        {"AutoScalingGroupName": ASG, "MaxRecords": POOL_PAGE},
    )


def _action(instance_id: str) -> dict[str, Any]:
    return {
        "LifecycleHookName": LIFECYCLE_HOOK_NAME,
        "AutoScalingGroupName": ASG,
        "InstanceId": instance_id,
    }


def _renew(client: Client, video: Video) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/internal/video/{video.pk}/renew/",
        data=json.dumps({"token": video.lease_token}),
        content_type="application/json",
        headers={"X-Worker-Key": WORKER_KEY},
    )
    assert response.status_code == 200
    return dict(json.loads(response.content))


@pytest.mark.parametrize("state", BOTOCORE_STATES)
def test_no_warm_pool_state_is_protectable(state: str) -> None:
    """AWS refuses SetInstanceProtection for pool instances; entering the group is Pending*."""
    expected = state in {"Pending", "Pending:Wait", "Pending:Proceed", "InService"}
    assert (state in PROTECTABLE_STATES) is expected
    if state.startswith("Warmed:"):
        assert state not in PROTECTABLE_STATES


def test_returning_to_the_pool_is_drained_like_a_termination(stub: Stubber, client: Client) -> None:
    video = video_leased(instance_id=RETURNING, expires_in=120)
    # Scale-in with ReuseOnScaleIn: the instance left the group's list for the pool's.
    _described(stub, instance_described(STAYING, "InService"))
    _pool(stub, instance_described(RETURNING, "Warmed:Pending:Wait"))
    stub.add_response("record_lifecycle_action_heartbeat", {}, _action(RETURNING))
    busy = reconcile()
    stub.assert_no_pending_responses()

    assert _renew(client, video)["drain"] is True  # its worker takes no other video
    assert video_finish(video_id=video.pk, token=video.lease_token, status="READY").ok

    _described(stub, instance_described(STAYING, "InService"))
    _pool(stub, instance_described(RETURNING, "Warmed:Pending:Wait"))
    stub.add_response(
        "complete_lifecycle_action", {}, {**_action(RETURNING), "LifecycleActionResult": "CONTINUE"}
    )
    idle = reconcile()
    stub.assert_no_pending_responses()

    assert (busy.heartbeats, busy.completed, busy.pool, busy.busy) == ([RETURNING], [], 1, 0)
    assert (idle.heartbeats, idle.completed, idle.note, idle.pool_note) == ([], [RETURNING], "", "")
    assert busy.protected_now == idle.protected_now == []  # never protected in the pool


def test_a_busy_pool_instance_is_never_protected_and_told_to_drain(
    stub: Stubber, client: Client
) -> None:
    """A Running pool's instance whose worker still holds a lease: drain, no protection."""
    pooled = video_leased(instance_id=RUNNING_POOLED, expires_in=120, token="tok-pooled")
    video_leased(instance_id=STAYING, expires_in=120, token="tok-staying")
    _described(stub, instance_described(STAYING, "InService"))
    _pool(
        stub,
        instance_described(RUNNING_POOLED, "Warmed:Running"),
        instance_described(POOLED, "Warmed:Stopped"),
    )
    stub.add_response(
        "set_instance_protection",
        {},
        {"AutoScalingGroupName": ASG, "InstanceIds": [STAYING], "ProtectedFromScaleIn": True},
    )

    outcome = reconcile()

    stub.assert_no_pending_responses()  # one protection call, for the InService one alone
    assert (outcome.protected_now, outcome.busy, outcome.pool, outcome.in_service) == (
        [STAYING],
        1,
        2,
        1,
    )
    assert set(marks_read(state_store_get(), DRAINING)) == {RUNNING_POOLED, POOLED}
    assert _renew(client, pooled)["drain"] is True


def test_a_lease_left_on_a_stopped_pool_instance_is_recovered(stub: Stubber) -> None:
    """Stopped into the pool, its worker renews no more: the lease runs out and is
    recovered as a terminated instance's would be; the reconciler counts it busy no more."""
    video = video_leased(instance_id=POOLED, expires_in=-5, attempts=1)
    hooks = lease_hooks()
    assert hooks is not None

    assert hooks.leases_recover_expired() == 1

    video.refresh_from_db()
    assert video.status == "UPLOADED"
    _described(stub, instance_described(STAYING, "InService"))
    _pool(stub, instance_described(POOLED, "Warmed:Stopped"))
    outcome = reconcile()
    stub.assert_no_pending_responses()  # no protection, no lifecycle call
    assert (outcome.busy, outcome.pool, outcome.heartbeats, outcome.completed) == (0, 1, [], [])


def test_a_pool_the_role_cannot_read(stub: Stubber) -> None:
    """The publisher role without DescribeWarmPool: one sentence; the group's work goes on."""
    video_leased(instance_id=STAYING, expires_in=120)
    _described(stub, instance_described(STAYING, "InService"))
    stub.add_client_error(
        "describe_warm_pool",
        service_error_code="AccessDenied",
        service_message=(
            "User: arn:aws:sts::123456789012:assumed-role/academy-api/i-0abc is not "
            "authorized to perform: autoscaling:DescribeWarmPool"
        ),
        http_status_code=403,
        expected_params={"AutoScalingGroupName": ASG, "MaxRecords": POOL_PAGE},
    )
    stub.add_response(
        "set_instance_protection",
        {},
        {"AutoScalingGroupName": ASG, "InstanceIds": [STAYING], "ProtectedFromScaleIn": True},
    )

    outcome = reconcile()

    stub.assert_no_pending_responses()
    assert outcome.pool_note == (
        "warm pool not read: the publisher role lacks autoscaling:DescribeWarmPool: attach "
        "deploy/iam/publisher.json; until then instances returning to the pool are not drained"
    )
    assert (outcome.note, outcome.protected_now, outcome.pool) == ("", [STAYING], None)


def test_no_pool_no_describe_warm_pool(stub: Stubber) -> None:
    _described(stub, instance_described(STAYING, "InService"), pool=False)

    outcome = reconcile()

    stub.assert_no_pending_responses()  # a DescribeWarmPool would have been unstubbed
    assert (outcome.pool, outcome.pool_note, outcome.ran) == (None, "", True)


def test_a_large_pool_is_read_page_by_page(stub: Stubber) -> None:
    _described(stub, instance_described(STAYING, "InService"))
    first = [instance_described(f"i-0abc00000000{n:05d}", "Warmed:Stopped") for n in range(50)]
    for instance in first:
        instance["ProtectedFromScaleIn"] = False
    stub.add_response(
        "describe_warm_pool",
        {"WarmPoolConfiguration": POOL_CONFIGURATION, "Instances": first, "NextToken": "p2"},
        {"AutoScalingGroupName": ASG, "MaxRecords": POOL_PAGE},
    )
    stub.add_response(
        "describe_warm_pool",
        {"Instances": [instance_described(RETURNING, "Warmed:Pending:Wait")]},
        {"AutoScalingGroupName": ASG, "MaxRecords": POOL_PAGE, "NextToken": "p2"},
    )
    stub.add_response(
        "complete_lifecycle_action", {}, {**_action(RETURNING), "LifecycleActionResult": "CONTINUE"}
    )

    outcome = reconcile()

    stub.assert_no_pending_responses()
    assert (outcome.pool, outcome.completed) == (51, [RETURNING])
