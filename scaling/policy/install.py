"""Where the scaling policy is compared with what AWS holds, installed and removed.

What this module installs on the group, and nothing else:

- group metrics collection for ``GroupInServiceInstances`` at 1 minute (the
  divisor of backlog per instance), with a tag on the group saying this
  command enabled it, so that ``--uninstall`` knows whether to disable it;
- a target tracking policy on backlog per in-service instance (``per-instance``)
  or on the raw count (``total``, the old policy);
- a step scaling policy and a CloudWatch alarm that raise capacity by one when
  videos wait and no instance is in service (target tracking cannot divide by
  zero instances, so a group whose MinSize is 0 would otherwise never wake);
- five alarms that say when scaling breaks (``scaling.policy.alarms``) and a
  dashboard of the group's scaling (``scaling.policy.dashboard``);
- a termination lifecycle hook that lets a busy instance finish its video
  before it is terminated (``scaling.policy.hook``).

The requests are built in ``scaling.policy.requests``, the options checked in
``scaling.policy.options`` and the comparison made in ``scaling.policy.diff``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import ClientError
from botocore.parsers import ResponseParserError

from scaling.aws import autoscaling_client, cloudwatch_client
from scaling.conf import scaling_settings
from scaling.fleets import DEFAULT_FLEET, Fleet
from scaling.metric_spec import MetricSpec, metric_spec_get
from scaling.policy.alarms import alarm_names, alarm_requests_build, alarms_delete_request_build
from scaling.policy.current import (
    Current,
    aws_call,
    current_read,
    metrics_enabled,
    metrics_tagged,
    outside_note,
)
from scaling.policy.dashboard import (
    dashboard_delete_request_build,
    dashboard_name,
    dashboard_request_build,
)
from scaling.policy.diff import Action, FieldChange, ItemResult, item_for
from scaling.policy.hook import hook_delete_request_build, hook_request_build
from scaling.policy.options import TOTAL_MODE_WARNING, PolicyError, PolicyOptions
from scaling.policy.pause import pause_for_install, pauses_end_uninstalled
from scaling.policy.predictive import predictive_plan, predictive_removal
from scaling.policy.requests import (
    GROUP_METRICS,
    METRICS_GRANULARITY,
    PREDICTIVE_POLICY_NAME,
    TARGET_POLICY_NAME,
    WAKE_POLICY_NAME,
    ApiRequest,
    alarm_delete_request_build,
    metrics_collection_disable_request_build,
    metrics_collection_requests_build,
    metrics_tag_delete_request_build,
    policy_delete_request_build,
    target_policy_request_build,
    wake_alarm_name,
    wake_alarm_request_build,
    wake_policy_arn_placeholder,
    wake_policy_request_build,
)
from scaling.policy.warm_pool import warm_pool_plan, warm_pool_removal
from scaling.port import LEASES_OFF, lease_hooks

METRICS_ITEM_NAME = f"{', '.join(GROUP_METRICS)} ({METRICS_GRANULARITY})"


@dataclass
class PolicyRun:
    asg_name: str
    region: str
    dry_run: bool
    uninstall: bool
    options: PolicyOptions | None
    items: list[ItemResult] = field(default_factory=list)
    requests: list[ApiRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # Set by --fleet / --all (scaling.policy.fleet_runs): the fleet, its metric and group.
    fleet: str | None = None
    spec: MetricSpec | None = None
    group_arn: str = ""

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "asg_name": self.asg_name,
            "region": self.region,
            "dry_run": self.dry_run,
            "uninstall": self.uninstall,
            "items": [item.as_json() for item in self.items],
            "requests": [request.as_json() for request in self.requests],
            "warnings": self.warnings,
        }
        if self.fleet is not None:
            data["fleet"] = self.fleet
        if self.options is not None:
            data.update(self.options.as_json())
        return data

    def planned(self, perform: Any, plan: tuple[Any, ...]) -> None:
        """A warm pool or predictive plan (item or None, writes, warnings?) carried out."""
        item, writes, *warnings = plan
        for request in writes:
            perform(request)
        self.items += [item] if item is not None else []
        self.warnings += warnings[0] if warnings else []


def _send(client: Any, request: ApiRequest) -> Any:
    method = getattr(client, re.sub(r"(?<!^)(?=[A-Z])", "_", request.operation).lower())
    return aws_call(request.operation, lambda: method(**request.params))


def policy_install(
    *,
    options: PolicyOptions,
    dry_run: bool,
    fleet: Fleet | None = None,
    dashboard: bool = True,
    current: Current | None = None,
) -> PolicyRun:
    """Install (or align) everything this command owns on the group; idempotent.

    ``fleet`` (--fleet, --all): that fleet's metric, and its drain hook only where its
    workers hold leases; None: the settings' own metric, as before fleets. ``dashboard``
    False leaves the dashboard to the caller (--all: one dashboard for every fleet).
    ``current``: what AWS holds, when the caller read it already (--check, scaling.policy.check).
    """
    spec = metric_spec_get(conf=fleet.conf() if fleet else None, asg_name=options.asg_name)
    region = scaling_settings().region
    autoscaling = autoscaling_client(role="installer")
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    if current is None:
        current = current_read(
            asg_name=options.asg_name, region=region, autoscaling=autoscaling, cloudwatch=cloudwatch
        )
    run = PolicyRun(
        asg_name=options.asg_name,
        region=region,
        dry_run=dry_run,
        uninstall=False,
        options=options,
        fleet=fleet.name if fleet else None,
        spec=spec,
        group_arn=current.group["AutoScalingGroupARN"],
    )
    if options.mode == "total":
        run.warnings.append(TOTAL_MODE_WARNING)

    def perform(request: ApiRequest) -> Any:
        run.requests.append(request)
        if dry_run:
            return None
        return _send(autoscaling if request.service == "autoscaling" else cloudwatch, request)

    # 1. The group metrics: the divisor of backlog per instance, the alarms' and the
    # dashboard's in-service, desired and maximum capacity.
    note = outside_note(current.group, "enabled outside this command; --uninstall keeps them")
    metrics_item = ItemResult("metrics-collection", METRICS_ITEM_NAME, "unchanged", note=note)
    enabled = [m for m in GROUP_METRICS if m in metrics_enabled(current.group)]
    if len(enabled) < len(GROUP_METRICS):
        if enabled:
            metrics_item.action = "updated"
            metrics_item.changes = [FieldChange("EnabledMetrics", enabled, list(GROUP_METRICS))]
        else:
            metrics_item.action = "created"
        tagged = metrics_tagged(current.group) or ()
        enabled_here = tuple(m for m in GROUP_METRICS if m in tagged or m not in enabled)
        for request in metrics_collection_requests_build(
            asg_name=options.asg_name, enabled_here=enabled_here
        ):
            perform(request)
    run.items.append(metrics_item)

    # 2. and 3. The two policies.
    target_request = target_policy_request_build(spec=spec, options=options)
    paused, pause_note = pause_for_install(fleet.name if fleet else DEFAULT_FLEET)
    run.warnings += [pause_note] if pause_note else []
    if paused:
        # scaling_pause turned scale-in off on purpose: an install during it (a deploy
        # pipeline's) keeps it off; the pause's end turns it back on.
        target_request.params["TargetTrackingConfiguration"]["DisableScaleIn"] = True
    wake_arn = current.policies.get(WAKE_POLICY_NAME, {}).get("PolicyARN")
    for kind, request in (
        ("target-tracking-policy", target_request),
        ("wake-policy", wake_policy_request_build(options=options)),
    ):
        name = request.params["PolicyName"]
        existing = current.policies.get(name)
        item = item_for(kind, name, request, existing)
        if item.action != "unchanged":
            response = perform(request)
            if name == WAKE_POLICY_NAME and response is not None:
                wake_arn = response.get("PolicyArn") or wake_arn
        run.items.append(item)

    # 4. The alarm that calls the wake policy.
    if wake_arn is None and not dry_run:
        # moto's PutScalingPolicy answers without the ARN: read it back.
        described = aws_call(
            "DescribePolicies",
            lambda: autoscaling.describe_policies(
                AutoScalingGroupName=options.asg_name, PolicyNames=[WAKE_POLICY_NAME]
            ),
        )["ScalingPolicies"]
        wake_arn = described[0]["PolicyARN"] if described else None
        if wake_arn is None:
            raise PolicyError(f"Policy {WAKE_POLICY_NAME} was not found after it was written.")
    alarm_request = wake_alarm_request_build(
        spec=spec, options=options, wake_policy_arn=wake_arn or wake_policy_arn_placeholder()
    )
    alarm_item = item_for(
        "wake-alarm", alarm_request.params["AlarmName"], alarm_request, current.alarm
    )
    if alarm_item.action != "unchanged":
        perform(alarm_request)
    run.items.append(alarm_item)

    # 5. The alarms that say when scaling breaks, then the dashboard that shows them.
    for kind, request in alarm_requests_build(spec=spec, options=options).items():
        name = request.params["AlarmName"]
        item = item_for(f"{kind}-alarm", name, request, current.alarms.get(name))
        if item.action != "unchanged":
            perform(request)
        run.items.append(item)
    if dashboard:
        board = dashboard_request_build(
            spec=spec, options=options, region=region, group_arn=run.group_arn
        )
        body = json.loads(board.params["DashboardBody"])
        item = item_for("dashboard", board.params["DashboardName"], None, current.dashboard, body)
        if item.action != "unchanged":
            perform(board)
        run.items.append(item)

    # 6. The warm pool and the predictive policy: left as they are unless asked.
    run.planned(perform, warm_pool_plan(**_pool_args(options, current)))
    name = fleet.name if fleet else DEFAULT_FLEET
    held = current.policies.get(PREDICTIVE_POLICY_NAME)
    run.planned(perform, predictive_plan(spec=spec, options=options, held=held, fleet=name))

    # 7. The termination lifecycle hook: a busy instance drains before it goes. Without
    # leases no instance is ever busy, so the hook would only slow every termination.
    if fleet is None and lease_hooks() is None:
        run.warnings.append(f"Lifecycle hook not installed: drain is {LEASES_OFF}.")
        return run
    if fleet is not None and not fleet.leases:
        run.warnings.append(
            f"Lifecycle hook not installed: fleet {fleet.name}'s workers hold no leases "
            f"(source {fleet.source}), so there is nothing to drain."
        )
        return run
    hook = hook_request_build(
        asg_name=options.asg_name, drain_timeout_seconds=options.drain_timeout_seconds
    )
    item = item_for("lifecycle-hook", hook.params["LifecycleHookName"], hook, current.hook)
    if item.action != "unchanged":
        perform(hook)
    run.items.append(item)
    return run


def _pool_args(options: PolicyOptions, current: Current) -> dict[str, Any]:
    return {
        "asg_name": options.asg_name,
        "group": current.group,
        "held": current.warm_pool,
        "pool": options.warm_pool,
        "off": options.warm_pool_off,
    }


def _not_implemented(exc: PolicyError) -> bool:
    cause = exc.__cause__
    if isinstance(cause, ResponseParserError):
        return True  # an endpoint (moto) answering an unknown action with an HTML 500 page
    if isinstance(cause, ClientError):
        return cause.response.get("Error", {}).get("Code") in ("NotImplemented", "InvalidAction")
    return False


def policy_uninstall(*, asg_name: str, dry_run: bool, fleet: str | None = None) -> PolicyRun:
    """Remove what policy_install installed on the group, and only that (``fleet``: the
    fleet it belongs to, for --fleet / --all)."""
    region = scaling_settings().region
    autoscaling = autoscaling_client(role="installer")
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    current = current_read(
        asg_name=asg_name, region=region, autoscaling=autoscaling, cloudwatch=cloudwatch
    )
    run = PolicyRun(
        asg_name=asg_name, region=region, dry_run=dry_run, uninstall=True, options=None, fleet=fleet
    )

    def perform(request: ApiRequest) -> None:
        run.requests.append(request)
        if not dry_run:
            _send(autoscaling if request.service == "autoscaling" else cloudwatch, request)

    # The alarm first: it points at the wake policy.
    alarm_name = wake_alarm_name(asg_name)
    if current.alarm is None:
        run.items.append(ItemResult("wake-alarm", alarm_name, "absent"))
    else:
        perform(alarm_delete_request_build(alarm_name=alarm_name))
        run.items.append(ItemResult("wake-alarm", alarm_name, "removed"))
    our_alarms = alarm_names(asg_name)
    present = [alarm for alarm in our_alarms.values() if alarm in current.alarms]
    if present:
        perform(alarms_delete_request_build(alarm_names=present))
    for alarm_kind, alarm in our_alarms.items():
        gone: Action = "removed" if alarm in current.alarms else "absent"
        run.items.append(ItemResult(f"{alarm_kind}-alarm", alarm, gone))
    board = dashboard_name(asg_name)
    if current.dashboard is not None:
        perform(dashboard_delete_request_build(asg_name=asg_name))
    run.items.append(
        ItemResult("dashboard", board, "absent" if current.dashboard is None else "removed")
    )

    for kind, name in (
        ("target-tracking-policy", TARGET_POLICY_NAME),
        ("wake-policy", WAKE_POLICY_NAME),
    ):
        if name not in current.policies:
            run.items.append(ItemResult(kind, name, "absent"))
            continue
        perform(policy_delete_request_build(asg_name=asg_name, policy_name=name))
        run.items.append(ItemResult(kind, name, "removed"))
    if not dry_run:
        # A pause of scale-in never survives its policy (scaling.policy.pause).
        run.warnings += pauses_end_uninstalled(asg_name=asg_name)
    hook = hook_delete_request_build(asg_name=asg_name)
    if current.hook is not None:
        perform(hook)
    gone = "absent" if current.hook is None else "removed"
    run.items.append(ItemResult("lifecycle-hook", hook.params["LifecycleHookName"], gone))

    held = current.policies.get(PREDICTIVE_POLICY_NAME)
    run.planned(perform, predictive_removal(asg_name=asg_name, held=held))
    pool = warm_pool_removal(
        asg_name=asg_name, group=current.group, held=current.warm_pool, asked=False
    )
    run.planned(perform, pool)

    tagged = metrics_tagged(current.group)
    note = outside_note(current.group, "not enabled by this command")
    if tagged is None:
        action: Action = "kept" if note else "absent"
        run.items.append(ItemResult("metrics-collection", METRICS_ITEM_NAME, action, note=note))
        return run
    item = ItemResult("metrics-collection", METRICS_ITEM_NAME, "removed", note=note)
    ours = tuple(m for m in GROUP_METRICS if m in tagged and m in metrics_enabled(current.group))
    if ours:
        try:
            perform(metrics_collection_disable_request_build(asg_name=asg_name, metrics=ours))
        except PolicyError as exc:
            if not _not_implemented(exc):
                raise
            item.action = "kept"
            item.note = "this endpoint does not implement DisableMetricsCollection"
            run.warnings.append(
                f"Warning: {', '.join(ours)} collection stays enabled on {asg_name}: this "
                "endpoint does not implement DisableMetricsCollection."
            )
    perform(metrics_tag_delete_request_build(asg_name=asg_name))
    run.items.append(item)
    return run
