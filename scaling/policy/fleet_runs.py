"""install_scaling_policy --fleet NAME / --all: the policy of each configured fleet.

Each fleet is installed (or removed) on its own group, on its own metric
(``Fleet.conf()``: namespace, metric name, dimensions), with its policy defaults
where no flag says otherwise, and with the drain hook only where its workers
hold leases; ``scaling.policy.install`` does the work, one fleet at a time. One
fleet's failure (its group missing, say) is reported and the others still run.
``--all`` with several fleets draws one dashboard with a row per fleet
(``scaling.policy.dashboard``), written once every fleet is installed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from scaling.aws import cloudwatch_client
from scaling.conf import scaling_settings
from scaling.fleets import Fleet, UnknownFleet, fleet_get, fleets_get
from scaling.policy.capacity_options import CAPACITY_FLAGS
from scaling.policy.current import aws_call, dashboard_read
from scaling.policy.dashboard import (
    FLEETS_DASHBOARD_NAME,
    DashboardRow,
    dashboard_delete_request_build,
    fleets_dashboard_request_build,
)
from scaling.policy.install import ItemResult, PolicyRun, item_for, policy_install, policy_uninstall
from scaling.policy.options import PolicyError, PolicyOptions, policy_options_parse
from scaling.policy.report import Style, policy_run_lines
from scaling.policy.requests import ApiRequest

# The flags policy_options_parse takes (the command's option names).
OPTION_FLAGS = (
    "mode",
    "target_value",
    "acceptable_wait",
    "processing_time",
    "warmup",
    "alarm_wait",
    "alarm_topic",
    "drain_timeout",
    *CAPACITY_FLAGS,  # the warm pool and predictive flags (scaling.policy.capacity_options)
)


class FleetUsageError(PolicyError):
    """A usage error of --fleet / --all (exit 2, as argparse's own)."""


def uninstall_flags_check(options: Mapping[str, Any]) -> None:
    """--uninstall with a flag only an install takes: PolicyError naming them."""
    given = [f"--{k.replace('_', '-')}" for k in OPTION_FLAGS if options.get(k) is not None]
    if options.get("uninstall") and given:
        raise PolicyError(
            f"--uninstall takes no {', '.join(given)}: it removes what was installed."
        )


def fleets_chosen(options: Mapping[str, Any]) -> list[Fleet]:
    """The fleets --fleet NAME / --all name (install and --check alike); a usage error
    (FleetUsageError) for both flags, for --asg-name with either, for an unknown fleet."""
    every = bool(options["all"])
    if options["fleet"] is not None and every:
        raise FleetUsageError("Give --fleet NAME or --all, not both.")
    if options["asg_name"] is not None:
        flag = "--all" if every else "--fleet"
        raise FleetUsageError(
            f"{flag} takes no --asg-name: each fleet's group is its asg_name (SCALING_FLEETS)."
        )
    try:
        fleets = fleets_get() if every else [fleet_get(options["fleet"])]
    except UnknownFleet as exc:
        raise FleetUsageError(str(exc)) from exc
    if not fleets:
        raise PolicyError("No valid fleet is configured: fix SCALING_FLEETS (manage.py check).")
    return fleets


def fleets_command(options: Mapping[str, Any]) -> FleetsRun:
    """The command's --fleet NAME / --all run, from its parsed options."""
    every = bool(options["all"])
    fleets = fleets_chosen(options)
    uninstall_flags_check(options)
    if options["uninstall"]:
        return fleets_uninstall(fleets, dry_run=options["dry_run"], every=every)
    flags = {name: options[name] for name in OPTION_FLAGS}
    return fleets_install(fleets, flags=flags, dry_run=options["dry_run"], every=every)


@dataclass
class FleetsRun:
    dry_run: bool
    uninstall: bool
    fleets: list[Fleet]
    runs: dict[str, PolicyRun] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)  # fleet -> the sentence
    dashboard: ItemResult | None = None  # the fleets dashboard (--all, several fleets)
    dashboard_requests: list[ApiRequest] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        fleets: list[dict[str, Any]] = []
        for fleet in self.fleets:
            if fleet.name in self.runs:
                fleets.append(self.runs[fleet.name].as_json())
            elif fleet.name in self.errors:
                fleets.append(
                    {
                        "fleet": fleet.name,
                        "asg_name": fleet.asg_name,
                        "error": self.errors[fleet.name],
                    }
                )
        return {
            "dry_run": self.dry_run,
            "uninstall": self.uninstall,
            "fleets": fleets,
            "dashboard": None if self.dashboard is None else self.dashboard.as_json(),
            "dashboard_requests": [r.as_json() for r in self.dashboard_requests],
            "warnings": self.warnings,
            "errors": dict(self.errors),
        }

    def failure(self) -> str | None:
        """One sentence when a fleet failed (the command's error), else None."""
        if not self.errors:
            return None
        first, sentence = next(iter(self.errors.items()))
        others = len(self.errors) - 1
        more = f" (and {others} other fleet{'s' if others > 1 else ''})" if others else ""
        return f"Fleet {first} failed{more}: {sentence}"


def fleet_flags(fleet: Fleet, flags: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """The command's flags with the fleet's policy.warm_pool / policy.predictive filled in
    where the command line says nothing (a flag given wins, value by value; --no-warm-pool
    and --predictive off leave the fleet's out), and the policy keys that were used."""
    merged: dict[str, Any] = {name: flags.get(name) for name in OPTION_FLAGS}
    used = []
    pool, predictive = fleet.policy.warm_pool, fleet.policy.predictive
    if pool is not None and not merged["no_warm_pool"]:
        fill = pool.flags()
        used.append("warm_pool")
        merged.update({k: v for k, v in fill.items() if merged[k] is None})
    if predictive is not None and merged["predictive"] != "off":
        fill = predictive.flags()
        if merged["predictive_max_capacity"] is not None:
            fill.pop("predictive_max_buffer", None)  # the command line's behaviour decides
        used.append("predictive")
        merged.update({k: v for k, v in fill.items() if merged[k] is None})
    return merged, used


def fleet_options(fleet: Fleet, flags: Mapping[str, Any]) -> PolicyOptions:
    """The flags for this fleet: its group, and its policy defaults where no flag says."""
    merged, used = fleet_flags(fleet, flags)
    try:
        return policy_options_parse(
            asg_name=fleet.asg_name, **merged, fleet_policy=fleet.policy, fleet_name=fleet.name
        )
    except PolicyError as exc:
        if not any(f"--{key.replace('_', '-')}" in str(exc) for key in used):
            raise  # not about a value the fleet's policy gave
        keys = " and ".join(f"policy.{key}" for key in used)
        raise type(exc)(f"Fleet {fleet.name} (with its {keys}): {exc}") from None


def fleets_install(
    fleets: list[Fleet], *, flags: dict[str, str | None], dry_run: bool, every: bool
) -> FleetsRun:
    """Install each fleet's policy (``every``: --all, one dashboard for several fleets)."""
    # Every fleet's flags are checked before anything is read or written.
    options = {fleet.name: fleet_options(fleet, flags) for fleet in fleets}
    shared = every and len(fleets) > 1
    result = FleetsRun(dry_run=dry_run, uninstall=False, fleets=fleets)
    for fleet in fleets:
        try:
            result.runs[fleet.name] = policy_install(
                options=options[fleet.name], dry_run=dry_run, fleet=fleet, dashboard=not shared
            )
        except PolicyError as exc:
            result.errors[fleet.name] = str(exc)
    if shared:
        _fleets_dashboard_install(result)
    return result


def _fleets_dashboard_install(result: FleetsRun) -> None:
    if result.errors:
        result.warnings.append(
            f"Dashboard {FLEETS_DASHBOARD_NAME} not written: fleet "
            f"{', '.join(result.errors)} failed; it is drawn once every fleet is installed."
        )
        return
    rows = []
    for fleet in result.fleets:
        run = result.runs[fleet.name]
        assert run.spec is not None
        assert run.options is not None
        rows.append(DashboardRow(fleet.name, run.spec, run.options, run.group_arn))
    request = fleets_dashboard_request_build(rows=rows, region=scaling_settings().region)
    cloudwatch = cloudwatch_client(for_command=True, role="installer")
    current = dashboard_read(cloudwatch, FLEETS_DASHBOARD_NAME)
    body = json.loads(request.params["DashboardBody"])
    result.dashboard = item_for("dashboard", FLEETS_DASHBOARD_NAME, None, current, body)
    if result.dashboard.action != "unchanged":
        _perform(result, cloudwatch, request)


def _perform(result: FleetsRun, cloudwatch: Any, request: ApiRequest) -> None:
    result.dashboard_requests.append(request)
    if not result.dry_run:
        method = {
            "PutDashboard": cloudwatch.put_dashboard,
            "DeleteDashboards": cloudwatch.delete_dashboards,
        }[request.operation]
        aws_call(request.operation, lambda: method(**request.params))


def fleets_uninstall(fleets: list[Fleet], *, dry_run: bool, every: bool) -> FleetsRun:
    """Remove each fleet's policy from its group (``every`` with several fleets: and the
    fleets dashboard; one fleet's removal leaves that dashboard to the others)."""
    result = FleetsRun(dry_run=dry_run, uninstall=True, fleets=fleets)
    for fleet in fleets:
        try:
            result.runs[fleet.name] = policy_uninstall(
                asg_name=fleet.asg_name, dry_run=dry_run, fleet=fleet.name
            )
        except PolicyError as exc:
            result.errors[fleet.name] = str(exc)
    if every and len(fleets) > 1:
        cloudwatch = cloudwatch_client(for_command=True, role="installer")
        present = dashboard_read(cloudwatch, FLEETS_DASHBOARD_NAME) is not None
        result.dashboard = ItemResult(
            "dashboard", FLEETS_DASHBOARD_NAME, "removed" if present else "absent"
        )
        if present:
            _perform(result, cloudwatch, dashboard_delete_request_build())
    return result


def fleets_run_lines(result: FleetsRun) -> list[tuple[str, Style]]:
    """The run as text: each fleet's lines under its name, then the fleets dashboard."""
    lines: list[tuple[str, Style]] = []
    for fleet in result.fleets:
        lines.append((f"Fleet {fleet.name}:", ""))
        if fleet.name in result.errors:
            lines.append((f"  failed: {result.errors[fleet.name]}", "warning"))
            continue
        lines.extend(
            (f"  {line}", style) for line, style in policy_run_lines(result.runs[fleet.name])
        )
    lines.extend((warning, "warning") for warning in result.warnings)
    if result.dashboard is not None:
        item = result.dashboard
        action: str = item.action
        if result.dry_run and action in ("created", "updated", "removed"):
            action = f"would {action.removesuffix('d').removesuffix('e')}e"
        lines.append((f"dashboard {item.name} (every fleet): {action}", ""))
        lines.extend((f"  {change.line()}", "") for change in item.changes)
        if result.dry_run and result.dashboard_requests:
            requests = [r.as_json() for r in result.dashboard_requests]
            lines.append((json.dumps(requests, indent=2, sort_keys=True), ""))
    return lines
