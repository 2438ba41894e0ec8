from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from django.db import OperationalError

from scaling.audit.aim_text import aim_estimate
from scaling.audit.aws_reads import alarm_of
from scaling.audit.report import _duration
from scaling.policy.alarms import alarm_names
from scaling.publishing.tick import backlog_tick
from tests.factories import videos_create
from video.models import Video

pytestmark = pytest.mark.django_db
ASG = "academy-video-worker-asg"


def _status(*args: str) -> str:
    out = StringIO()
    call_command("scaling_status", *args, stdout=out)
    return out.getvalue()


def _db_down(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(**kwargs: Any) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("video.backlog.video_backlog_get", refuse)
    monkeypatch.setattr("scaling.audit.status.publications_recent", refuse)
    monkeypatch.setattr("scaling.audit.series.publications_recent", refuse)


def test_status_after_install_and_a_publication(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=5, PROCESSING=2)
    slot = backlog_tick(now=datetime.now(UTC) - timedelta(seconds=1)).slot_start.isoformat()
    call_command("install_scaling_policy", "--target-value", "3", stdout=StringIO())

    output = _status("--slots", "2").splitlines()
    processing = sorted(Video.objects.filter(status="PROCESSING").values_list("pk", flat=True))
    table, lines = output[2:6], output[:2] + output[6:]

    assert lines[0] == f"Group {ASG} (ap-northeast-2)"
    assert lines[1].startswith("Backlog in the database now: 7 (uploaded 5, processing 2; ")
    # The slot just published, with the group as the reconciler read it (no instances).
    when = slot[:19].replace("T", " ")
    assert table[:2] == [
        "Last 2 slots (UTC, oldest first):",
        "  time                 backlog          in service  desired  busy  protected",
    ]
    assert f"  {when}  7 db             0           0        0     0" in table[2:]
    assert lines[2] == (f"Latest published value 7 (slot {slot}) agrees with the database now (7).")
    # The alarms' lines carry their time: "OK for 2 s (since 2025-...+00:00)".
    held = re.compile(r" for \d+ s \(since \d{4}-\d\d-\d\dT[\d:.]+\+00:00\)$")
    assert all(held.search(line) for line in lines[10:16])
    assert [held.sub("", line) for line in lines[3:]] == [
        "Capacity: min 0, max 10, desired 0, in service 0; group metrics: GroupDesiredCapacity, "
        "GroupInServiceInstances, GroupMaxSize.",
        "Policies:",
        "  academy-backlog-target-tracking: TargetTrackingScaling; per-instance: m1 / m2, "
        "target 3; warmup 60 s",
        "  academy-backlog-wake-from-zero: StepScaling; warmup 60 s",
        # No --predictive, no --warm-pool: said so, with the flag that adds each.
        f"Predictive scaling: none (no predictive scaling policy on {ASG}: install_scaling_policy "
        "--predictive forecast-only installs academy-backlog-predictive).",
        "Warm pool: none (install_scaling_policy --warm-pool adds one).",
        "Alarms:",
        f"  {ASG}-backlog-wake-from-zero: OK",
        *(f"  {name}: OK" for name in alarm_names(ASG).values()),
        "Target tracking aims for about 3 instances (ceil(backlog 7 / target 3), within min 0 "
        "and max 10; backlog from the database now).",
        # videos_create makes PROCESSING rows without a lease: recovery's next work.
        "Videos being processed, by instance:",
        "  (no lease): 2 (0 live, 2 expired)",
        "Last recoveries: none.",
        # The group has no instance; the two PROCESSING rows name none and have no start.
        "Fleet: 0 in the group, 0 busy, 0 protected from scale-in:",
        f"  (no lease) not in the group: video {processing[0]}, video {processing[1]}",
        "Lifecycle hook academy-drain-on-terminate: autoscaling:EC2_INSTANCE_TERMINATING, "
        "heartbeat timeout 240 s, then CONTINUE.",
    ]


def test_each_alarm_state_and_how_long_in_text_and_json(aws: dict[str, str]) -> None:
    call_command("install_scaling_policy", stdout=StringIO())
    silent = alarm_names(ASG)["publisher-silent"]
    cloudwatch = boto3.client("cloudwatch", region_name=aws["region"], endpoint_url=aws["endpoint"])
    cloudwatch.set_alarm_state(AlarmName=silent, StateValue="ALARM", StateReason="test")

    data = json.loads(_status("--json"))
    text = _status()

    alarms = {a["name"]: a for a in data["alarms"]["data"]}
    assert list(alarms) == [f"{ASG}-backlog-wake-from-zero", *alarm_names(ASG).values()]
    assert alarms[silent]["state"] == "ALARM"
    since = datetime.fromisoformat(alarms[silent]["since"])
    assert 0 <= (datetime.now(UTC) - since).total_seconds() < 60
    assert 0 <= alarms[silent]["for_seconds"] < 60
    [line] = [line for line in text.splitlines() if line.startswith(f"  {silent}:")]
    assert re.fullmatch(
        rf"  {silent}: ALARM for \d+ s \(since {re.escape(since.isoformat())}\)", line
    )


def test_an_alarm_held_for_hours_reads_as_hours() -> None:
    now = datetime(2025, 1, 2, 12, 0, tzinfo=UTC)
    described = {
        "AlarmName": "a",
        "StateValue": "ALARM",
        "StateUpdatedTimestamp": now - timedelta(minutes=1),
        "StateTransitionedTimestamp": now - timedelta(hours=2, minutes=5),
    }

    alarm = alarm_of(described, now)

    assert (alarm.state, alarm.for_seconds, alarm.since) == (
        "ALARM",
        7500,
        "2025-01-02T09:55:00+00:00",
    )
    assert [_duration(s) for s in (42, 300, 7500, 273600)] == [
        "42 s",
        "5 min",
        "2 h 5 min",
        "3 d 4 h",
    ]


def test_status_json_says_when_the_database_moved_on(aws: dict[str, str]) -> None:
    videos_create(UPLOADED=1)
    backlog_tick()
    videos_create(UPLOADED=3)

    data = json.loads(_status("--json"))

    assert data["agreement"]["data"]["agrees"] is False
    assert (data["agreement"]["data"]["published"], data["agreement"]["data"]["database_now"]) == (
        1,
        4,
    )
    assert data["policies"] == {"ok": True, "data": [], "error": ""}
    assert data["aim"]["ok"] is False


def test_status_with_the_database_down_says_so_per_part(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    call_command("install_scaling_policy", stdout=StringIO())
    _db_down(monkeypatch)

    lines = _status().splitlines()

    assert lines[1:4] == [
        "Backlog in the database: unavailable (OperationalError: connection refused).",
        "Last slots: unavailable (OperationalError: connection refused).",
        "Published versus database: not compared (needs the database).",
    ]
    assert lines[-5] == (
        "Target tracking aim: unknown (no backlog known: database down, nothing published)."
    )


def test_status_with_aws_down_says_so_per_part(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    down = (
        "unavailable (cannot reach AWS at http://127.0.0.1:9/: check AWS_ENDPOINT_URL / network)."
    )

    lines = _status().splitlines()

    assert lines[1] == "Backlog in the database now: 0 (uploaded 0, processing 0)."
    assert lines[-10:-4] == [
        f"Capacity: {down}",
        f"Policies: {down}",
        f"Predictive scaling: {down}",
        f"Warm pool: {down}",
        f"Alarms: {down}",
        "Target tracking aim: unknown (needs the group and its policies).",
    ]
    assert lines[-2:] == [f"Fleet: {down}", f"Lifecycle hook: {down}"]


@pytest.mark.parametrize(
    ("mode", "backlog", "in_service", "expected"),
    [
        ("per-instance", 0, 0, 0),
        ("per-instance", 7, 0, 3),
        ("per-instance", 9, 5, 3),
        ("per-instance", 100, 1, 10),  # capped at max
        ("total", 9, 2, 10),  # the raw count keeps multiplying the fleet, up to max
        ("total", 0, 4, 1),  # held at min
    ],
)
def test_aim_estimate(mode: str, backlog: int, in_service: int, expected: int) -> None:
    estimate = aim_estimate(
        mode=mode,
        target=3.0,
        backlog=backlog,
        in_service=in_service,
        min_size=1 if mode == "total" else 0,
        max_size=10,
    )
    assert estimate.instances == expected


def test_status_shows_videos_by_instance_and_the_last_recoveries(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.factories import video_leased
    from video.services import videos_recover_expired

    video_leased(instance_id="i-0aaaaaaaaaaaaaaa1", expires_in=60)
    video_leased(instance_id="i-0aaaaaaaaaaaaaaa1", expires_in=60)
    video_leased(instance_id="i-0bbbbbbbbbbbbbbb2", expires_in=60)
    lost = video_leased(instance_id="i-0ccccccccccccccc3", expires_in=-5, attempts=3)
    [recovery] = videos_recover_expired(max_attempts=3)

    text = _status()
    data = json.loads(_status("--json"))["leases"]

    assert text.split("Videos being processed, by instance:\n", 1)[1].split("Last")[0] == (
        "  i-0aaaaaaaaaaaaaaa1: 2 (2 with a live lease)\n"
        "  i-0bbbbbbbbbbbbbbb2: 1 (1 with a live lease)\n"
    )
    assert (
        f"  {recovery.recovered_at.isoformat()} video {lost.pk} -> FAILED after 3 attempts "
        "(instance i-0ccccccccccccccc3)\n"
    ) in text
    assert [(i["instance_id"], i["processing"], i["live"]) for i in data["data"]["instances"]] == [
        ("i-0aaaaaaaaaaaaaaa1", 2, 2),
        ("i-0bbbbbbbbbbbbbbb2", 1, 1),
    ]
    assert data["data"]["recoveries"][0]["video_id"] == lost.pk


def test_status_says_when_the_leases_cannot_be_read(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("video.backlog.videos_processing_by_instance", refuse)

    assert "Videos being processed: unavailable (OperationalError: connection refused).\n" in (
        _status()
    )


# The fleet ---------------------------------------------------------------------------


def _fleet_of_three(aws: dict[str, str]) -> list[str]:
    """Three InService instances (moto launches them at once), the first one protected."""
    autoscaling = boto3.client(
        "autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"]
    )
    autoscaling.set_desired_capacity(AutoScalingGroupName=ASG, DesiredCapacity=3)
    group = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[ASG])
    ids = sorted(i["InstanceId"] for i in group["AutoScalingGroups"][0]["Instances"])
    autoscaling.set_instance_protection(
        AutoScalingGroupName=ASG, InstanceIds=ids[:1], ProtectedFromScaleIn=True
    )
    return ids


def _working(instance_id: str, *, minutes: int) -> int:
    from django.db.models import DateTimeField, ExpressionWrapper
    from django.db.models.functions import Now

    from tests.factories import video_leased

    video = video_leased(instance_id=instance_id)
    started = ExpressionWrapper(Now() - timedelta(minutes=minutes), output_field=DateTimeField())
    Video.objects.filter(pk=video.pk).update(processing_started_at=started)
    return video.pk


def test_status_shows_each_instance_its_state_protection_and_video(
    aws: dict[str, str], recorded_status: list[str]
) -> None:
    a, b, c = _fleet_of_three(aws)
    first = _working(a, minutes=5)
    second = _working(b, minutes=12)
    stray = _working("i-0fffffffffffffff9", minutes=3)
    call_command("install_scaling_policy", "--drain-timeout", "600", stdout=StringIO())
    recorded_status.clear()

    text = _status()
    data = json.loads(_status("--json"))

    assert text.split("Last recoveries: none.\n", 1)[1].splitlines() == [
        "Fleet: 3 in the group, 2 busy, 1 protected from scale-in:",
        f"  {a} InService, protected: video {first} for 5 min",
        f"  {b} InService, not protected: video {second} for 12 min",
        f"  {c} InService, not protected: idle",
        f"  i-0fffffffffffffff9 not in the group: video {stray} for 3 min",
        "Lifecycle hook academy-drain-on-terminate: autoscaling:EC2_INSTANCE_TERMINATING, "
        "heartbeat timeout 600 s, then CONTINUE.",
    ]
    fleet = data["fleet"]["data"]["instances"]
    assert [(i["instance_id"], i["state"], i["protected"]) for i in fleet] == [
        (a, "InService", True),
        (b, "InService", False),
        (c, "InService", False),
        ("i-0fffffffffffffff9", "not in the group", None),
    ]
    assert [[w["video_id"] for w in i["videos"]] for i in fleet] == [[first], [second], [], [stray]]
    assert 12 * 60 <= fleet[1]["videos"][0]["seconds"] < 13 * 60
    assert data["lifecycle_hook"]["data"]["heartbeat_timeout"] == 600
    # One DescribeAutoScalingGroups a run: the capacity and the fleet share it.
    assert recorded_status.count("DescribeAutoScalingGroups") == 2  # text, then --json


def test_status_fleet_without_the_database_and_without_the_hook(
    aws: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = _fleet_of_three(aws)

    def refuse() -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr("scaling.audit.status.fleet_work_read", refuse)

    lines = _status().splitlines()

    assert lines[-6:] == [
        "Fleet: 3 in the group, 0 busy, 1 protected from scale-in:",
        f"  {a} InService, protected: videos unknown",
        f"  {b} InService, not protected: videos unknown",
        f"  {c} InService, not protected: videos unknown",
        "Videos by instance: unavailable (OperationalError: connection refused).",
        "Lifecycle hook academy-drain-on-terminate: not installed (install_scaling_policy "
        "installs it).",
    ]


@pytest.fixture
def recorded_status() -> Any:
    from scaling.aws import aws_call_observers

    calls: list[str] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        if role == "status":
            calls.append(operation)

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)
