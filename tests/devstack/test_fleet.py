"""`make run`'s local fleet (devstack.fleet, devstack.tracking_standin) on moto's server.

The stand-in for target tracking reads real audit rows and the policy that
``install_scaling_policy`` installs on moto, and sets the group's desired
capacity there; the fleet's workers are fakes (no process is started).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone

from devstack.fleet import LocalFleet, queue_refill, run, slot_index
from devstack.localaws import local_client, port_free_get
from devstack.tracking_standin import (
    Aiming,
    Published,
    TargetTrackingStandIn,
    autoscaling_client_local,
    endpoint_is_local,
    group_describe,
)
from scaling.models import MetricPublication
from scaling.policy.aim import capacity_aim
from tests.factories import video_create, video_leased
from video.models import VideoStatus

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
INTERVAL = 10


def publish(value: int | None, *, ago: float = 1.0, status: str = "published") -> None:
    MetricPublication.objects.create(
        slot_start=timezone.now() - timedelta(seconds=ago),
        interval_seconds=INTERVAL,
        value=value,
        source="db" if value is not None else "",
        status=status,
        duration_ms=1.0,
        asg_name=ASG,
    )


@pytest.fixture
def autoscaling(aws: dict[str, str]) -> Any:
    return autoscaling_client_local(aws["endpoint"], aws["region"])


@pytest.fixture
def dead_endpoint(settings: Any, monkeypatch: pytest.MonkeyPatch) -> str:
    """Nothing listens there: AWS is unreachable for the app and for the stand-in."""
    url = f"http://127.0.0.1:{port_free_get()}"
    settings.AWS_ENDPOINT_URL = url
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    return url


def stand_in(autoscaling: Any, **kwargs: Any) -> TargetTrackingStandIn:
    return TargetTrackingStandIn(autoscaling, asg_name=ASG, interval_seconds=INTERVAL, **kwargs)


def group(autoscaling: Any) -> dict[str, Any]:
    return group_describe(autoscaling, ASG)


def in_service(autoscaling: Any) -> list[str]:
    return sorted(
        i["InstanceId"]
        for i in group(autoscaling)["Instances"]
        if i["LifecycleState"] == "InService"
    )


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# --- the stand-in for target tracking ---------------------------------------------


def test_without_a_publication_nothing_is_done_and_said_once(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    publish(None, status="failed")  # a failed slot published nothing
    tracker = stand_in(autoscaling)
    assert [tracker.step() for _ in range(3)] == [None, None, None]
    assert group(autoscaling)["DesiredCapacity"] == 0
    assert len(lines(caplog, "no BacklogCount published yet")) == 1


def test_a_stale_publication_is_no_data(autoscaling: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    publish(12, ago=10 * INTERVAL)
    assert stand_in(autoscaling).step() is None
    assert group(autoscaling)["DesiredCapacity"] == 0
    assert lines(caplog, "s old")


@pytest.mark.parametrize("backlog", [0, 1, 4, 31])
def test_without_a_policy_the_default_per_instance_target_3_is_aimed_at(
    autoscaling: Any, caplog: pytest.LogCaptureFixture, backlog: int
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    publish(backlog)
    stand_in(autoscaling).step()
    expected = capacity_aim(backlog=backlog, target=3, mode="per-instance", min_size=0, max_size=10)
    assert group(autoscaling)["DesiredCapacity"] == expected
    assert len(in_service(autoscaling)) == expected
    assert lines(caplog, "aims with the default, no academy-backlog-target-tracking policy")


@pytest.mark.parametrize(
    ("options", "mode", "target"),
    [
        (["--target-value", "5"], "per-instance", 5.0),
        (["--mode", "total", "--target-value", "4"], "total", 4.0),
    ],
)
@pytest.mark.parametrize("backlog", [0, 4, 6, 1000])
def test_the_installed_policy_is_aimed_at(
    autoscaling: Any,
    caplog: pytest.LogCaptureFixture,
    options: list[str],
    mode: str,
    target: float,
    backlog: int,
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    call_command("install_scaling_policy", *options, stdout=StringIO())
    publish(backlog)
    stand_in(autoscaling).step()
    expected = capacity_aim(backlog=backlog, target=target, mode=mode, min_size=0, max_size=10)
    assert group(autoscaling)["DesiredCapacity"] == expected
    assert lines(caplog, f"aims with the installed policy: target {target:g}")


@pytest.mark.parametrize(("backlog", "expected"), [(0, 2), (1, 2), (9, 3), (13, 4), (400, 4)])
def test_the_desired_capacity_stays_within_min_and_max(
    autoscaling: Any, backlog: int, expected: int
) -> None:
    autoscaling.update_auto_scaling_group(AutoScalingGroupName=ASG, MinSize=2, MaxSize=4)
    publish(backlog)
    stand_in(autoscaling).step()
    assert group(autoscaling)["DesiredCapacity"] == expected


def test_the_newest_publication_counts_and_the_capacity_follows_it_down(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    tracker = stand_in(autoscaling)
    publish(9, ago=3)
    assert tracker.step() == 3
    publish(None, ago=2, status="failed")  # no datapoint: the last one still stands
    assert tracker.step() is None
    publish(0, ago=1)
    assert tracker.step() == 0
    assert in_service(autoscaling) == []
    assert lines(caplog, "desired capacity 0 -> 3")
    assert lines(caplog, "desired capacity 3 -> 0")


def test_scale_in_spares_a_protected_instance_until_its_protection_is_cleared(
    autoscaling: Any,
) -> None:
    tracker = stand_in(autoscaling)
    publish(6, ago=2)
    tracker.step()
    busy = in_service(autoscaling)[0]
    autoscaling.set_instance_protection(
        AutoScalingGroupName=ASG, InstanceIds=[busy], ProtectedFromScaleIn=True
    )
    publish(0, ago=1)
    tracker.step()
    assert in_service(autoscaling) == [busy]
    autoscaling.set_instance_protection(
        AutoScalingGroupName=ASG, InstanceIds=[busy], ProtectedFromScaleIn=False
    )
    tracker.step()  # the same aim, asked again: the instance above it goes now
    assert in_service(autoscaling) == []


def test_aws_unreachable_is_one_line_and_no_exception(
    aws: dict[str, str], dead_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    publish(10)
    tracker = stand_in(autoscaling_client_local(dead_endpoint, aws["region"]))
    assert [tracker.step() for _ in range(3)] == [None, None, None]
    assert len(lines(caplog, "local AWS unreachable, nothing done")) == 1
    assert not [r for r in caplog.records if r.exc_info]


def test_a_database_outage_is_one_line(autoscaling: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")

    def down() -> Published | None:
        raise DatabaseError("connection refused")

    tracker = stand_in(autoscaling, publication=down)
    assert [tracker.step() for _ in range(3)] == [None, None, None]
    assert len(lines(caplog, "database unreadable, nothing done")) == 1


def test_a_policy_it_cannot_aim_with_is_one_line(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    publish(10)
    tracker = stand_in(autoscaling, policy=lambda: Aiming("per-instance", 0.0, "broken"))
    assert [tracker.step() for _ in range(2)] == [None, None]
    assert len(lines(caplog, "cannot aim")) == 1
    assert group(autoscaling)["DesiredCapacity"] == 0


def test_only_a_loopback_endpoint_is_local() -> None:
    assert endpoint_is_local("http://127.0.0.1:5000")
    assert endpoint_is_local("http://localhost:5000")
    assert not endpoint_is_local("")
    assert not endpoint_is_local("https://autoscaling.ap-northeast-2.amazonaws.com")
    assert not endpoint_is_local("http://10.0.0.5:5000")


# --- the local fleet ------------------------------------------------------------------


@dataclass
class FakeWorker:
    pid: int
    code: int | None = None
    signals: list[str] = field(default_factory=list)

    def poll(self) -> int | None:
        return self.code

    def terminate(self) -> None:
        self.signals.append("TERM")
        self.code = -15

    def kill(self) -> None:
        self.signals.append("KILL")
        self.code = -9

    def wait(self, timeout: float | None = None) -> int:
        return self.code or 0


@dataclass
class FakeSpawner:
    spawned: dict[str, list[FakeWorker]] = field(default_factory=dict)
    fail: bool = False

    def __call__(self, instance_id: str) -> FakeWorker:
        if self.fail:
            raise OSError("no such file")
        worker = FakeWorker(pid=1000 + sum(len(w) for w in self.spawned.values()))
        self.spawned.setdefault(instance_id, []).append(worker)
        return worker


def desired_set(autoscaling: Any, n: int) -> None:
    autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=n)


def test_one_worker_per_in_service_instance(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=spawner)
    fleet.step()
    assert spawner.spawned == {}
    desired_set(autoscaling, 3)
    fleet.step()
    fleet.step()
    assert sorted(spawner.spawned) == in_service(autoscaling)
    assert all(len(workers) == 1 for workers in spawner.spawned.values())
    assert len(lines(caplog, " launched: worker pid ")) == 3


def test_the_worker_of_an_instance_that_left_is_killed(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=spawner)
    desired_set(autoscaling, 3)
    fleet.step()
    desired_set(autoscaling, 1)
    fleet.step()
    (kept,) = in_service(autoscaling)
    assert list(fleet.workers) == [kept]
    for instance_id, (worker,) in spawner.spawned.items():
        assert worker.signals == ([] if instance_id == kept else ["KILL"])
    assert len(lines(caplog, " terminated: worker pid ")) == 2


def test_aws_unreachable_kills_no_worker_and_is_one_line(
    aws: dict[str, str], autoscaling: Any, dead_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    spawner = FakeSpawner()
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=spawner)
    desired_set(autoscaling, 2)
    fleet.step()
    fleet.autoscaling = autoscaling_client_local(dead_endpoint, aws["region"])
    for _ in range(3):
        fleet.step()
    assert len(fleet.workers) == 2
    assert all(w.signals == [] for ws in spawner.spawned.values() for w in ws)
    assert len(lines(caplog, "local fleet: cannot read the group")) == 1


def test_a_worker_that_exits_is_restarted_after_a_pause(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    now = [0.0]
    spawner = FakeSpawner()
    fleet = LocalFleet(
        autoscaling, asg_name=ASG, spawner=spawner, restart_after=10, clock=lambda: now[0]
    )
    desired_set(autoscaling, 1)
    fleet.step()
    (instance_id,) = spawner.spawned
    spawner.spawned[instance_id][0].code = 1  # crashed, or drained and exited
    fleet.step()
    now[0] = 5.0
    fleet.step()
    assert len(spawner.spawned[instance_id]) == 1
    now[0] = 11.0
    fleet.step()
    assert len(spawner.spawned[instance_id]) == 2
    assert lines(caplog, "exited with code 1; restarted in 10 s")


def test_a_worker_that_cannot_start_is_one_line(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=FakeSpawner(fail=True))
    desired_set(autoscaling, 1)
    for _ in range(3):
        fleet.step()
    assert fleet.workers == {}
    assert len(lines(caplog, ": no worker (OSError")) == 1


def test_stop_asks_every_worker_to_stop(autoscaling: Any) -> None:
    spawner = FakeSpawner()
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=spawner)
    desired_set(autoscaling, 2)
    fleet.step()
    fleet.stop(grace=0.1)
    assert fleet.workers == {}
    assert [w.signals for ws in spawner.spawned.values() for w in ws] == [["TERM"], ["TERM"]]


def test_the_loop_survives_a_failing_step_with_one_line(
    autoscaling: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.fleet")

    def broken() -> Published | None:
        raise ZeroDivisionError("a bug")

    tracker = stand_in(autoscaling, publication=broken)
    spawner = FakeSpawner()
    fleet = LocalFleet(autoscaling, asg_name=ASG, spawner=spawner)
    desired_set(autoscaling, 1)
    stopping = threading.Event()
    clock = iter(float(i * INTERVAL) for i in range(1000))
    rounds = [0]

    def tick() -> float:
        rounds[0] += 1
        if rounds[0] > 4:
            stopping.set()
        return next(clock)

    run(tracker, fleet, stopping, fleet_seconds=0.01, clock=tick)
    assert len(lines(caplog, "local stand-in: step failed (ZeroDivisionError")) == 1
    assert len(spawner.spawned) == 1  # the fleet went on; stopped at the end
    assert fleet.workers == {}


def test_the_stand_in_evaluates_half_a_slot_after_each_boundary() -> None:
    assert slot_index(100.0, 10) == slot_index(104.9, 10)
    assert slot_index(105.0, 10) == slot_index(100.0, 10) + 1


def test_a_new_local_queue_gets_the_messages_of_the_uploaded_videos(aws: dict[str, str]) -> None:
    waiting = [video_create().pk, video_create().pk]
    video_create(status=VideoStatus.READY)
    video_leased()  # recovery sends its message when its lease runs out
    assert queue_refill(aws["queue_url"]) == 2
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    bodies = [
        m["Body"]
        for m in sqs.receive_message(QueueUrl=aws["queue_url"], MaxNumberOfMessages=10)["Messages"]
    ]
    assert sorted(bodies) == sorted(f'{{"video_id": {pk}}}' for pk in waiting)
