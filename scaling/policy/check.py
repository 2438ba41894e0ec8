"""install_scaling_policy --check: what AWS holds against what the command would install.

The comparison is the installer's own: ``policy_install`` run as a dry run on what
was read (``scaling.policy.install`` decides what is installed, ``scaling.policy.diff``
what differs), so --check reports a difference exactly where an install would write,
and writes nothing: every call it makes is a Describe or a Get, as the installer
role (deploy/iam/installer.json; status.json cannot read the dashboard).

A CloudFormation stack made from the export (``export_scaling_stack``) names its
scaling policies itself (``<stack>-<logical id>-<random>``): when the group holds no
policy of our name, the one of our shape stands in for it and is compared, and the
check says which: the target tracking policy that tracks the fleet's metric, the
step policy that the wake alarm calls. Alarms, the dashboard and the hook carry
their names in both paths and are matched by name.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from django.db import DatabaseError

from scaling.aws import autoscaling_client, cloudwatch_client
from scaling.conf import scaling_settings
from scaling.database import connection_drop
from scaling.errors import error_one_line
from scaling.fleets import DEFAULT_FLEET, Fleet
from scaling.metric_spec import MetricSpec, metric_spec_get
from scaling.policy.current import Current, current_read, dashboard_read, group_policies_read
from scaling.policy.dashboard import (
    FLEETS_DASHBOARD_NAME,
    DashboardRow,
    fleets_dashboard_request_build,
)
from scaling.policy.diff import FieldChange
from scaling.policy.fleet_runs import OPTION_FLAGS, FleetUsageError, fleet_options, fleets_chosen
from scaling.policy.install import ItemResult, PolicyRun, item_for, policy_install
from scaling.policy.options import PolicyError, PolicyOptions, policy_options_parse
from scaling.policy.pause import pause_active, pause_line
from scaling.policy.report import Style
from scaling.policy.requests import (
    TARGET_POLICY_NAME,
    WAKE_POLICY_NAME,
    published_metric,
    wake_alarm_name,
)

CHECK_HELP = (
    "Compare what AWS holds with what these flags would install; change nothing. Exit 0 "
    "equal, 1 not (a line a difference); with --fleet / --all, per fleet."
)
# unwanted: --no-warm-pool / --predictive off asked, and AWS holds ours.
Status = Literal["missing", "differs", "several", "unwanted"]
# How a line names each thing the installer installs (the five alarms: "alarm <name>").
_LABELS = {
    "metrics-collection": "metrics collection {name}",
    "target-tracking-policy": "target tracking",
    "wake-policy": "wake policy",
    "wake-alarm": "wake alarm {name}",
    "dashboard": "dashboard {name}",
    "lifecycle-hook": "lifecycle hook {name}",
    "warm-pool": "warm pool of {name}",
    "predictive-policy": "predictive policy {name}",
}
_KINDS = {TARGET_POLICY_NAME: "target-tracking-policy", WAKE_POLICY_NAME: "wake-policy"}


class CheckUsageError(FleetUsageError):
    """--check with a flag that writes (exit 2, as argparse's own usage errors)."""


def _label(kind: str, name: str) -> str:
    return _LABELS.get(kind, "alarm {name}").format(name=name)


@dataclass(frozen=True)
class Difference:
    kind: str  # the installer's item kinds (scaling.policy.install.ItemResult)
    name: str
    status: Status
    text: str  # the line, without the fleet
    change: FieldChange | None = None  # status "differs": the field
    fleet: str | None = None

    def line(self) -> str:
        return self.text if self.fleet is None else f"fleet {self.fleet}: {self.text}"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind,
            "name": self.name,
            "status": self.status,
            "line": self.line(),
            "fleet": self.fleet,
        }
        if self.change is not None:
            data.update(path=self.change.path, installed=self.change.old, asked=self.change.new)
        return data


def item_differences(item: ItemResult, fleet: str | None = None) -> list[Difference]:
    """One installer item (of a dry run) as --check's differences: none when unchanged."""
    label = _label(item.kind, item.name)
    if item.action == "created":
        text = f"{label}: missing"
        if item.kind in ("target-tracking-policy", "wake-policy"):
            text += f" (no policy {item.name}, nor one of its shape)"
        return [Difference(item.kind, item.name, "missing", text, fleet=fleet)]
    if item.action == "removed":  # asked off (a warm pool or the predictive policy)
        text = f"{label}: installed, asked off"
        return [Difference(item.kind, item.name, "unwanted", text, fleet=fleet)]
    strip = "TargetTrackingConfiguration." if item.kind == "target-tracking-policy" else ""
    return [
        Difference(
            item.kind,
            item.name,
            "differs",
            f"{label}: {change.drift_text(strip=strip)}",
            change,
            fleet,
        )
        for change in item.changes
    ]


@dataclass
class PolicyCheck:
    """One group: the dry run it compared, what differs, which policies stood in."""

    run: PolicyRun
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def equal(self) -> bool:
        return not self.differences

    def as_json(self) -> dict[str, Any]:
        return {
            "asg_name": self.run.asg_name,
            "region": self.run.region,
            "fleet": self.run.fleet,
            "equal": self.equal,
            "differences": [d.as_json() for d in self.differences],
            "notes": self.notes,
            "compared": [{"kind": i.kind, "name": i.name} for i in self.run.items],
        }


def _metric_key(metric: Mapping[str, Any]) -> tuple[Any, Any, frozenset[tuple[Any, Any]]]:
    dimensions = frozenset((d.get("Name"), d.get("Value")) for d in metric.get("Dimensions", []))
    return (metric.get("Namespace"), metric.get("MetricName"), dimensions)


def tracks_metric(policy: Mapping[str, Any], spec: MetricSpec) -> bool:
    """A target tracking policy on the fleet's published metric (total: the metric itself;
    per instance: one of its metric-math queries), whatever its name."""
    if policy.get("PolicyType") != "TargetTrackingScaling":
        return False
    config = policy.get("TargetTrackingConfiguration") or {}
    custom = config.get("CustomizedMetricSpecification") or {}
    queries = [q.get("MetricStat", {}).get("Metric", {}) for q in custom.get("Metrics", [])]
    wanted = _metric_key(published_metric(spec))
    return any(_metric_key(metric) == wanted for metric in (custom, *queries))


def called_by_wake_alarm(policy: Mapping[str, Any], alarm: Mapping[str, Any] | None) -> bool:
    """A step scaling policy that our wake alarm calls (its AlarmActions, or the
    policy's own list of alarms), whatever its name."""
    if policy.get("PolicyType") != "StepScaling" or alarm is None:
        return False
    if policy.get("PolicyARN") in alarm.get("AlarmActions", []):
        return True
    return alarm.get("AlarmName") in {a.get("AlarmName") for a in policy.get("Alarms", [])}


def stand_ins_find(
    current: Current, *, autoscaling: Any, spec: MetricSpec, fleet: str | None = None
) -> tuple[list[str], list[Difference]]:
    """Where the group holds no policy of our name, put the one of our shape in its place
    (under our name, so that the installer compares it). The notes say which policy was
    compared; several of our shape are a difference (the installer expects one)."""
    lacking = [name for name in _KINDS if name not in current.policies]
    if not lacking:
        return [], []
    asg_name = str(current.group["AutoScalingGroupName"])
    others = [
        p for p in group_policies_read(autoscaling, asg_name) if p.get("PolicyName") not in _KINDS
    ]
    shapes: dict[str, tuple[Callable[[Mapping[str, Any]], bool], str]] = {
        TARGET_POLICY_NAME: (
            lambda p: tracks_metric(p, spec),
            f"it tracks {spec.namespace} {spec.metric_name}",
        ),
        WAKE_POLICY_NAME: (
            lambda p: called_by_wake_alarm(p, current.alarm),
            f"alarm {wake_alarm_name(asg_name)} calls it",
        ),
    }
    notes: list[str] = []
    differences: list[Difference] = []
    for name in lacking:
        shape, why = shapes[name]
        found = sorted((p for p in others if shape(p)), key=lambda p: str(p["PolicyName"]))
        if not found:
            continue
        kind = _KINDS[name]
        label = _label(kind, name)
        chosen = str(found[0]["PolicyName"])
        current.policies[name] = {**found[0], "PolicyName": name}
        notes.append(f"{label}: compared policy {chosen} (no policy {name}; {why})")
        if len(found) > 1:
            names = ", ".join(str(p["PolicyName"]) for p in found)
            text = f"{label}: {len(found)} policies of its shape ({names}), one expected"
            differences.append(Difference(kind, name, "several", text, fleet=fleet))
    return notes, differences


def policy_check(
    *, options: PolicyOptions, fleet: Fleet | None = None, dashboard: bool = True
) -> PolicyCheck:
    """Compare one group with what ``policy_install`` would install there; write nothing."""
    spec = metric_spec_get(conf=fleet.conf() if fleet else None, asg_name=options.asg_name)
    autoscaling = autoscaling_client(role="installer")
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    current = current_read(
        asg_name=options.asg_name,
        region=scaling_settings().region,
        autoscaling=autoscaling,
        cloudwatch=cloudwatch,
    )
    name = fleet.name if fleet else None
    notes, differences = stand_ins_find(current, autoscaling=autoscaling, spec=spec, fleet=name)
    run = policy_install(
        options=options, dry_run=True, fleet=fleet, dashboard=dashboard, current=current
    )
    for item in run.items:
        differences.extend(item_differences(item, name))
    try:
        pause = pause_active(name or DEFAULT_FLEET)
    except DatabaseError as exc:  # the drift step may run where the database is not
        connection_drop()
        pause = None
        notes.append(f"scale-in pauses not read ({error_one_line(exc)}): none assumed")
    if pause is not None:  # scaling_pause set DisableScaleIn true on purpose: not drift
        notes.append(f"{pause_line(pause)}: DisableScaleIn true is expected until then")
        differences = [d for d in differences if not _paused_field(d)]
    return PolicyCheck(run, differences, notes)


def _paused_field(d: Difference) -> bool:
    path = d.change.path if d.change else ""
    return d.kind == "target-tracking-policy" and path.endswith("DisableScaleIn")


@dataclass
class CheckResult:
    """--check's answer: one group, or each fleet of --fleet / --all."""

    checks: list[PolicyCheck]
    fleets: list[Fleet] | None = None  # None: no --fleet / --all
    errors: dict[str, str] = field(default_factory=dict)  # fleet -> why it was not checked
    dashboard: list[Difference] = field(default_factory=list)  # the fleets dashboard (--all)
    dashboard_compared: bool = False
    notes: list[str] = field(default_factory=list)

    def differences(self) -> list[Difference]:
        return [d for check in self.checks for d in check.differences] + self.dashboard

    @property
    def equal(self) -> bool:
        return not self.errors and not self.differences()

    def _groups(self) -> str:
        return ", ".join(check.run.asg_name for check in self.checks) or "no group"

    def as_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "equal": self.equal,
            "differences": [d.as_json() for d in self.differences()],
            "notes": [*(n for c in self.checks for n in c.notes), *self.notes],
        }
        if self.fleets is None:
            data.update(self.checks[0].as_json(), notes=data["notes"])
            return data
        checks = {check.run.fleet: check for check in self.checks}
        data["fleets"] = [
            checks[f.name].as_json()
            if f.name in checks
            else {"fleet": f.name, "asg_name": f.asg_name, "error": self.errors[f.name]}
            for f in self.fleets
            if f.name in checks or f.name in self.errors
        ]
        data["errors"] = dict(self.errors)
        return data

    def lines(self) -> list[tuple[str, Style]]:
        lines: list[tuple[str, Style]] = []
        for check in self.checks:
            prefix = "" if check.run.fleet is None else f"fleet {check.run.fleet}: "
            lines.extend((f"{prefix}{note}", "") for note in check.notes)
        lines.extend((note, "") for note in self.notes)
        lines.extend((d.line(), "warning") for d in self.differences())
        lines.extend((f"fleet {f}: not checked: {e}", "warning") for f, e in self.errors.items())
        if self.equal:
            compared = sum(len(c.run.items) for c in self.checks) + self.dashboard_compared
            lines.append(
                (
                    f"Equal: AWS holds what install_scaling_policy would install on "
                    f"{self._groups()} ({compared} things compared).",
                    "success",
                )
            )
        return lines

    def failure(self) -> str | None:
        """The one line for stderr (exit 1) when AWS differs or a fleet was not checked."""
        if self.equal:
            return None
        count = len(self.differences())
        text = (
            f"Not equal: {count} difference{'s' if count != 1 else ''} between AWS and "
            f"what install_scaling_policy would install on {self._groups()}"
        )
        if self.errors:
            text += f"; fleet {', '.join(self.errors)} not checked"
        return f"{text}."


def check_command(options: Mapping[str, Any]) -> CheckResult:
    """The command's --check, from its parsed options (the install flags say what is asked)."""
    for flag in ("uninstall", "dry_run"):
        if options.get(flag):
            raise CheckUsageError(
                f"--check takes no --{flag.replace('_', '-')}: it compares and writes nothing."
            )
    flags: dict[str, Any] = {name: options.get(name) for name in OPTION_FLAGS}
    if options.get("fleet") is None and not options.get("all"):
        parsed = policy_options_parse(asg_name=options.get("asg_name"), **flags)
        return CheckResult([policy_check(options=parsed)])
    fleets = fleets_chosen(options)
    asked = {fleet.name: fleet_options(fleet, flags) for fleet in fleets}
    shared = bool(options["all"]) and len(fleets) > 1
    result = CheckResult([], fleets=fleets)
    for fleet in fleets:
        try:
            check = policy_check(options=asked[fleet.name], fleet=fleet, dashboard=not shared)
        except PolicyError as exc:
            result.errors[fleet.name] = str(exc)
            continue
        result.checks.append(check)
    if shared:
        _fleets_dashboard_check(result)
    return result


def _fleets_dashboard_check(result: CheckResult) -> None:
    """--all with several fleets: the one dashboard with a row per fleet, as an install
    of every fleet would draw it (scaling.policy.fleet_runs)."""
    if result.errors:
        result.notes.append(f"dashboard {FLEETS_DASHBOARD_NAME}: not compared (a fleet failed)")
        return
    rows = []
    for check in result.checks:
        run = check.run
        assert run.spec is not None
        assert run.options is not None
        assert run.fleet is not None
        rows.append(DashboardRow(run.fleet, run.spec, run.options, run.group_arn))
    request = fleets_dashboard_request_build(rows=rows, region=scaling_settings().region)
    held = dashboard_read(
        cloudwatch_client(for_command=True, role="installer"), FLEETS_DASHBOARD_NAME
    )
    body = json.loads(request.params["DashboardBody"])
    item = item_for("dashboard", FLEETS_DASHBOARD_NAME, None, held, body)
    result.dashboard = item_differences(item)
    result.dashboard_compared = True


def check_lines(result: CheckResult) -> list[tuple[str, Style]]:
    """The command's text (CheckResult.lines)."""
    return result.lines()
