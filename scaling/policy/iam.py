"""The IAM documents of deploy/iam/, rendered for the configured fleets.

``publisher`` (the API stack's role): PutMetricData only in the fleets'
namespaces (condition ``cloudwatch:namespace``), the queue depth of each fleet's
queue, job messages on the job queue, the end of a scale-in pause whose time is
up (DescribePolicies, PutScalingPolicy on the fleets' groups: scaling.policy.pause),
and protection and drain on the groups of the fleets whose workers hold leases
(their instances and warm pools read: DescribeAutoScalingGroups, DescribeWarmPool).
``installer``: the policies, metrics collection, marker tags, drain hook and warm pool
(``--warm-pool``) on each fleet's group, each fleet's six alarms and its dashboard (and
the fleets dashboard of ``--all`` when there are several). ``status``: reads only (the
warm pool and the predictive forecast included).

With no ``SCALING_FLEETS`` (one fleet, ``video``) and the job queue
``academy-video-jobs``, the text is deploy/iam/<role>.json exactly
(tests/deploy/test_iam_documents.py holds them equal). ARNs keep ``REGION`` and
``ACCOUNT_ID`` unless given: every resource lives in the deployment's region and
account, queues included (only the queue's name is taken from its URL).
"""

from __future__ import annotations

import json
from typing import Any

from scaling.conf import scaling_settings
from scaling.fleets import Fleet, fleet_problems, fleets_get
from scaling.policy.alarms import alarm_names
from scaling.policy.dashboard import FLEETS_DASHBOARD_NAME, dashboard_name
from scaling.policy.options import PolicyError
from scaling.policy.requests import wake_alarm_name

ROLES = ("publisher", "installer", "status")
_READS = [
    "autoscaling:DescribeAutoScalingGroups",
    "autoscaling:DescribePolicies",
    "autoscaling:DescribeLifecycleHooks",
    "autoscaling:DescribeWarmPool",
    "autoscaling:GetPredictiveScalingForecast",
    "cloudwatch:DescribeAlarms",
]


def _one_or_many(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _group_arn(asg_name: str, region: str, account: str) -> str:
    return (
        f"arn:aws:autoscaling:{region}:{account}:autoScalingGroup:*:autoScalingGroupName/{asg_name}"
    )


def _queue_arn(queue_url: str, region: str, account: str) -> str:
    return f"arn:aws:sqs:{region}:{account}:{queue_url.rstrip('/').rsplit('/', 1)[-1]}"


def _groups_sid(fleets: list[Fleet]) -> str:
    return "TheVideoGroup" if [f.name for f in fleets] == ["video"] else "TheFleetsGroups"


def _publisher(fleets: list[Fleet], region: str, account: str) -> list[dict[str, Any]]:
    namespaces = list(dict.fromkeys(f.namespace for f in fleets))
    statements: list[dict[str, Any]] = [
        {
            "Sid": "PublishBacklogMetricInOurNamespaceOnly"
            if len(namespaces) == 1
            else "PublishBacklogMetricsInOurNamespacesOnly",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",
            "Condition": {"StringEquals": {"cloudwatch:namespace": _one_or_many(namespaces)}},
        }
    ]
    queues = list(
        dict.fromkeys(_queue_arn(f.queue_url, region, account) for f in fleets if f.queue_url)
    )
    if queues:
        every_fallback = all(f.source == "port" for f in fleets)
        statements.append(
            {
                "Sid": "ReadQueueDepthForTheFallback"
                if every_fallback
                else "ReadQueueDepthOfEachFleet",
                "Effect": "Allow",
                "Action": "sqs:GetQueueAttributes",
                "Resource": _one_or_many(queues),
            }
        )
    job_queue = scaling_settings().sqs_queue_url
    if job_queue:
        statements.append(
            {
                "Sid": "SendAJobMessageForEachUploadedVideo",
                "Effect": "Allow",
                "Action": "sqs:SendMessage",
                "Resource": _queue_arn(job_queue, region, account),
            }
        )
    # The tick ends a scale-in pause whose time is up (scaling.policy.pause): it reads the
    # installer's target tracking policy back and puts it again with DisableScaleIn false.
    statements.append(
        {
            "Sid": "ReadScalingPoliciesDescribeHasNoResourceLevelPermissions",
            "Effect": "Allow",
            "Action": "autoscaling:DescribePolicies",
            "Resource": "*",
        }
    )
    statements.append(
        {
            "Sid": f"EndAScaleInPauseWhenItsTimeIsUpIn{_groups_sid(fleets)}Only",
            "Effect": "Allow",
            "Action": "autoscaling:PutScalingPolicy",
            "Resource": _one_or_many([_group_arn(f.asg_name, region, account) for f in fleets]),
        }
    )
    leased = [f for f in fleets if f.leases]
    if leased:
        groups = _groups_sid(leased).replace("TheVideoGroup", "TheVideoGroups")
        statements.append(
            {
                # The reconciler: the group's instances, and its warm pool's (an instance
                # returning to the pool waits under the drain hook: scaling.fleet.pool).
                "Sid": f"Read{groups}InstancesAndWarmPoolDescribeHasNoResourceLevelPermissions",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeWarmPool",
                ],
                "Resource": "*",
            }
        )
        statements.append(
            {
                "Sid": f"ProtectBusyInstancesAndDrainTerminatingOnesIn{_groups_sid(leased)}Only",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:SetInstanceProtection",
                    "autoscaling:RecordLifecycleActionHeartbeat",
                    "autoscaling:CompleteLifecycleAction",
                ],
                "Resource": _one_or_many([_group_arn(f.asg_name, region, account) for f in leased]),
            }
        )
    return statements


def _installer(fleets: list[Fleet], region: str, account: str) -> list[dict[str, Any]]:
    alarms = [
        f"arn:aws:cloudwatch:{region}:{account}:alarm:{name}"
        for fleet in fleets
        for name in [wake_alarm_name(fleet.asg_name), *alarm_names(fleet.asg_name).values()]
    ]
    boards = [dashboard_name(f.asg_name) for f in fleets]
    if len(fleets) > 1:
        boards.append(FLEETS_DASHBOARD_NAME)
    return [
        {"Sid": "ReadGroupsAndPolicies", "Effect": "Allow", "Action": _READS, "Resource": "*"},
        {
            "Sid": f"ManageOurPoliciesMetricsMarkerTagAndDrainHookOn{_groups_sid(fleets)}",
            "Effect": "Allow",
            "Action": [
                "autoscaling:PutScalingPolicy",
                "autoscaling:DeletePolicy",
                "autoscaling:EnableMetricsCollection",
                "autoscaling:DisableMetricsCollection",
                "autoscaling:CreateOrUpdateTags",
                "autoscaling:DeleteTags",
                "autoscaling:PutLifecycleHook",
                "autoscaling:DeleteLifecycleHook",
                "autoscaling:PutWarmPool",
                "autoscaling:DeleteWarmPool",
            ],
            "Resource": _one_or_many([_group_arn(f.asg_name, region, account) for f in fleets]),
        },
        {
            "Sid": "ManageTheWakeFromZeroAndScalingAlarms",
            "Effect": "Allow",
            "Action": ["cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms"],
            "Resource": alarms,
        },
        {
            "Sid": "ManageTheScalingDashboard"
            if len(boards) == 1
            else "ManageTheScalingDashboards",
            "Effect": "Allow",
            "Action": [
                "cloudwatch:GetDashboard",
                "cloudwatch:PutDashboard",
                "cloudwatch:DeleteDashboards",
            ],
            "Resource": _one_or_many(
                [f"arn:aws:cloudwatch::{account}:dashboard/{name}" for name in boards]
            ),
        },
    ]


def _status() -> list[dict[str, Any]]:
    return [{"Sid": "ReadOnlyScalingStatus", "Effect": "Allow", "Action": _READS, "Resource": "*"}]


def iam_document_build(
    role: str,
    fleets: list[Fleet] | None = None,
    *,
    region: str = "REGION",
    account: str = "ACCOUNT_ID",
) -> dict[str, Any]:
    """The role's policy document for these fleets (None: the configured ones).

    PolicyError when the role is unknown or SCALING_FLEETS has a bad entry (a
    document that silently left a fleet out would deny it in production).
    """
    if role not in ROLES:
        raise PolicyError(f"--role must be one of {', '.join(ROLES)}, got {role!r}.")
    if fleets is None:
        problems = fleet_problems()
        if problems:
            raise PolicyError(
                f"No IAM document rendered: {problems[0].message.rstrip('.')}; fix "
                "SCALING_FLEETS first (manage.py check)."
            )
        fleets = fleets_get()
    if role == "publisher":
        statements = _publisher(fleets, region, account)
    elif role == "installer":
        statements = _installer(fleets, region, account)
    else:
        statements = _status()
    return {"Version": "2012-10-17", "Statement": statements}


def iam_document_text(document: dict[str, Any]) -> str:
    """The document as deploy/iam/<role>.json holds it."""
    return json.dumps(document, indent=2) + "\n"
