"""The stack's resources: the installer's own requests, with the group left open.

Every resource is an ``ApiRequest`` built by the installer's builders
(``scaling.policy.requests``, ``alarms``, ``dashboard``, ``hook``), so a
template can never say something the installer would not send. Four values a
template does not know when it is written are built in as placeholders
(``GROUP``, ``ACCOUNT``, ``PARTITION``, ``REGION``, ``WAKE_POLICY_ARN``) and
turned into references by each format: the group's name (a CloudFormation
parameter, a Terraform variable; the group is referenced, never created), the
account, partition and region the stack is deployed in, and the wake policy's
ARN (known once the policy exists).

What a template cannot carry: the group's metrics collection
(``EnableMetricsCollection`` is a property of the group itself), so the
stack's notes ask the group's own template to collect them.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from scaling.fleets import Fleet
from scaling.metric_spec import MetricSpec, metric_spec_get
from scaling.policy.alarms import ALARM_KINDS, AlarmKind, alarm_requests_build
from scaling.policy.dashboard import dashboard_request_build
from scaling.policy.hook import hook_request_build
from scaling.policy.options import TOTAL_MODE_WARNING, PolicyError, PolicyOptions
from scaling.policy.predictive import predictive_policy_request_build
from scaling.policy.requests import (
    GROUP_METRICS,
    METRICS_GRANULARITY,
    ApiRequest,
    target_policy_request_build,
    wake_alarm_request_build,
    wake_policy_request_build,
)
from scaling.policy.warm_pool import warm_pool_request_build
from scaling.port import LEASES_OFF, lease_hooks

# Placeholders: letters and digits only, so that no builder changes them (a dashboard
# name keeps A-Z a-z 0-9 - _) and no value the installer builds contains one by chance.
GROUP = "XEXPORTGROUPX"
ACCOUNT = "XEXPORTACCOUNTX"
PARTITION = "XEXPORTPARTITIONX"
REGION = "XEXPORTREGIONX"
WAKE_POLICY_ARN = "XEXPORTWAKEPOLICYARNX"
PLACEHOLDERS = (GROUP, ACCOUNT, PARTITION, REGION, WAKE_POLICY_ARN)
_PLACEHOLDER = re.compile("|".join(PLACEHOLDERS))
# The group's name ends up in the dashboard's name, which takes only these characters
# (the installer replaces the others; a template cannot): the parameter's pattern.
GROUP_NAME_PATTERN = r"^[A-Za-z0-9_-]{1,246}$"

# Logical ids (CloudFormation) and resource names (Terraform) of each resource.
TARGET_POLICY_ID = "TargetTrackingPolicy"
WAKE_POLICY_ID = "WakePolicy"
WAKE_ALARM_ID = "WakeAlarm"
DASHBOARD_ID = "Dashboard"
HOOK_ID = "DrainLifecycleHook"
WARM_POOL_ID = "WarmPool"
PREDICTIVE_POLICY_ID = "PredictivePolicy"


def alarm_id(kind: AlarmKind) -> str:
    """publisher-silent → PublisherSilentAlarm."""
    return "".join(part.title() for part in kind.split("-")) + "Alarm"


@dataclass(frozen=True)
class StackResource:
    logical_id: str
    kind: str  # the installer's item kind (target-tracking-policy, wake-alarm, ...)
    request: ApiRequest


@dataclass(frozen=True)
class Stack:
    """What one template holds: the fleet's resources and what the reader must know."""

    fleet: str | None
    group_default: str  # the group parameter's default (--asg-name or the fleet's group)
    options: PolicyOptions  # as parsed, with the real group's name
    spec: MetricSpec  # with GROUP as the group dimension
    resources: list[StackResource]
    notes: list[str]


def group_name_check(name: str) -> None:
    if not re.fullmatch(GROUP_NAME_PATTERN, name):
        raise PolicyError(
            f"export_scaling_stack needs a group name of letters, digits, - and _ (at most "
            f"246, the dashboard's name carries it), got {name[:100]!r}: install by command."
        )


def stack_build(*, options: PolicyOptions, fleet: Fleet | None) -> Stack:
    """The resources policy_install would write on an empty group, in its order.

    ``fleet`` as the installer's --fleet (its metric, its hook only with leases); None:
    the settings' metric, the hook when the host has lease hooks.
    """
    group_name_check(options.asg_name)
    spec = metric_spec_get(conf=fleet.conf() if fleet else None, asg_name=GROUP)
    open_options = dataclasses.replace(options, asg_name=GROUP)
    resources = [
        StackResource(
            TARGET_POLICY_ID,
            "target-tracking-policy",
            target_policy_request_build(spec=spec, options=open_options),
        ),
        StackResource(
            WAKE_POLICY_ID, "wake-policy", wake_policy_request_build(options=open_options)
        ),
        StackResource(
            WAKE_ALARM_ID,
            "wake-alarm",
            wake_alarm_request_build(
                spec=spec, options=open_options, wake_policy_arn=WAKE_POLICY_ARN
            ),
        ),
    ]
    alarms = alarm_requests_build(spec=spec, options=open_options)
    resources += [StackResource(alarm_id(k), f"{k}-alarm", alarms[k]) for k in ALARM_KINDS]
    group_arn = f"arn:{PARTITION}:autoscaling:{REGION}:{ACCOUNT}:autoScalingGroup:x:x"
    board = dashboard_request_build(
        spec=spec, options=open_options, region=REGION, group_arn=group_arn
    )
    resources.append(StackResource(DASHBOARD_ID, "dashboard", board))
    resources += _capacity_resources(spec, open_options)
    notes = [
        f"The group is referenced, not created: its template must collect "
        f"{', '.join(GROUP_METRICS)} at {METRICS_GRANULARITY} (MetricsCollection / "
        "enabled_metrics); install_scaling_policy enables them itself."
    ]
    if options.mode == "total":
        notes.append(TOTAL_MODE_WARNING)
    if options.predictive is not None:
        notes.append(
            "AWS forecasts only from 24 hours of metric history: install_scaling_policy "
            "--predictive refuses before its audit trail holds them; this template does not "
            "check."
        )
    if fleet is None and lease_hooks() is None:
        notes.append(f"No lifecycle hook: drain is {LEASES_OFF}.")
    elif fleet is not None and not fleet.leases:
        notes.append(
            f"No lifecycle hook: fleet {fleet.name}'s workers hold no leases "
            f"(source {fleet.source}), so there is nothing to drain."
        )
    else:
        hook = hook_request_build(
            asg_name=GROUP, drain_timeout_seconds=options.drain_timeout_seconds
        )
        resources.append(StackResource(HOOK_ID, "lifecycle-hook", hook))
    return Stack(
        fleet=fleet.name if fleet else None,
        group_default=options.asg_name,
        options=options,
        spec=spec,
        resources=resources,
        notes=notes,
    )


def _capacity_resources(spec: MetricSpec, options: PolicyOptions) -> list[StackResource]:
    """The warm pool and the predictive policy, when the flags ask for them (--no-warm-pool
    and --predictive off: a template without them is one that removes them)."""
    found = []
    if options.warm_pool is not None:
        pool = warm_pool_request_build(asg_name=GROUP, pool=options.warm_pool)
        found.append(StackResource(WARM_POOL_ID, "warm-pool", pool))
    if options.predictive is not None:
        policy = predictive_policy_request_build(spec=spec, options=options)
        found.append(StackResource(PREDICTIVE_POLICY_ID, "predictive-policy", policy))
    return found


def placeholder_split(text: str) -> list[str]:
    """The text cut around its placeholders: "a-XEXPORTGROUPX-b" → ["a-", GROUP, "-b"]."""
    parts: list[str] = []
    last = 0
    for found in _PLACEHOLDER.finditer(text):
        parts += [text[last : found.start()], found.group()]
        last = found.end()
    parts.append(text[last:])
    return [part for part in parts if part]
