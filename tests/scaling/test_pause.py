"""scaling_pause against a moto server holding the group: scale-in off and back on."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import boto3
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from scaling.aws import aws_call_observers
from scaling.conf import scaling_settings
from scaling.fleets import fleet_get
from scaling.models import PauseEnd, ScalingPause
from scaling.policy.pause import pause_expire, pause_start
from scaling.policy.requests import TARGET_POLICY_NAME
from scaling.publishing.tick import backlog_tick, slot_tick
from tests.factories import videos_create

pytestmark = pytest.mark.django_db
ASG = "academy-video-worker-asg"
LIST_URL = "/admin/scaling/metricpublication/"


def _autoscaling(aws: dict[str, str]) -> Any:
    return boto3.client("autoscaling", region_name=aws["region"], endpoint_url=aws["endpoint"])


def _target_policy(aws: dict[str, str]) -> dict[str, Any]:
    found = _autoscaling(aws).describe_policies(AutoScalingGroupName=ASG)["ScalingPolicies"]
    return next(p for p in found if p["PolicyName"] == TARGET_POLICY_NAME)


def _scale_in_disabled(aws: dict[str, str]) -> bool:
    return bool(_target_policy(aws)["TargetTrackingConfiguration"].get("DisableScaleIn"))


def _pause(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("scaling_pause", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _status_json() -> dict[str, Any]:
    out = StringIO()
    call_command("scaling_status", "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _status_text() -> str:
    out = StringIO()
    call_command("scaling_status", stdout=out)
    return out.getvalue()


def _install(*args: str) -> dict[str, Any]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--json", stdout=out)
    return dict(json.loads(out.getvalue()))


def _target_item(result: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in result["items"] if i["kind"] == "target-tracking-policy")


@pytest.fixture
def installed(aws: dict[str, str]) -> dict[str, str]:
    _install("--target-value", "4", "--warmup", "90")
    return aws


@pytest.fixture
def puts() -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Every PutScalingPolicy the app sends, with the role that sent it."""
    calls: list[tuple[str, dict[str, Any]]] = []

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        if operation == "PutScalingPolicy":
            calls.append((role, dict(params)))

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)


# Pause, extend, resume ------------------------------------------------------------------


def test_pause_turns_scale_in_off_and_changes_nothing_else(installed: dict[str, str]) -> None:
    before = _target_policy(installed)

    result = _pause("--minutes", "30", "--reason", "deploy of 2.4", "--by", "alice")

    assert result["action"] == "paused"
    assert result["policy_written"] is True
    assert _scale_in_disabled(installed) is True
    after = _target_policy(installed)
    assert after["TargetTrackingConfiguration"] == {
        **before["TargetTrackingConfiguration"],
        "DisableScaleIn": True,
    }
    assert after["EstimatedInstanceWarmup"] == before["EstimatedInstanceWarmup"] == 90
    # The installer, asked the same during the pause, keeps it: nothing to change.
    item = _target_item(_install("--target-value", "4", "--warmup", "90", "--dry-run"))
    assert (item["action"], item.get("changes") or []) == ("unchanged", [])
    row = ScalingPause.objects.get()
    assert (row.fleet, row.asg_name, row.reason, row.by, row.ended_at) == (
        "video",
        ASG,
        "deploy of 2.4",
        "alice",
        None,
    )
    assert timedelta(minutes=29) < row.until - timezone.now() <= timedelta(minutes=30)
    assert result["pause"]["until"] == row.until.isoformat()


def test_status_shows_the_pause_and_its_end_in_text_and_json(installed: dict[str, str]) -> None:
    assert _status_json()["pause"] is None
    assert "Scale-in paused" not in _status_text()
    _pause("--minutes", "45", "--reason", "incident 512", "--by", "bob")
    row = ScalingPause.objects.get()

    data = _status_json()
    text = _status_text().splitlines()

    assert data["pause"]["until"] == row.until.isoformat()
    assert (data["pause"]["reason"], data["pause"]["by"], data["pause"]["in_force"]) == (
        "incident 512",
        "bob",
        True,
    )
    assert 44 * 60 < data["pause"]["seconds_left"] <= 45 * 60
    assert data["fleets"][0]["pause"]["until"] == row.until.isoformat()
    until = row.until.astimezone(UTC)
    assert text[1] == (
        f"Scale-in paused until {until:%H:%M} UTC: incident 512 (bob); ends "
        f"{row.until.isoformat()} (in 44 min); {TARGET_POLICY_NAME} has DisableScaleIn true."
    )
    shown = StringIO()
    call_command("scaling_pause", stdout=shown)
    assert (
        shown.getvalue()
        == f"Fleet video: Scale-in paused until {until:%H:%M} UTC: incident 512 (bob).\n"
    )


def test_status_says_when_the_policy_was_installed_again_during_the_pause(
    installed: dict[str, str],
) -> None:
    _pause("--minutes", "10", "--reason", "demo", "--by", "carol")
    # Someone's other tool puts the policy back with scale-in on (this installer would not).
    policy = _target_policy(installed)
    config = {**policy["TargetTrackingConfiguration"], "DisableScaleIn": False}
    _autoscaling(installed).put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName=TARGET_POLICY_NAME,
        PolicyType="TargetTrackingScaling",
        EstimatedInstanceWarmup=policy["EstimatedInstanceWarmup"],
        TargetTrackingConfiguration=config,
    )

    data = _status_json()

    assert data["pause"]["in_force"] is False
    assert "scales in (installed again during the pause?)" in _status_text()
    # Pausing again puts the pause back (and extends the same row).
    assert _pause("--minutes", "10", "--reason", "demo", "--by", "carol")["policy_written"]
    assert _scale_in_disabled(installed) is True
    assert ScalingPause.objects.count() == 1


def test_pausing_twice_extends_one_row_and_writes_the_policy_once(
    installed: dict[str, str], puts: list[tuple[str, dict[str, Any]]]
) -> None:
    _pause("--minutes", "20", "--reason", "deploy", "--by", "alice")
    first = ScalingPause.objects.get().until

    second = _pause("--minutes", "60", "--reason", "deploy takes longer", "--by", "bob")
    later = ScalingPause.objects.get().until
    shorter = _pause("--minutes", "5", "--reason", "nearly done", "--by", "bob")

    assert second["action"] == shorter["action"] == "extended"
    assert ScalingPause.objects.count() == 1
    row = ScalingPause.objects.get()
    assert later - first > timedelta(minutes=39)
    assert row.until == later  # a shorter pause never shortens the one in force
    assert (row.reason, row.by) == ("nearly done", "bob")
    assert [role for role, _ in puts] == ["installer"]
    assert puts[0][1]["TargetTrackingConfiguration"]["DisableScaleIn"] is True


def test_resume_turns_scale_in_back_on_and_ends_the_row(installed: dict[str, str]) -> None:
    _pause("--minutes", "30", "--reason", "deploy", "--by", "alice")

    result = _pause("--resume")

    assert result["action"] == "resumed"
    assert _scale_in_disabled(installed) is False
    assert _target_item(_install("--target-value", "4", "--warmup", "90", "--dry-run"))[
        "action"
    ] == ("unchanged")
    row = ScalingPause.objects.get()
    assert row.end_reason == PauseEnd.RESUMED
    assert row.ended_at is not None
    assert _status_json()["pause"] is None
    again = _pause("--resume")
    assert (again["action"], again["pause"]) == ("not-paused", None)
    # A new pause after a resume is a new row.
    _pause("--minutes", "5", "--reason", "again", "--by", "alice")
    assert ScalingPause.objects.filter(ended_at__isnull=True).count() == 1
    assert ScalingPause.objects.count() == 2


def test_check_during_a_pause_is_equal_and_says_why_scale_in_is_off(
    installed: dict[str, str],
) -> None:
    _pause("--minutes", "30", "--reason", "deploy", "--by", "alice")
    out = StringIO()

    call_command(
        "install_scaling_policy",
        "--target-value",
        "4",
        "--warmup",
        "90",
        "--check",
        "--json",
        stdout=out,
    )

    result = json.loads(out.getvalue())
    assert (result["equal"], result["differences"]) == (True, [])
    assert any("DisableScaleIn true is expected" in note for note in result["notes"])
    _pause("--resume")
    # Once resumed, a DisableScaleIn left on would be drift again (held by the check).
    assert _scale_in_disabled(installed) is False


def test_an_install_during_a_pause_keeps_scale_in_off_and_says_why(
    installed: dict[str, str],
) -> None:
    _pause("--minutes", "30", "--reason", "deploy", "--by", "alice")

    # A deploy pipeline re-runs the installer while the pause holds.
    result = _install("--target-value", "4", "--warmup", "90")

    assert _scale_in_disabled(installed) is True
    assert _target_item(result)["action"] == "unchanged"
    assert any("DisableScaleIn stays true until it ends" in w for w in result["warnings"])
    _pause("--resume")
    assert _scale_in_disabled(installed) is False


# It ends by itself ------------------------------------------------------------------------


def _slot_start_after(moment: datetime) -> datetime:
    """The first slot boundary at or after ``moment``, plus 0.2 s: when beat's tick runs.
    A tick passed a time late in its slot has under the pause check's 1-s floor left (the
    check is bounded by what is left of the slot): CI drew such times twice."""
    interval = scaling_settings().interval
    boundary = -(-moment.timestamp() // interval) * interval
    return datetime.fromtimestamp(boundary + 0.2, tz=UTC)


def test_the_tick_after_the_end_resumes_it_and_not_before(
    installed: dict[str, str], puts: list[tuple[str, dict[str, Any]]]
) -> None:
    videos_create(UPLOADED=2)
    _pause("--minutes", "15", "--reason", "deploy", "--by", "alice")
    row = ScalingPause.objects.get()

    backlog_tick(now=row.until - timedelta(seconds=70))  # a slot before the one after it
    assert ScalingPause.objects.get().ended_at is None
    assert _scale_in_disabled(installed) is True

    after = _slot_start_after(row.until + timedelta(seconds=5))
    result = backlog_tick(now=after)

    assert result.published is True  # the tick itself is as before
    row.refresh_from_db()
    assert (row.end_reason, row.ended_at) == (PauseEnd.EXPIRED, after)
    assert _scale_in_disabled(installed) is False
    # The resume is the publisher's call (deploy/iam/publisher.json allows it).
    assert [role for role, _ in puts] == ["installer", "publisher"]
    assert _status_json()["pause"] is None


def test_a_pause_ends_by_itself_in_real_time_with_a_10_s_slot(
    installed: dict[str, str], settings: Any
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = 10
    # A one-minute pause that began 57 s ago: 3 s of it are left.
    pause_start(
        fleet=fleet_get(None),
        minutes=1,
        reason="short",
        by="test",
        now=timezone.now() - timedelta(seconds=57),
    )
    until = ScalingPause.objects.get().until
    assert _scale_in_disabled(installed) is True

    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        slot_tick()  # as beat would, every half second here: one publication a slot
        if ScalingPause.objects.get().ended_at is not None:
            break
        time.sleep(0.5)

    row = ScalingPause.objects.get()
    assert row.ended_at is not None
    assert row.until == until <= row.ended_at < until + timedelta(seconds=10)
    assert _scale_in_disabled(installed) is False


def test_a_failed_resume_never_fails_the_tick_and_the_next_tick_retries(
    installed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    videos_create(UPLOADED=1)
    _pause("--minutes", "5", "--reason", "deploy", "--by", "alice")
    until = ScalingPause.objects.get().until

    def refused() -> Any:
        raise ConnectionRefusedError("no AWS")

    with monkeypatch.context() as patched:
        patched.setattr("scaling.policy.pause.fleet_client", refused)
        result = backlog_tick(now=_slot_start_after(until + timedelta(seconds=1)))
    assert result.published is True
    assert ScalingPause.objects.get().ended_at is None

    backlog_tick(now=_slot_start_after(until + timedelta(seconds=61)))  # the next slot
    assert ScalingPause.objects.get().end_reason == PauseEnd.EXPIRED
    assert _scale_in_disabled(installed) is False


def test_the_check_waits_when_the_slot_has_no_time_left(installed: dict[str, str]) -> None:
    _pause("--minutes", "5", "--reason", "deploy", "--by", "alice")
    later = timezone.now() + timedelta(minutes=6)

    assert pause_expire(now=later, seconds=0.5) == 0
    assert ScalingPause.objects.get().ended_at is None
    assert pause_expire(now=later, seconds=3) == 1


def test_uninstall_ends_the_pause(installed: dict[str, str]) -> None:
    _pause("--minutes", "30", "--reason", "deploy", "--by", "alice")

    result = _install("--uninstall")

    row = ScalingPause.objects.get()
    assert row.end_reason == PauseEnd.UNINSTALLED
    assert f"Scale-in pause of {ASG} ended with its policy." in result["warnings"]
    assert _status_json()["pause"] is None
    assert _pause("--resume")["action"] == "not-paused"
    with pytest.raises(CommandError, match="nothing to pause"):
        _pause("--minutes", "5", "--reason", "again", "--by", "alice")


# Shown in the admin ---------------------------------------------------------------------


def test_the_admin_shows_the_pause_above_the_chart(
    admin_client: Client, installed: dict[str, str]
) -> None:
    assert 'id="scaling-pause"' not in admin_client.get(LIST_URL).content.decode()
    _pause("--minutes", "30", "--reason", "deploy <2.4>", "--by", "alice")
    until = ScalingPause.objects.get().until.astimezone(UTC)

    page = admin_client.get(LIST_URL).content.decode()

    line = f"Scale-in paused until {until:%H:%M} UTC: deploy &lt;2.4&gt; (alice)"
    assert f'style="margin:0 0 1em 0">{line}</p>' in page
    assert page.index('id="scaling-pause"') < page.index('id="publication-chart-figure"')


def test_the_pause_admin_lists_and_refuses_every_write(
    admin_client: Client, installed: dict[str, str]
) -> None:
    """Pauses are written by scaling_pause only: even a superuser cannot add, change or
    delete one in the admin (ReadOnlyAdmin, shared with the audit rows)."""
    _pause("--minutes", "30", "--reason", "deploy 2.4")
    pause = ScalingPause.objects.get()
    base = "/admin/scaling/scalingpause/"

    assert "deploy 2.4" in admin_client.get(base).content.decode()
    assert admin_client.get(f"{base}add/").status_code == 403
    assert admin_client.post(f"{base}{pause.pk}/change/", {"reason": "x"}).status_code == 403
    assert admin_client.post(f"{base}{pause.pk}/delete/", {"post": "yes"}).status_code == 403
    assert ScalingPause.objects.get().reason == "deploy 2.4"


# Bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--minutes", "0", "--reason", "x"],
            "--minutes must be between 1 and 1440 (a day), got 0.",
        ),
        (["--minutes", "1441", "--reason", "x"], "--minutes must be between 1 and 1440"),
        (["--minutes", "ten", "--reason", "x"], "--minutes must be a whole number, got 'ten'."),
        (["--minutes", "5", "--reason", "  "], "--reason must say something"),
        (["--minutes", "5"], "--reason must say something"),
        (["--reason", "x"], "--reason needs --minutes N."),
        (["--resume", "--minutes", "5"], "--resume takes no --minutes or --reason."),
        (["--minutes", "5", "--reason", "x", "--by", ""], "--by must say something"),
        (["--minutes", "5", "--reason", "x", "--fleet", "nope"], "Unknown fleet 'nope'"),
        (["--resume", "--fleet", "nope"], "Unknown fleet 'nope'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("scaling_pause", *args, stdout=StringIO())

    assert raised.value.returncode == 2
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)
    assert ScalingPause.objects.count() == 0


def test_no_policy_installed_is_one_line_and_exit_1(aws: dict[str, str]) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("scaling_pause", "--minutes", "5", "--reason", "x", stdout=StringIO())

    assert raised.value.returncode == 1
    assert str(raised.value) == (
        f"No {TARGET_POLICY_NAME} policy on {ASG}: nothing to pause (run manage.py "
        "install_scaling_policy first)."
    )
    assert ScalingPause.objects.count() == 0


def test_scale_in_disabled_outside_the_command_is_left_alone(installed: dict[str, str]) -> None:
    policy = _target_policy(installed)
    config = {**policy["TargetTrackingConfiguration"], "DisableScaleIn": True}
    _autoscaling(installed).put_scaling_policy(
        AutoScalingGroupName=ASG,
        PolicyName=TARGET_POLICY_NAME,
        PolicyType="TargetTrackingScaling",
        TargetTrackingConfiguration=config,
    )

    with pytest.raises(CommandError, match="set outside scaling_pause") as raised:
        call_command("scaling_pause", "--minutes", "5", "--reason", "x", stdout=StringIO())

    assert raised.value.returncode == 1
    assert ScalingPause.objects.count() == 0


def test_aws_down_is_one_line_exit_1_and_records_nothing(
    installed: dict[str, str], settings: Any
) -> None:
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"  # nothing listens on the discard port

    with pytest.raises(CommandError) as raised:
        call_command("scaling_pause", "--minutes", "5", "--reason", "x", stdout=StringIO())

    assert raised.value.returncode == 1
    assert str(raised.value).startswith("AWS call DescribePolicies failed: ")
    assert "\n" not in str(raised.value)
    assert ScalingPause.objects.count() == 0


def test_a_refused_policy_write_records_no_pause(
    installed: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from scaling.policy.pause import PauseError

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise PauseError("AWS call PutScalingPolicy failed: AccessDenied")

    monkeypatch.setattr("scaling.policy.pause._scale_in_set", refuse)

    with pytest.raises(CommandError, match="AccessDenied"):
        call_command("scaling_pause", "--minutes", "5", "--reason", "x", stdout=StringIO())

    assert ScalingPause.objects.count() == 0  # the row rolled back with the refused write


# Per fleet ------------------------------------------------------------------------------

AI_ASG = "academy-ai-worker-asg"


def test_a_pause_is_per_fleet(aws: dict[str, str], settings: Any) -> None:
    from devstack.localaws import local_aws_bootstrap
    from tests.deploy.test_iam_documents import calls_held_to_the_configured_fleets

    created = local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="academy-ai-jobs")
    settings.SCALING_FLEETS = [
        {"name": "video", "asg_name": ASG, "source": "port", "queue_url": aws["queue_url"]},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": created["queue_url"],
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
        },
    ]
    autoscaling = _autoscaling(aws)

    def disabled(asg: str) -> bool:
        found = autoscaling.describe_policies(AutoScalingGroupName=asg)["ScalingPolicies"]
        policy = next(p for p in found if p["PolicyName"] == TARGET_POLICY_NAME)
        return bool(policy["TargetTrackingConfiguration"].get("DisableScaleIn"))

    with calls_held_to_the_configured_fleets():
        _install("--all")
        paused = _pause("--fleet", "ai", "--minutes", "10", "--reason", "model rollout")
        assert paused["pause"]["asg_name"] == AI_ASG
        assert (disabled(AI_ASG), disabled(ASG)) == (True, False)
        status = _status_json()
        by_fleet = {f["fleet_name"]: f["pause"] for f in status["fleets"]}
        assert by_fleet["video"] is None
        assert by_fleet["ai"]["reason"] == "model rollout"
        assert _pause("--resume")["action"] == "not-paused"  # the default fleet: video
        shown = StringIO()
        call_command("scaling_pause", "--json", stdout=shown)
        pauses = json.loads(shown.getvalue())["pauses"]
        assert (pauses["video"], pauses["ai"]["asg_name"]) == (None, AI_ASG)

        until = ScalingPause.objects.get(fleet="ai").until
        slot_tick(now=_slot_start_after(until))  # every fleet's tick: the publisher ends it

    assert ScalingPause.objects.get(fleet="ai").end_reason == PauseEnd.EXPIRED
    assert (disabled(AI_ASG), disabled(ASG)) == (False, False)
