"""Drain on termination: instances waiting in ``Terminating:Wait`` under our hook.

moto never holds an instance in ``Terminating:Wait`` and does not model
``CompleteLifecycleAction``: the group's description and the lifecycle calls
are answered by botocore's Stubber, shaped as AWS documents them, on the app's
own client (so the session's IAM check sees these calls too).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.stub import Stubber
from django.test import Client

from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from tests.factories import video_leased
from tests.scaling.fleet_support import (
    ASG,
    group_described,
    instance_described,
    reconcile,
    stubbed_fleet,
)
from video.services import video_finish

pytestmark = pytest.mark.django_db

WORKER_KEY = "wk-fleet-7d21"
LEAVING = "i-0abc00000000000a1"
STAYING = "i-0abc00000000000b2"
LEAVING_IDLE = "i-0abc00000000000c3"


@pytest.fixture(autouse=True)
def keys(settings: Any, aws: dict[str, str]) -> None:
    settings.WORKER_API_KEYS = [WORKER_KEY]
    settings.VIDEO_LEASE_SECONDS = "120"


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> Stubber:
    return stubbed_fleet(monkeypatch)


def _described(stub: Stubber, *instances: dict[str, Any]) -> None:
    stub.add_response(
        "describe_auto_scaling_groups",
        group_described(*instances),
        {"AutoScalingGroupNames": [ASG]},
    )


def _action(instance_id: str) -> dict[str, Any]:
    return {
        "LifecycleHookName": LIFECYCLE_HOOK_NAME,
        "AutoScalingGroupName": ASG,
        "InstanceId": instance_id,
    }


def _heartbeat(stub: Stubber, instance_id: str) -> None:
    stub.add_response("record_lifecycle_action_heartbeat", {}, _action(instance_id))


def _complete(stub: Stubber, instance_id: str) -> None:
    stub.add_response(
        "complete_lifecycle_action",
        {},
        {**_action(instance_id), "LifecycleActionResult": "CONTINUE"},
    )


def _renew(client: Client, video: Any) -> dict[str, Any]:
    response = client.post(
        f"/api/v1/internal/video/{video.pk}/renew/",
        data=json.dumps({"token": video.lease_token}),
        content_type="application/json",
        headers={"X-Worker-Key": WORKER_KEY},
    )
    assert response.status_code == 200
    return dict(json.loads(response.content))


def test_heartbeat_while_busy_then_complete_once_idle(stub: Stubber, client: Client) -> None:
    video = video_leased(instance_id=LEAVING, expires_in=120)
    waiting = instance_described(LEAVING, "Terminating:Wait", protected=True)

    _described(stub, waiting)
    _heartbeat(stub, LEAVING)
    busy = reconcile()
    stub.assert_no_pending_responses()

    _described(stub, waiting)
    _heartbeat(stub, LEAVING)
    still_busy = reconcile()  # the next slot: another heartbeat, the hook's timeout restarts
    stub.assert_no_pending_responses()

    assert _renew(client, video)["drain"] is True  # finish this video, take no other
    assert video_finish(video_id=video.pk, token=video.lease_token, status="READY").ok

    _described(stub, waiting)
    _complete(stub, LEAVING)
    idle = reconcile()
    stub.assert_no_pending_responses()

    assert (busy.heartbeats, busy.completed, busy.busy) == ([LEAVING], [], 1)
    assert (still_busy.heartbeats, still_busy.completed) == ([LEAVING], [])
    assert (idle.heartbeats, idle.completed, idle.busy, idle.note) == ([], [LEAVING], 0, "")
    # A terminating instance is never protected or unprotected: it is leaving anyway.
    assert busy.protected_now == idle.unprotected == []


def test_complete_at_once_when_idle_from_the_start(stub: Stubber) -> None:
    _described(stub, instance_described(LEAVING_IDLE, "Terminating:Wait"))
    _complete(stub, LEAVING_IDLE)

    outcome = reconcile()

    stub.assert_no_pending_responses()
    assert (outcome.completed, outcome.heartbeats, outcome.note) == ([LEAVING_IDLE], [], "")


def test_renew_answers_drain_only_for_a_lease_on_a_draining_instance(
    stub: Stubber, client: Client
) -> None:
    leaving = video_leased(instance_id=LEAVING, expires_in=120, token="tok-leaving")
    staying = video_leased(instance_id=STAYING, expires_in=120, token="tok-staying")
    before = _renew(client, leaving)["drain"]
    _described(
        stub,
        instance_described(LEAVING, "Terminating:Wait"),
        instance_described(STAYING, "InService", protected=True),
    )
    _heartbeat(stub, LEAVING)

    reconcile()

    assert (before, _renew(client, leaving)["drain"], _renew(client, staying)["drain"]) == (
        False,
        True,
        False,
    )


def test_one_run_protects_heartbeats_and_completes_in_that_order(stub: Stubber) -> None:
    video_leased(instance_id=LEAVING, expires_in=120)
    video_leased(instance_id=STAYING, expires_in=120)
    _described(
        stub,
        instance_described(LEAVING, "Terminating:Wait"),
        instance_described(STAYING, "InService"),
        instance_described(LEAVING_IDLE, "Terminating:Wait"),
    )
    stub.add_response(
        "set_instance_protection",
        {},
        {"AutoScalingGroupName": ASG, "InstanceIds": [STAYING], "ProtectedFromScaleIn": True},
    )
    _heartbeat(stub, LEAVING)
    _complete(stub, LEAVING_IDLE)

    outcome = reconcile()

    stub.assert_no_pending_responses()  # in this order, each once, nothing else
    assert (outcome.protected_now, outcome.heartbeats, outcome.completed) == (
        [STAYING],
        [LEAVING],
        [LEAVING_IDLE],
    )
    assert (outcome.busy, outcome.protected) == (2, 1)


def test_an_action_waiting_under_another_hook_does_not_block_the_others(stub: Stubber) -> None:
    _described(
        stub,
        instance_described(LEAVING, "Terminating:Wait"),
        instance_described(LEAVING_IDLE, "Terminating:Wait"),
    )
    stub.add_client_error(
        "complete_lifecycle_action",
        service_error_code="ValidationError",
        service_message=f"No active Lifecycle Action found with instance ID {LEAVING}",
        http_status_code=400,
        expected_params={**_action(LEAVING), "LifecycleActionResult": "CONTINUE"},
    )
    _complete(stub, LEAVING_IDLE)

    outcome = reconcile()

    stub.assert_no_pending_responses()
    assert (outcome.completed, outcome.note) == ([LEAVING_IDLE], "")


def test_a_throttled_heartbeat_ends_the_run_for_this_slot(stub: Stubber) -> None:
    video_leased(instance_id=LEAVING, expires_in=120)
    _described(
        stub,
        instance_described(LEAVING, "Terminating:Wait"),
        instance_described(LEAVING_IDLE, "Terminating:Wait"),
    )
    stub.add_client_error(
        "record_lifecycle_action_heartbeat",
        service_error_code="Throttling",
        service_message="Rate exceeded",
        http_status_code=400,
    )

    outcome = reconcile()

    stub.assert_no_pending_responses()  # the idle one waits for the next slot
    assert (outcome.heartbeats, outcome.completed) == ([], [])
    assert outcome.note.startswith("fleet: RecordLifecycleActionHeartbeat throttled")
