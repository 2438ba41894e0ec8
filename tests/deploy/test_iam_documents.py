"""The IAM documents in deploy/iam/ against the AWS calls the code really makes.

``scaling.aws`` tells observers about every call that reached an endpoint,
with the role of the client that made it. The session fixture in
``tests/conftest.py`` records them all and fails the run when a call is not
allowed by ``deploy/iam/<role>.json``; the tests here drive each role's code
path so the check never depends on which other tests ran.
"""

from __future__ import annotations

import contextlib
import fnmatch
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from scaling.aws import aws_call_observers
from scaling.policy.iam import ROLES, iam_document_build, iam_document_text
from scaling.publishing.tick import backlog_tick
from tests.factories import videos_create

IAM_DIR = Path(__file__).resolve().parents[2] / "deploy" / "iam"
MOTO_ACCOUNT = "123456789012"
REGION = "ap-northeast-2"
# Roles whose policy document belongs to another part of deploy/ (issue 5's SSM tooling).
ROLES_DOCUMENTED_ELSEWHERE = frozenset({"ssm"})

Call = tuple[str, str, str, dict[str, Any], int]
# Actions a document grants that no call here can exercise, and why. GetPredictiveScaling-
# Forecast: moto 5 does not implement it (it answers an unknown action), so no test can
# drive a successful call; the installer and status read the forecast of the predictive
# policy (install_scaling_policy --predictive) there. Each is held by name below.
NOT_EXERCISED: dict[str, set[str]] = {
    "installer": {"autoscaling:GetPredictiveScalingForecast"},
    "status": {"autoscaling:GetPredictiveScalingForecast"},
}  # role, service, operation, params, status


def iam_document_load(role: str, *, region: str = REGION, account: str = MOTO_ACCOUNT) -> Any:
    text = (IAM_DIR / f"{role}.json").read_text(encoding="utf-8")
    return json.loads(text.replace("REGION", region).replace("ACCOUNT_ID", account))


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def call_resources(service: str, operation: str, params: Mapping[str, Any]) -> list[str]:
    """The ARNs IAM authorises a call against ("*" where the action has no resource type)."""
    if service == "autoscaling":
        names = [t["ResourceId"] for t in params.get("Tags", [])]
        if operation.startswith("Describe") or not (names or params.get("AutoScalingGroupName")):
            return ["*"]
        names = names or [params["AutoScalingGroupName"]]
        return [
            f"arn:aws:autoscaling:{REGION}:{MOTO_ACCOUNT}:autoScalingGroup:"
            f"00000000-0000-0000-0000-000000000000:autoScalingGroupName/{name}"
            for name in names
        ]
    if service == "cloudwatch" and operation in ("PutMetricAlarm", "DeleteAlarms"):
        names = params.get("AlarmNames") or [params["AlarmName"]]
        return [f"arn:aws:cloudwatch:{REGION}:{MOTO_ACCOUNT}:alarm:{name}" for name in names]
    if service == "cloudwatch" and "Dashboard" in operation:
        names = params.get("DashboardNames") or [params["DashboardName"]]
        # Dashboards are global: no region in their ARN.
        return [f"arn:aws:cloudwatch::{MOTO_ACCOUNT}:dashboard/{name}" for name in names]
    if service == "sqs" and "QueueUrl" in params:
        account, name = params["QueueUrl"].rstrip("/").split("/")[-2:]
        return [f"arn:aws:sqs:{REGION}:{account}:{name}"]
    return ["*"]


def call_context(service: str, operation: str, params: Mapping[str, Any]) -> dict[str, str]:
    if service == "cloudwatch" and operation == "PutMetricData":
        return {"cloudwatch:namespace": params["Namespace"]}
    return {}


def _condition_holds(condition: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    for operator, tests in condition.items():
        if operator != "StringEquals":
            return False  # an operator this checker does not know never grants
        for key, wanted in tests.items():
            if context.get(key) not in _as_list(wanted):
                return False
    return True


def iam_allows(
    document: Mapping[str, Any], *, action: str, resource: str, context: Mapping[str, str]
) -> bool:
    allowed = False
    for statement in _as_list(document["Statement"]):
        actions = [a.lower() for a in _as_list(statement.get("Action", []))]
        if not any(fnmatch.fnmatchcase(action.lower(), a) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in _as_list(statement["Resource"])):
            continue
        if not _condition_holds(statement.get("Condition", {}), context):
            continue
        if statement["Effect"] == "Deny":
            return False
        allowed = True
    return allowed


def iam_violations(
    calls: list[Call],
    *,
    successful_only: bool = False,
    documents: Mapping[str, Any] | None = None,
) -> list[str]:
    """The calls a role's document would deny.

    ``successful_only`` leaves out calls the endpoint answered with an error (a test
    pointing the app at a queue that does not exist): IAM denying them changes nothing.
    ``documents`` (role -> document) replaces deploy/iam/<role>.json for those roles:
    the documents rendered for other fleets (scaling.policy.iam).
    """
    documents = documents or {}
    problems: list[str] = []
    for role, service, operation, params, status in calls:
        if role in ROLES_DOCUMENTED_ELSEWHERE:
            continue
        if successful_only and not 200 <= status < 300:
            continue
        action = f"{service}:{operation}"
        if role not in documents and not (IAM_DIR / f"{role}.json").exists():
            problems.append(f"{action} by role {role}: no deploy/iam/{role}.json")
            continue
        document = documents[role] if role in documents else iam_document_load(role)
        context = call_context(service, operation, params)
        for resource in call_resources(service, operation, params):
            if not iam_allows(document, action=action, resource=resource, context=context):
                problems.append(
                    f"{action} on {resource} by role {role} {context or ''}: "
                    f"not allowed by deploy/iam/{role}.json"
                )
    return sorted(set(problems))


def fleet_documents() -> dict[str, Any]:
    """Each role's document rendered for the fleets configured now, in moto's account."""
    return {role: iam_document_build(role, region=REGION, account=MOTO_ACCOUNT) for role in ROLES}


@contextlib.contextmanager
def calls_held_to_the_configured_fleets() -> Iterator[list[Call]]:
    """The AWS calls made inside, held to the documents rendered for the fleets
    configured at the end of the block (scaling.policy.iam) rather than to
    deploy/iam/, which is for the default fleet alone: a test that configures other
    fleets uses this, and its calls are kept from the session's check (conftest)."""
    calls: list[Call] = []

    def observe(
        role: str, service: str, operation: str, params: Mapping[str, Any], status: int
    ) -> None:
        calls.append((role, service, operation, dict(params), status))

    others = list(aws_call_observers)
    aws_call_observers[:] = [observe]
    try:
        yield calls
    finally:
        aws_call_observers[:] = others
    assert iam_violations(calls, successful_only=True, documents=fleet_documents()) == []


@pytest.fixture
def recorded() -> Iterator[list[Call]]:
    calls: list[Call] = []

    def observe(
        role: str, service: str, operation: str, params: Mapping[str, Any], status: int
    ) -> None:
        calls.append((role, service, operation, dict(params), status))

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)


def _operations(calls: list[Call], role: str) -> set[str]:
    return {f"{service}:{operation}" for r, service, operation, _, _ in calls if r == role}


# The documents themselves -------------------------------------------------------


@pytest.mark.parametrize("role", ["publisher", "installer", "status", "worker"])
def test_document_is_valid_policy_json(role: str) -> None:
    document = iam_document_load(role)

    assert document["Version"] == "2012-10-17"
    for statement in document["Statement"]:
        assert set(statement) <= {"Sid", "Effect", "Action", "Resource", "Condition"}
        assert statement["Effect"] == "Allow"
        assert all("*" not in a.split(":", 1)[1] for a in _as_list(statement["Action"]))


def test_no_document_lets_the_app_set_capacity_by_hand() -> None:
    for path in sorted(IAM_DIR.glob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert "SetDesiredCapacity" not in text, path.name
        assert "autoscaling:*" not in text, path.name
        assert '"Action": "*"' not in text, path.name


def test_publisher_may_put_metrics_only_in_the_spec_namespace() -> None:
    from scaling.metric_spec import metric_spec_get

    document = iam_document_load("publisher")
    namespace = metric_spec_get().namespace

    assert iam_allows(
        document,
        action="cloudwatch:PutMetricData",
        resource="*",
        context={"cloudwatch:namespace": namespace},
    )
    assert not iam_allows(
        document,
        action="cloudwatch:PutMetricData",
        resource="*",
        context={"cloudwatch:namespace": "AWS/EC2"},
    )
    assert not iam_allows(
        document,
        action="sqs:GetQueueAttributes",
        resource=f"arn:aws:sqs:{REGION}:{MOTO_ACCOUNT}:another-queue",
        context={},
    )


def test_installer_may_not_touch_another_group() -> None:
    other = call_resources(
        "autoscaling",
        "PutScalingPolicy",
        {"AutoScalingGroupName": "someone-elses-asg", "PolicyName": "x"},
    )[0]

    assert not iam_allows(
        iam_document_load("installer"),
        action="autoscaling:PutScalingPolicy",
        resource=other,
        context={},
    )


# The calls the code makes -------------------------------------------------------


@pytest.mark.django_db
def test_every_call_of_every_role_is_allowed_by_its_document(
    aws: dict[str, str], recorded: list[Call]
) -> None:
    videos_create(UPLOADED=2)
    backlog_tick()  # publisher: PutMetricData (and the fleet reconciler's read of the group)
    _fleet_calls_drive(aws)  # publisher: protection and lifecycle actions
    from scaling.publishing.backlog import backlog_measure_sqs

    backlog_measure_sqs(queue_url=aws["queue_url"])  # publisher: the fallback read
    from video.jobs import video_job_send

    assert video_job_send(1, queue_url=aws["queue_url"])  # the API: a job message
    call_command("install_scaling_policy", "--dry-run", "--json")
    call_command("install_scaling_policy", "--json")
    topic = f"arn:aws:sns:{REGION}:{MOTO_ACCOUNT}:academy-scaling-alarms"
    call_command("install_scaling_policy", "--target-value", "4", "--alarm-topic", topic, "--json")
    call_command("scaling_pause", "--minutes", "5", "--reason", "iam", "--json")  # installer
    call_command("scaling_status", "--json")
    from scaling.policy.pause import pause_expire

    # publisher: the tick ends a pause whose time is up
    assert pause_expire(now=datetime.now(UTC) + timedelta(minutes=6), seconds=3) == 1
    call_command("install_scaling_policy", "--warm-pool", "--json")  # installer: PutWarmPool
    from tests.scaling.fleet_support import reconcile

    reconcile()  # publisher: the reconciler reads the group's warm pool (DescribeWarmPool)
    call_command("install_scaling_policy", "--uninstall", "--json")  # ... and DeleteWarmPool

    assert _operations(recorded, "publisher") == {
        "cloudwatch:PutMetricData",
        "autoscaling:DescribePolicies",
        "autoscaling:PutScalingPolicy",
        "sqs:GetQueueAttributes",
        "sqs:SendMessage",
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribeWarmPool",
        "autoscaling:SetInstanceProtection",
        "autoscaling:RecordLifecycleActionHeartbeat",
        "autoscaling:CompleteLifecycleAction",
    }
    assert _operations(recorded, "installer") == {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribePolicies",
        "cloudwatch:DescribeAlarms",
        "autoscaling:EnableMetricsCollection",
        "autoscaling:CreateOrUpdateTags",
        "autoscaling:PutScalingPolicy",
        "cloudwatch:PutMetricAlarm",
        "cloudwatch:DeleteAlarms",
        "cloudwatch:GetDashboard",
        "cloudwatch:PutDashboard",
        "cloudwatch:DeleteDashboards",
        "autoscaling:DeletePolicy",
        "autoscaling:DisableMetricsCollection",
        "autoscaling:DeleteTags",
        "autoscaling:DescribeLifecycleHooks",
        "autoscaling:PutLifecycleHook",
        "autoscaling:DeleteLifecycleHook",
        "autoscaling:DescribeWarmPool",
        "autoscaling:PutWarmPool",
        "autoscaling:DeleteWarmPool",
    }
    assert _operations(recorded, "status") - NOT_EXERCISED["status"] == {
        "autoscaling:DescribeAutoScalingGroups",
        "autoscaling:DescribePolicies",
        "autoscaling:DescribeLifecycleHooks",
        "autoscaling:DescribeWarmPool",
        "cloudwatch:DescribeAlarms",
    }
    assert iam_violations(recorded) == []
    # Exactly the actions used, and nothing else (but those moto cannot answer).
    for role in ("publisher", "installer", "status"):
        unexercised = NOT_EXERCISED.get(role, set())
        used = _operations(recorded, role) - unexercised
        assert _document_actions(role) - unexercised == used, role


def _fleet_calls_drive(aws: dict[str, str]) -> None:
    """The API role's fleet calls: protection at claim and by the reconciler against
    moto; the lifecycle actions on a Stubber (moto never holds an instance in
    Terminating:Wait), on the app's own observed client."""
    from scaling.fleet.protection import instance_protect_for_claim
    from tests.factories import video_leased
    from tests.scaling.fleet_support import (
        group_described,
        group_resize,
        instance_described,
        reconcile,
        stubbed_fleet,
    )

    claimed, busy = sorted(group_resize(aws, 2))
    for instance_id in (claimed, busy):
        video_leased(instance_id=instance_id)
    assert instance_protect_for_claim(claimed) is True
    assert reconcile().protected_now == [busy]
    # Actions go in instance id order: the idle one's id sorts after any of moto's.
    with pytest.MonkeyPatch.context() as patch:
        stub = stubbed_fleet(patch)
        stub.add_response(
            "describe_auto_scaling_groups",
            group_described(
                instance_described(busy, "Terminating:Wait"),
                instance_described("i-fffffffffffffff01", "Terminating:Wait"),
            ),
        )
        stub.add_response("record_lifecycle_action_heartbeat", {})
        stub.add_response("complete_lifecycle_action", {})
        outcome = reconcile()
        stub.assert_no_pending_responses()
    assert (outcome.heartbeats, outcome.completed) == ([busy], ["i-fffffffffffffff01"])


def test_publisher_may_change_protection_only_in_the_video_group() -> None:
    document = iam_document_load("publisher")
    for operation in (
        "SetInstanceProtection",
        "RecordLifecycleActionHeartbeat",
        "CompleteLifecycleAction",
    ):
        params = {"AutoScalingGroupName": "academy-video-worker-asg", "InstanceIds": ["i-1"]}
        [ours] = call_resources("autoscaling", operation, params)
        [theirs] = call_resources(
            "autoscaling", operation, {**params, "AutoScalingGroupName": "someone-elses-asg"}
        )
        action = f"autoscaling:{operation}"
        assert iam_allows(document, action=action, resource=ours, context={})
        assert not iam_allows(document, action=action, resource=theirs, context={})
    assert not iam_allows(
        document, action="autoscaling:SetDesiredCapacity", resource="*", context={}
    )


def _document_actions(role: str) -> set[str]:
    return {
        action
        for statement in iam_document_load(role)["Statement"]
        for action in _as_list(statement["Action"])
    }


def test_installer_may_write_exactly_the_alarms_and_the_dashboard_it_installs() -> None:
    from scaling.policy.alarms import alarm_names
    from scaling.policy.dashboard import dashboard_name
    from scaling.policy.requests import wake_alarm_name

    asg = "academy-video-worker-asg"
    statements = iam_document_load("installer")["Statement"]
    [alarms] = [s for s in statements if "cloudwatch:PutMetricAlarm" in s["Action"]]
    [dashboard] = [s for s in statements if "cloudwatch:PutDashboard" in s["Action"]]

    assert sorted(_as_list(alarms["Resource"])) == sorted(
        f"arn:aws:cloudwatch:{REGION}:{MOTO_ACCOUNT}:alarm:{name}"
        for name in [wake_alarm_name(asg), *alarm_names(asg).values()]
    )
    assert _as_list(dashboard["Resource"]) == call_resources(
        "cloudwatch", "PutDashboard", {"DashboardName": dashboard_name(asg)}
    )
    assert not iam_allows(
        iam_document_load("installer"),
        action="cloudwatch:PutMetricAlarm",
        resource=f"arn:aws:cloudwatch:{REGION}:{MOTO_ACCOUNT}:alarm:someone-elses-alarm",
        context={},
    )


def test_a_call_outside_the_document_is_reported() -> None:
    calls: list[Call] = [
        ("installer", "autoscaling", "SetDesiredCapacity", {"AutoScalingGroupName": "g"}, 200),
        ("publisher", "cloudwatch", "PutMetricData", {"Namespace": "Other/Space"}, 200),
        ("nobody", "sqs", "ListQueues", {}, 200),
    ]

    problems = iam_violations(calls)

    assert len(problems) == 3
    assert any(
        re.search(r"SetDesiredCapacity .* not allowed by deploy/iam/installer", p) for p in problems
    )
    assert any("no deploy/iam/nobody.json" in p for p in problems)


# The documents rendered for the configured fleets (scaling.policy.iam) --------------

DOCUMENTED_JOB_QUEUE = f"https://sqs.{REGION}.amazonaws.com/{MOTO_ACCOUNT}/academy-video-jobs"
AI_FLEET = {
    "name": "ai",
    "asg_name": "academy-ai-worker-asg",
    "source": "sqs",
    "queue_url": f"https://sqs.{REGION}.amazonaws.com/{MOTO_ACCOUNT}/ai-jobs",
    "namespace": "Academy/Workers",
    "dimensions": {"WorkerType": "AI"},
}
TWO_FLEETS = [
    {"name": "video", "asg_name": "academy-video-worker-asg", "source": "port"},
    AI_FLEET,
]


@pytest.mark.parametrize("role", ROLES)
def test_the_static_document_is_the_one_rendered_for_the_default_fleet(
    role: str, settings: Any
) -> None:
    """deploy/iam/ cannot drift from the renderer: with no SCALING_FLEETS (and the
    documented job queue) `manage.py scaling_iam_policy --role R` prints the file."""
    settings.SCALING_FLEETS = None
    settings.SCALING_SQS_QUEUE_URL = DOCUMENTED_JOB_QUEUE
    out = StringIO()

    call_command("scaling_iam_policy", "--role", role, stdout=out)

    assert out.getvalue() == (IAM_DIR / f"{role}.json").read_text(encoding="utf-8")
    assert iam_document_text(iam_document_build(role)) == out.getvalue()


def test_a_second_fleets_namespace_is_refused_by_the_default_document_and_allowed_when_rendered(
    settings: Any,
) -> None:
    from scaling.fleets import fleets_namespaces

    settings.SCALING_FLEETS = TWO_FLEETS
    rendered = fleet_documents()["publisher"]
    [statement] = [s for s in rendered["Statement"] if s["Action"] == "cloudwatch:PutMetricData"]

    assert statement["Condition"]["StringEquals"]["cloudwatch:namespace"] == fleets_namespaces()
    assert fleets_namespaces() == ["Academy/VideoProcessing", "Academy/Workers"]
    for namespace, by_default in (("Academy/VideoProcessing", True), ("Academy/Workers", False)):
        context = {"cloudwatch:namespace": namespace}
        action = "cloudwatch:PutMetricData"
        assert (
            iam_allows(iam_document_load("publisher"), action=action, resource="*", context=context)
            is by_default
        )
        assert iam_allows(rendered, action=action, resource="*", context=context)
    assert not iam_allows(
        rendered,
        action="cloudwatch:PutMetricData",
        resource="*",
        context={"cloudwatch:namespace": "Academy/Messaging"},
    )


def test_the_rendered_documents_cover_each_fleets_group_and_nothing_else(settings: Any) -> None:
    from scaling.policy.alarms import alarm_names
    from scaling.policy.dashboard import FLEETS_DASHBOARD_NAME, dashboard_name

    settings.SCALING_FLEETS = TWO_FLEETS
    documents = fleet_documents()
    installer, publisher = documents["installer"], documents["publisher"]

    def allowed(document: Any, operation: str, params: dict[str, Any]) -> bool:
        service = "cloudwatch" if operation in ("PutMetricAlarm", "PutDashboard") else "autoscaling"
        [resource] = call_resources(service, operation, params)
        return iam_allows(document, action=f"{service}:{operation}", resource=resource, context={})

    for asg in ("academy-video-worker-asg", "academy-ai-worker-asg"):
        assert allowed(installer, "PutScalingPolicy", {"AutoScalingGroupName": asg})
        assert allowed(installer, "PutMetricAlarm", {"AlarmName": alarm_names(asg)["starved"]})
        assert allowed(installer, "PutDashboard", {"DashboardName": dashboard_name(asg)})
    assert allowed(installer, "PutDashboard", {"DashboardName": FLEETS_DASHBOARD_NAME})
    assert not allowed(installer, "PutScalingPolicy", {"AutoScalingGroupName": "someone-elses"})
    assert not allowed(installer, "PutMetricAlarm", {"AlarmName": "someone-elses-alarm"})
    # Protection and drain only where the workers hold leases: not on the SQS fleet's group.
    protect = {"InstanceIds": ["i-1"]}
    assert allowed(
        publisher,
        "SetInstanceProtection",
        {**protect, "AutoScalingGroupName": "academy-video-worker-asg"},
    )
    assert not allowed(
        publisher,
        "SetInstanceProtection",
        {**protect, "AutoScalingGroupName": "academy-ai-worker-asg"},
    )
    # The SQS fleet's queue depth, read through the document rendered for it.
    [queue] = call_resources("sqs", "GetQueueAttributes", {"QueueUrl": AI_FLEET["queue_url"]})
    assert iam_allows(publisher, action="sqs:GetQueueAttributes", resource=queue, context={})
    assert not iam_allows(
        iam_document_load("publisher"), action="sqs:GetQueueAttributes", resource=queue, context={}
    )


def test_a_bad_fleet_entry_renders_no_document(settings: Any) -> None:
    settings.SCALING_FLEETS = [*TWO_FLEETS, {"name": "Bad Name", "asg_name": "x"}]

    with pytest.raises(CommandError) as raised:
        call_command("scaling_iam_policy", "--role", "publisher", stdout=StringIO())

    assert str(raised.value) == (
        "No IAM document rendered: SCALING_FLEETS fleet 'Bad Name': name must be 1-32 "
        "lower-case letters, digits, - or _, starting with a letter, got 'Bad Name'; fix "
        "SCALING_FLEETS first (manage.py check)."
    )


@pytest.mark.django_db
def test_two_fleets_publish_and_install_within_the_documents_rendered_for_them(
    aws: dict[str, str], settings: Any
) -> None:
    from devstack.localaws import local_aws_bootstrap

    ai = local_aws_bootstrap(
        aws["endpoint"], asg_name="academy-ai-worker-asg", queue_name="ai-jobs"
    )
    settings.SCALING_FLEETS = [TWO_FLEETS[0], {**AI_FLEET, "queue_url": ai["queue_url"]}]
    videos_create(UPLOADED=2)

    with calls_held_to_the_configured_fleets() as calls:
        backlog_tick()
        call_command("install_scaling_policy", "--all", "--json", stdout=StringIO())
        call_command("install_scaling_policy", "--uninstall", "--all", "--json", stdout=StringIO())

    namespaces = {p["Namespace"] for _, _, op, p, _ in calls if op == "PutMetricData"}
    assert namespaces == {"Academy/VideoProcessing", "Academy/Workers"}
    assert ("publisher", "sqs", "GetQueueAttributes") in {c[:3] for c in calls}
    assert any("Academy/Workers" in p for p in iam_violations(calls))  # deploy/iam/ refuses


def test_the_actions_left_unexercised_are_granted_and_moto_cannot_answer_them() -> None:
    """The exception list stays honest: each action is in its role's document, and moto
    still lacks it (when moto gains it, exercise it and drop it from NOT_EXERCISED)."""
    from moto.autoscaling.responses import AutoScalingResponse

    for role, actions in NOT_EXERCISED.items():
        assert actions <= _document_actions(role), role
        for action in actions:
            operation = re.sub(r"(?<!^)(?=[A-Z])", "_", action.split(":", 1)[1]).lower()
            assert not hasattr(AutoScalingResponse, operation), action
