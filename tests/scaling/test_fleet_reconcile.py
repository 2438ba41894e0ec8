"""The fleet reconciler against moto's server (DESIGN.md invariant 8): busy instances
protected, idle ones cleared after a slot of grace, nothing outside the group touched.

moto terminates only unprotected instances when the desired capacity drops, as
EC2's scale-in does: lowering it is what target tracking would do.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from devstack.localaws import local_client
from scaling.fleet.marks import BUSY
from scaling.models import MetricPublication
from scaling.publishing.tick import backlog_tick
from scaling.state import state_store_get
from tests.factories import video_leased
from tests.scaling.fleet_support import (
    ASG,
    INTERVAL,
    OTHER_ASG,
    Call,
    calls,
    grace_over,
    group_described,
    group_instances,
    group_resize,
    ids_touched,
    instance_described,
    operations,
    other_group,
    protected_ids,
    reconcile,
    stubbed_fleet,
)
from video.services import video_finish

__all__ = ["calls"]  # the fixture, used by name

pytestmark = pytest.mark.django_db


def _busy(instance_id: str) -> Any:
    return video_leased(instance_id=instance_id, expires_in=120)


def _finish(video: Any) -> None:
    assert video_finish(video_id=video.pk, token=video.lease_token, status="READY").ok


def test_only_the_idle_instance_goes_and_the_busy_ones_after_their_jobs(
    aws: dict[str, str], calls: list[Call]
) -> None:
    a, b, _idle = sorted(group_resize(aws, 3))
    jobs = [_busy(a), _busy(b)]

    first = reconcile()

    assert protected_ids(aws) == {a, b}
    assert (first.busy, first.protected, sorted(first.protected_now)) == (2, 2, [a, b])
    assert group_resize(aws, 1) == {a, b}  # scale-in took the idle one only

    for job in jobs:
        _finish(job)
    within_grace = reconcile()  # the jobs just ended: the grace holds protection
    assert (within_grace.unprotected, protected_ids(aws)) == ([], {a, b})

    grace_over(a, b)
    cleared = reconcile()

    assert sorted(cleared.unprotected) == [a, b]
    assert (cleared.busy, cleared.protected, protected_ids(aws)) == (0, 0, set())
    assert group_resize(aws, 1) != {a, b}  # the next lowering takes one of them
    assert len(group_resize(aws, 0)) == 0
    # Changes only: one SetInstanceProtection to protect, one to clear, none in between.
    sets = operations(calls, "SetInstanceProtection")
    assert [(c[3]["ProtectedFromScaleIn"], sorted(c[3]["InstanceIds"])) for c in sets] == [
        (True, [a, b]),
        (False, [a, b]),
    ]


def test_a_worker_that_takes_its_next_video_at_once_keeps_protection(
    aws: dict[str, str], calls: list[Call]
) -> None:
    [instance] = group_resize(aws, 1)
    _finish(_busy(instance))
    state_store_get().marks_set(BUSY, {instance: time.time() - 5})
    _busy(instance)  # the next video, seconds later

    for _ in range(3):
        reconcile()

    assert protected_ids(aws) == {instance}
    assert len(operations(calls, "SetInstanceProtection")) == 1


def test_protection_set_by_hand_is_cleared_and_another_group_is_never_touched(
    aws: dict[str, str], calls: list[Call]
) -> None:
    [mine] = group_resize(aws, 1)
    outside = other_group(aws, desired=2)
    autoscaling = local_client("autoscaling", aws["endpoint"], aws["region"])
    autoscaling.set_instance_protection(
        AutoScalingGroupName=ASG, InstanceIds=[mine], ProtectedFromScaleIn=True
    )
    autoscaling.set_instance_protection(
        AutoScalingGroupName=OTHER_ASG, InstanceIds=sorted(outside), ProtectedFromScaleIn=True
    )
    busy_elsewhere = sorted(outside)[0]
    _busy(busy_elsewhere)  # a lease naming an instance of the other group

    first = reconcile()  # never seen busy: the grace starts now
    grace_over(mine)
    second = reconcile()

    assert (first.unprotected, second.unprotected) == ([], [mine])
    assert protected_ids(aws) == set()
    assert protected_ids(aws, OTHER_ASG) == outside  # still protected, by their owner
    assert (second.busy, second.protected) == (0, 0)
    assert ids_touched(calls) == {mine}
    assert all(
        c[3].get("AutoScalingGroupNames", [c[3].get("AutoScalingGroupName")]) == [ASG]
        for c in calls
    )


def test_changes_go_in_batches_of_fifty(aws: dict[str, str], calls: list[Call]) -> None:
    local_client("autoscaling", aws["endpoint"], aws["region"]).update_auto_scaling_group(
        AutoScalingGroupName=ASG, MaxSize=120
    )
    busy = sorted(group_resize(aws, 120))
    for instance_id in busy:
        _busy(instance_id)

    outcome = reconcile()

    sizes = [len(c[3]["InstanceIds"]) for c in operations(calls, "SetInstanceProtection")]
    assert (sizes, outcome.protected) == ([50, 50, 20], 120)
    assert len(protected_ids(aws)) == 120


def test_throttling_stops_the_slot_without_retrying_and_the_next_slot_catches_up(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    busy = [f"i-0aaaaaaaaaaaaa{n:03d}" for n in range(60)]
    for instance_id in busy:
        _busy(instance_id)
    described = group_described(*(instance_described(i, "InService") for i in busy))
    stub: Stubber = stubbed_fleet(monkeypatch)
    stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [ASG]})
    stub.add_client_error(
        "set_instance_protection",
        service_error_code="Throttling",
        service_message="Rate exceeded",
        http_status_code=400,
    )

    throttled = reconcile()

    stub.assert_no_pending_responses()  # one call, then nothing: no loop, no second batch
    assert throttled.protected_now == []
    assert "SetInstanceProtection throttled" in throttled.note
    assert "the rest waits a slot" in throttled.note

    stub.add_response("describe_auto_scaling_groups", described, {"AutoScalingGroupNames": [ASG]})
    for batch in (busy[:50], busy[50:]):
        stub.add_response(
            "set_instance_protection",
            {},
            {"AutoScalingGroupName": ASG, "InstanceIds": batch, "ProtectedFromScaleIn": True},
        )
    next_slot = reconcile()

    stub.assert_no_pending_responses()
    assert (next_slot.protected_now, next_slot.protected, next_slot.note) == (busy, 60, "")


def test_the_tick_reconciles_once_per_slot_and_publishes_the_counts(
    aws: dict[str, str], calls: list[Call]
) -> None:
    a, b, _ = sorted(group_resize(aws, 3))
    _busy(a)
    _busy(b)
    now = datetime.now(UTC)

    results = [backlog_tick(now=now) for _ in range(3)]  # three beats, one slot

    assert [r.status for r in results] == ["published", "already-claimed", "already-claimed"]
    assert (results[0].busy_instances, results[0].protected_instances) == (2, 2)
    assert len(operations(calls, "DescribeAutoScalingGroups")) == 1
    assert protected_ids(aws) == {a, b}
    row = MetricPublication.objects.get()
    assert (row.busy_instances, row.protected_instances) == (2, 2)
    [put] = operations(calls, "PutMetricData")
    values = {d["MetricName"]: d["Value"] for d in put[3]["MetricData"]}
    assert (values["BusyInstances"], values["ProtectedInstances"]) == (2.0, 2.0)

    later = backlog_tick(now=now + timedelta(seconds=60))  # the next slot: one more read
    assert later.status == "published"
    assert len(operations(calls, "DescribeAutoScalingGroups")) == 2


def test_no_database_no_reconcile_and_no_made_up_counts(
    aws: dict[str, str], calls: list[Call], monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.db import OperationalError

    def refuse() -> None:
        raise OperationalError("connection refused")

    group_resize(aws, 2)
    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)

    result = backlog_tick()

    assert (result.source, result.busy_instances, result.protected_instances) == ("sqs", None, None)
    assert operations(calls, "DescribeAutoScalingGroups") == []
    [put] = operations(calls, "PutMetricData")
    assert {d["MetricName"] for d in put[3]["MetricData"]} == {"BacklogCount"}


def test_a_missing_group_is_said_and_nothing_is_published_for_it(
    aws: dict[str, str], settings: Any, calls: list[Call]
) -> None:
    settings.SCALING_ASG_NAME = "no-such-asg"

    outcome = reconcile()

    assert (outcome.ran, outcome.busy, outcome.protected) == (False, None, None)
    assert outcome.note == "fleet: no Auto Scaling group no-such-asg"
    assert [c[2] for c in calls] == ["DescribeAutoScalingGroups"]


def test_published_counts_reach_cloudwatch(aws: dict[str, str]) -> None:
    [instance] = group_resize(aws, 1)
    _busy(instance)

    backlog_tick()

    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    now = datetime.now(UTC)
    for name in ("BusyInstances", "ProtectedInstances"):
        answer = cloudwatch.get_metric_statistics(
            Namespace="Academy/VideoProcessing",
            MetricName=name,
            Dimensions=[
                {"Name": "WorkerType", "Value": "Video"},
                {"Name": "AutoScalingGroupName", "Value": ASG},
            ],
            StartTime=now - timedelta(hours=1),
            EndTime=now + timedelta(minutes=5),
            Period=60,
            Statistics=["Maximum"],
        )
        assert [p["Maximum"] for p in answer["Datapoints"]] == [1.0], name
    assert group_instances(aws)[instance] == ("InService", True)


def test_the_grace_counts_from_the_end_of_the_slot_the_lease_was_seen_in(
    aws: dict[str, str], calls: list[Call], settings: Any
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = str(INTERVAL)
    # A sighting early in a slot must not let the next run, a slot later, clear an
    # instance whose job ended seconds before it: the grace runs from the slot's end.
    [instance] = group_resize(aws, 1)
    job = _busy(instance)
    slot = time.time() // INTERVAL * INTERVAL
    reconcile(now=slot + 1)
    _finish(job)

    next_run = reconcile(now=slot + INTERVAL + 1)  # idle a second or so: still protected
    later_run = reconcile(now=slot + 2 * INTERVAL + 1)  # idle a whole slot: cleared

    assert (next_run.unprotected, later_run.unprotected) == ([], [instance])
