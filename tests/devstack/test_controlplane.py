"""`make run`'s local control plane (devstack.controlplane) on moto's server.

The policy is the one ``install_scaling_policy`` installs on moto; the datapoints
are put into moto's CloudWatch at slot timestamps, as the tick publishes them; each
``step(now=...)`` is one evaluation half a period after its slot boundary. Slots
are in the (near) future of the wall clock, since moto stamps LaunchTime with it:
every instance launched during the test has launched before the next evaluation.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from devstack import controlplane, fleet
from devstack.controlplane import (
    ControlPlane,
    Period,
    ScaleInDatapointsError,
    installed_read,
    next_evaluation,
    scale_in_datapoints_get,
)
from devstack.localaws import endpoint_is_local, local_client, port_free_get
from devstack.localgroup import (
    BOOT_SECONDS_DEFAULT,
    BootSecondsError,
    boot_seconds_get,
)
from scaling.metric_spec import metric_spec_get

pytestmark = pytest.mark.django_db

ASG = "academy-video-worker-asg"
INTERVAL = 60


@dataclass
class Local:
    """The local endpoint's clients and a run of metric slots after the wall clock."""

    autoscaling: Any
    cloudwatch: Any
    ec2: Any
    base: float  # the first slot's start

    def at(self, k: int) -> float:
        """When the control plane evaluates slot ``k``: half a period after its start."""
        return self.base + k * INTERVAL + INTERVAL / 2

    def publish(self, k: int, value: int) -> None:
        spec = metric_spec_get()
        self.cloudwatch.put_metric_data(
            Namespace=spec.namespace,
            MetricData=[
                {
                    "MetricName": spec.metric_name,
                    "Dimensions": spec.dimensions_api(),
                    "Timestamp": datetime.fromtimestamp(self.base + k * INTERVAL, tz=UTC),
                    "Value": value,
                    "Unit": spec.unit,
                    "StorageResolution": spec.storage_resolution,
                }
            ],
        )

    def plane(
        self, *, boot_seconds: int = 0, timeline: Path | None = None, **options: Any
    ) -> ControlPlane:
        return ControlPlane(
            autoscaling=self.autoscaling,
            cloudwatch=self.cloudwatch,
            ec2=self.ec2,
            asg_name=ASG,
            interval_seconds=INTERVAL,
            boot_seconds=boot_seconds,
            timeline=timeline,
            **options,
        )

    def group(self) -> dict[str, Any]:
        groups = self.autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
        return dict(groups["AutoScalingGroups"][0])

    def instances(self) -> list[str]:
        return sorted(i["InstanceId"] for i in self.group()["Instances"])

    def protect(self, instance_id: str, protected: bool) -> None:
        self.autoscaling.set_instance_protection(
            AutoScalingGroupName=ASG, InstanceIds=[instance_id], ProtectedFromScaleIn=protected
        )


@pytest.fixture
def local(aws: dict[str, str]) -> Local:
    def client(service: str) -> Any:
        return local_client(service, aws["endpoint"], aws["region"])

    return Local(
        autoscaling=client("autoscaling"),
        cloudwatch=client("cloudwatch"),
        ec2=client("ec2"),
        base=time.time() // INTERVAL * INTERVAL + INTERVAL,
    )


def install(*options: str) -> None:
    call_command("install_scaling_policy", *options, stdout=StringIO())


def run_slots(local: Local, plane: ControlPlane, values: dict[int, int]) -> list[Period]:
    periods = []
    for k, value in sorted(values.items()):
        local.publish(k, value)
        period = plane.step(now=local.at(k))
        assert period is not None
        periods.append(period)
    return periods


def lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# --- what is installed -----------------------------------------------------------------


def test_without_a_policy_nothing_is_set_and_it_is_said_once(
    local: Local, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    local.publish(0, 12)
    plane = local.plane(timeline=tmp_path / "timeline.jsonl")
    assert [plane.step(now=local.at(0)) for _ in range(3)] == [None, None, None]
    assert local.group()["DesiredCapacity"] == 0
    said = lines(caplog, "no target tracking policy")
    assert said == [
        f"control plane: no target tracking policy on {ASG}: "
        "run manage.py install_scaling_policy; nothing done"
    ]
    assert not (tmp_path / "timeline.jsonl").exists()


def test_the_installed_per_instance_policy_is_read_back(local: Local) -> None:
    install("--target-value", "3", "--warmup", "120")
    installed = installed_read(local.autoscaling, local.cloudwatch, ASG)
    spec = metric_spec_get()
    assert (installed.mode, installed.target, installed.warmup_seconds) == (
        "per-instance",
        3.0,
        120,
    )
    assert installed.metric == {
        "Namespace": spec.namespace,
        "MetricName": spec.metric_name,
        "Dimensions": spec.dimensions_api(),
    }
    assert (installed.stat, installed.wake_datapoints, installed.scale_in) == ("Average", 1, True)


def test_the_installed_total_policy_is_read_back_and_played(local: Local) -> None:
    install("--mode", "total", "--target-value", "4", "--warmup", "0")
    installed = installed_read(local.autoscaling, local.cloudwatch, ASG)
    assert (installed.mode, installed.target) == ("total", 4.0)
    assert installed.metric["MetricName"] == metric_spec_get().metric_name
    # The total metric has a value with nothing in service: 6 > 4 counts already.
    plane = local.plane()
    (woken,) = run_slots(local, plane, {0: 6})
    assert (woken.metric, woken.reason, woken.set_to) == (6.0, "wake", 1)
    periods = run_slots(local, plane, {1: 6, 2: 6})
    assert periods[-1].reason == "scale-out"  # ceil(1 x 6 / 4) = 2 after 3 datapoints
    assert local.group()["DesiredCapacity"] == 2


# --- the rules, played on the endpoint -------------------------------------------------


def test_wake_scale_out_and_scale_in_on_the_endpoint(local: Local) -> None:
    install("--target-value", "3", "--warmup", "0")
    plane = local.plane()
    # Slot 0: 12 videos, nothing in service -> wake to 1.
    (wake,) = run_slots(local, plane, {0: 12})
    assert (wake.backlog, wake.in_service, wake.desired, wake.set_to) == (12, 0, 0, 1)
    assert wake.reason == "wake"
    assert len(local.instances()) == 1
    # 12 per in-service instance > 3 for 3 datapoints -> ceil(1 x 12 / 3) = 4.
    out = run_slots(local, plane, {1: 12, 2: 12, 3: 12})
    assert [(p.in_service, p.warm, p.metric, p.set_to) for p in out] == [
        (1, 1, 12.0, 1),
        (1, 1, 12.0, 1),
        (1, 1, 12.0, 4),
    ]
    assert out[-1].reason == "scale-out"
    assert local.group()["DesiredCapacity"] == 4
    assert len(local.instances()) == 4
    # 4 videos on 4 instances: 1 < 2.7 for 15 datapoints -> ceil(4 x 4 / 12) = 2.
    low = run_slots(local, plane, {k: 4 for k in range(4, 19)})
    assert [p.set_to for p in low] == [4] * 14 + [2]
    assert (low[-1].reason, low[-1].metric) == ("scale-in", 1.0)
    assert local.group()["DesiredCapacity"] == 2
    assert len(local.instances()) == 2


def test_the_plane_plays_aws_s_15_scale_in_datapoints_unless_told(local: Local) -> None:
    """AWS's scale-in alarm is 15 datapoints: what the plane plays by default and
    whenever DEVSTACK_SCALE_IN_DATAPOINTS is unset; the loop test's shorter alarm is
    DEVSTACK_SCALE_IN_DATAPOINTS, read by nothing but the control plane's main."""
    assert scale_in_datapoints_get({}) == 15
    install("--target-value", "3", "--warmup", "0")
    default = local.plane()
    assert default.scale_in_datapoints == 15
    assert local.plane(scale_in_datapoints=scale_in_datapoints_get({})).scale_in_datapoints == 15
    run_slots(local, default, {0: 12, 1: 12, 2: 12, 3: 12})
    assert local.group()["DesiredCapacity"] == 4
    assert default.tracking is not None
    assert default.tracking.rules.scale_in_datapoints == 15


def test_a_shorter_scale_in_alarm_scales_in_after_its_datapoints(local: Local) -> None:
    install("--target-value", "3", "--warmup", "0")
    plane = local.plane(scale_in_datapoints=3)
    run_slots(local, plane, {0: 12, 1: 12, 2: 12, 3: 12})
    assert local.group()["DesiredCapacity"] == 4
    # 4 videos on 4 instances: 1 < 2.7 for 3 datapoints -> ceil(4 x 4 / 12) = 2.
    low = run_slots(local, plane, {4: 4, 5: 4, 6: 4})
    assert [p.set_to for p in low] == [4, 4, 2]
    assert (low[-1].reason, low[-1].metric) == ("scale-in", 1.0)
    assert local.group()["DesiredCapacity"] == 2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [(None, 15), ("", 15), (" ", 15), ("1", 1), (" 3 ", 3), ("15", 15)],
)
def test_the_scale_in_datapoints_are_read_from_the_environment(
    raw: str | None, expected: int
) -> None:
    environ = {} if raw is None else {"DEVSTACK_SCALE_IN_DATAPOINTS": raw}
    assert scale_in_datapoints_get(environ) == expected


@pytest.mark.parametrize("raw", ["0", "16", "-1", "1.5", "3s", "three", "²"])
def test_bad_scale_in_datapoints_are_refused(raw: str) -> None:
    with pytest.raises(ScaleInDatapointsError, match="must be a whole number from 1 to 15"):
        scale_in_datapoints_get({"DEVSTACK_SCALE_IN_DATAPOINTS": raw})


def test_main_refuses_bad_scale_in_datapoints(
    settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("django.setup", lambda: None)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:5000"
    monkeypatch.setenv("DEVSTACK_SCALE_IN_DATAPOINTS", "0")
    assert controlplane.main() == 2
    assert lines(caplog, "DEVSTACK_SCALE_IN_DATAPOINTS must be a whole number from 1 to 15")


def test_scale_out_waits_until_the_instance_is_warm(local: Local) -> None:
    install("--target-value", "3", "--warmup", "3600")
    plane = local.plane()
    run_slots(local, plane, {0: 12})
    cold = run_slots(local, plane, {1: 12, 2: 12, 3: 12})
    assert [(p.in_service, p.warm, p.set_to) for p in cold] == [(1, 0, 1)] * 3
    # An hour later the instance is warm (launched before slot 0 ended); the count kept on.
    (warm,) = run_slots(local, plane, {70: 12})
    assert (warm.warm, warm.set_to, warm.reason) == (1, 4, "scale-out")


def test_an_instance_counts_in_service_only_once_booted(local: Local) -> None:
    install("--target-value", "3", "--warmup", "0")
    plane = local.plane(boot_seconds=600)
    run_slots(local, plane, {0: 12})
    booting = run_slots(local, plane, {1: 12, 2: 12, 3: 12})
    # Booting: live, not in service, so no metric and no second wake (desired is 1).
    assert [(p.live, p.in_service, p.metric, p.set_to) for p in booting] == [(1, 0, None, 1)] * 3


def test_a_missing_datapoint_sets_nothing(local: Local, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    install("--warmup", "0")
    plane = local.plane()
    local.publish(1, 12)  # the next slot's, not this one's
    period = plane.step(now=local.at(0))
    assert period is not None
    assert (period.backlog, period.metric, period.set_to, period.reason) == (None, None, 0, "")
    assert local.group()["DesiredCapacity"] == 0
    assert len(lines(caplog, "control plane: no datapoint for slot")) == 1
    woken = plane.step(now=local.at(1))
    assert woken is not None
    assert woken.set_to == 1


def test_a_protected_surplus_instance_goes_once_its_protection_is_cleared(local: Local) -> None:
    install("--warmup", "0")
    plane = local.plane()
    local.autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=2)
    busy = local.instances()[0]
    local.protect(busy, True)
    # A scale-in to 0 left the protected instance (moto, like EC2, spares it).
    local.autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=0)
    assert local.instances() == [busy]
    (kept,) = run_slots(local, plane, {0: 0})
    assert (kept.desired, kept.live, kept.set_to) == (0, 1, 0)
    assert local.instances() == [busy]
    local.protect(busy, False)
    run_slots(local, plane, {1: 0})  # the capacity asked again: the instance goes now
    assert local.instances() == []


def test_the_endpoint_down_is_one_line_and_no_exception(
    aws: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    dead = f"http://127.0.0.1:{port_free_get()}"
    plane = ControlPlane(
        autoscaling=local_client("autoscaling", dead, aws["region"]),
        cloudwatch=local_client("cloudwatch", dead, aws["region"]),
        ec2=local_client("ec2", dead, aws["region"]),
        asg_name=ASG,
        interval_seconds=INTERVAL,
        boot_seconds=0,
    )
    assert [plane.step() for _ in range(3)] == [None, None, None]
    assert len(lines(caplog, "control plane: local AWS unreadable, nothing done")) == 1
    assert not [r for r in caplog.records if r.exc_info]


def test_the_timeline_gets_one_json_line_per_step(local: Local, tmp_path: Path) -> None:
    install("--warmup", "0")
    timeline = tmp_path / "timeline.jsonl"
    plane = local.plane(timeline=timeline)
    periods = run_slots(local, plane, {0: 5, 1: 5})
    missing = plane.step(now=local.at(2))
    assert missing is not None
    rows = [json.loads(line) for line in timeline.read_text().splitlines()]
    assert rows == [asdict(p) for p in [*periods, missing]]
    assert [(r["backlog"], r["reason"]) for r in rows] == [(5, "wake"), (5, ""), (None, "")]
    assert rows[0]["slot"] == datetime.fromtimestamp(local.base, tz=UTC).isoformat()


# --- the loop, the process, the settings ------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [(100.0, 150.0), (120.0, 150.0), (149.9, 150.0), (150.0, 210.0), (151.0, 210.0)],
)
def test_the_next_evaluation_is_half_a_period_after_a_slot_boundary(
    now: float, expected: float
) -> None:
    assert next_evaluation(now, 60) == expected
    assert next_evaluation(now - 100, 10) - (now - 100) <= 10


def test_the_loop_survives_a_failing_step(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="devstack.controlplane")
    monkeypatch.setattr(controlplane, "next_evaluation", lambda now, interval: now)
    plane = ControlPlane(
        autoscaling=None,
        cloudwatch=None,
        ec2=None,
        asg_name=ASG,
        interval_seconds=INTERVAL,
        boot_seconds=0,
    )
    stopping, calls = threading.Event(), [0]

    def broken(now: float | None = None) -> Period | None:
        calls[0] += 1
        if calls[0] == 3:
            stopping.set()
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(plane, "step", broken)
    controlplane.run(plane, stopping)
    assert len(lines(caplog, "control plane: step failed (ZeroDivisionError")) == 3


@pytest.mark.parametrize("module", [controlplane, fleet], ids=["controlplane", "fleet"])
def test_main_refuses_an_endpoint_off_this_machine(
    module: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("django.setup", lambda: None)  # set up already; keep the test logging
    settings.AWS_ENDPOINT_URL = "https://autoscaling.ap-northeast-2.amazonaws.com"
    assert module.main() == 2
    assert lines(caplog, "runs only against a local endpoint")
    settings.AWS_ENDPOINT_URL = None
    assert module.main() == 2


@pytest.mark.parametrize("module", [controlplane, fleet], ids=["controlplane", "fleet"])
def test_main_refuses_a_bad_boot_time(
    module: Any, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr("django.setup", lambda: None)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:5000"
    monkeypatch.setenv("DEVSTACK_BOOT_SECONDS", "soon")
    assert module.main() == 2
    assert lines(caplog, "DEVSTACK_BOOT_SECONDS must be a whole number of seconds from 0 to 600")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, BOOT_SECONDS_DEFAULT),
        ("", BOOT_SECONDS_DEFAULT),
        (" ", BOOT_SECONDS_DEFAULT),
        ("0", 0),
        ("7", 7),
        (" 30 ", 30),
        ("600", 600),
    ],
)
def test_the_boot_time_is_read_from_the_environment(raw: str | None, expected: int) -> None:
    assert boot_seconds_get({} if raw is None else {"DEVSTACK_BOOT_SECONDS": raw}) == expected


@pytest.mark.parametrize("raw", ["601", "-1", "1.5", "10s", "ten", "1e3", "²"])
def test_a_bad_boot_time_is_refused(raw: str) -> None:
    with pytest.raises(BootSecondsError, match="DEVSTACK_BOOT_SECONDS must be a whole number"):
        boot_seconds_get({"DEVSTACK_BOOT_SECONDS": raw})


def test_only_a_loopback_endpoint_is_local() -> None:
    assert endpoint_is_local("http://127.0.0.1:5000")
    assert endpoint_is_local("http://localhost:5000")
    assert endpoint_is_local("http://[::1]:5000")
    assert not endpoint_is_local("")
    assert not endpoint_is_local("https://127.0.0.1:5000")
    assert not endpoint_is_local("https://autoscaling.ap-northeast-2.amazonaws.com")
    assert not endpoint_is_local("http://10.0.0.5:5000")
    assert not endpoint_is_local("http://127.0.0.1.example.com:5000")
