"""``scaling_status`` as text: one line a fact, a warning line for a part that is down."""

from __future__ import annotations

from collections.abc import Callable

from django.utils import timezone

from scaling.audit.fleet import Work
from scaling.audit.series import SlotRow
from scaling.audit.status import ScalingStatus
from scaling.audit.warm_pool import warm_pool_line
from scaling.policy.pause import pause_line
from scaling.policy.requests import TARGET_POLICY_NAME

# time, backlog, in service, desired, busy, protected
_COLUMNS = (("time", 19), ("backlog", 15), ("in service", 10), ("desired", 7), ("busy", 4))


def _duration(seconds: int) -> str:
    """42 s, 5 min, 2 h 5 min, 3 d 4 h."""
    minutes, hours, days = seconds // 60, seconds // 3600, seconds // 86400
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{minutes} min"
    if seconds < 86400:
        return f"{hours} h {minutes % 60} min"
    return f"{days} d {hours % 24} h"


def status_lines(s: ScalingStatus) -> list[tuple[str, bool]]:
    """The status as lines of text, each with whether it is a warning (a part down)."""
    lines: list[tuple[str, bool]] = []

    def out(line: str) -> None:
        lines.append((line, False))

    def down(label: str, error: str) -> None:
        lines.append((f"{label}: unavailable ({error}).", True))

    out(f"Group {s.asg_name} ({s.region})")
    pause_lines(s, lines)
    if s.from_queue:
        out(f"Backlog now: {s.database.error}.")
    elif (b := s.database.data) is not None:
        oldest = b.oldest_waiting_seconds
        waited = "" if oldest is None else f"; oldest waiting {oldest:.0f} s"
        out(
            f"Backlog in the database now: {b.total} "
            f"(uploaded {b.uploaded}, processing {b.processing}{waited})."
        )
    else:
        down("Backlog in the database", s.database.error)
    slots_lines(s, out, down)
    if (a := s.agreement.data) is not None:
        verdict = "agrees with" if a.agrees else "differs from"
        out(
            f"Latest published value {a.published} (slot {a.slot_start}) {verdict} "
            f"the database now ({a.database_now})."
        )
    else:
        out(f"Published versus database: not compared ({s.agreement.error}).")
    if (g := s.group.data) is not None:
        metrics = ", ".join(g.enabled_metrics) or "none"
        out(
            f"Capacity: min {g.min}, max {g.max}, desired {g.desired}, "
            f"in service {g.in_service}; group metrics: {metrics}."
        )
    else:
        down("Capacity", s.group.error)
    if (policies := s.policies.data) is None:
        down("Policies", s.policies.error)
    elif not policies:
        out("Policies: none installed.")
    else:
        out("Policies:")
        for policy in policies:
            details = [policy.type or "?"]
            if policy.mode:
                details.append(f"{policy.mode}: {policy.tracks}, target {policy.target_value:g}")
            if policy.warmup_seconds is not None:
                details.append(f"warmup {policy.warmup_seconds} s")
            out(f"  {policy.name}: {'; '.join(details)}")
    predictive_lines(s, out, lambda line: lines.append((line, True)))
    if (pool := s.warm_pool.data) is None:
        down("Warm pool", s.warm_pool.error)
    else:
        out(warm_pool_line(pool))
    if (alarms := s.alarms.data) is None:
        down("Alarms", s.alarms.error)
    elif not alarms:
        out("Alarms: none.")
    else:
        out("Alarms:")
        for alarm in alarms:
            held = "" if alarm.for_seconds is None else f" for {_duration(alarm.for_seconds)}"
            since = f" (since {alarm.since})" if alarm.since else ""
            out(f"  {alarm.name}: {alarm.state}{held}{since}")
    if (aim := s.aim.data) is not None:
        out(
            f"Target tracking aims for about {aim.instances} instances "
            f"({aim.rule}; backlog from the {aim.basis})."
        )
    else:
        out(f"Target tracking aim: unknown ({s.aim.error}).")
    leases_lines(s, out, down)
    fleet_lines(s, out, down)
    return lines


def _hour(at: str) -> str:
    return at[:16].replace("T", " ")


def predictive_lines(
    s: ScalingStatus, out: Callable[[str], None], warn: Callable[[str], None]
) -> None:
    """The predictive policy (mode, buffer) and AWS's forecast by hour, or why none."""
    if (f := s.predictive.data) is None:
        warn(f"Predictive scaling: unavailable ({s.predictive.error}).")
        return
    if f.policy is None:
        out(f"Predictive scaling: none ({f.reason}).")
        return
    buffer = "-" if f.policy.buffer_seconds is None else f"{f.policy.buffer_seconds} s"
    out(f"Predictive scaling: {f.policy.name}, mode {f.policy.mode}, buffer {buffer}.")
    if not f.ok:
        warn(f"Forecast: none ({f.reason}).")
        return
    updated = f" (AWS updated it {f.updated})" if f.updated else ""
    out(f"Forecast, {_hour(f.start)} to {_hour(f.end)} UTC{updated}:")
    out("  hour (UTC)        load      capacity")
    capacity = {p.at: p.value for p in f.capacity}
    for point in f.load or f.capacity:
        load = f"{point.value:g}" if f.load else "-"
        held = capacity.get(point.at)
        out(f"  {_hour(point.at):<16}  {load:<8}  {'-' if held is None else f'{held:g}'}")


def pause_lines(s: ScalingStatus, lines: list[tuple[str, bool]]) -> None:
    """An active scale-in pause and its end, as a warning line (none: no line at all)."""
    if s.pause_error:
        lines.append((f"Scale-in pause: unknown ({s.pause_error}).", True))
    if (p := s.pause) is None:
        return
    row = p.row
    left = max(0, int((row.until - timezone.now()).total_seconds()))
    line = f"{pause_line(row)}; ends {row.until.isoformat()} (in {_duration(left)})"
    if p.in_force is True:
        line += f"; {TARGET_POLICY_NAME} has DisableScaleIn true"
    elif p.in_force is False:
        line += (
            f"; but {TARGET_POLICY_NAME} scales in (installed again during the pause?): "
            "scaling_pause again puts the pause back"
        )
    else:
        line += f"; {p.note}"
    lines.append((line + ".", True))


def fleet_header(s: ScalingStatus) -> str:
    """The first line of a fleet's section: its name, metric, source and leases."""
    f = s.of_fleet
    if f is None:
        return "Fleet: the settings' own (SCALING_*)"
    dims = ", ".join(f"{k}={v}" for k, v in f.describe()["dimensions"].items())
    source = "the backlog source (port)" if f.source == "port" else f"SQS queue {f.queue_url}"
    if f.source == "port" and f.queue_url:
        source += f", SQS fallback {f.queue_url}"
    return (
        f"Fleet {f.name}: metric {f.namespace} {f.metric_name} ({dims}); backlog from "
        f"{source}; leases {'on' if f.leases else 'off'}."
    )


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


def _slot_line(row: SlotRow, *, current: bool) -> str:
    when = row.slot_start[:19].replace("T", " ")
    if not row.recorded:
        return f"  {when}  {'not recorded yet' if current else 'no record'}"
    backlog = "-" if row.value is None else f"{row.value} {row.source or ''}".strip()
    if row.status != "published":
        backlog = "failed" if row.value is None else f"{backlog} failed"
    cells = [when, backlog, *(_cell(v) for v in (row.in_service, row.desired, row.busy))]
    padded = "  ".join(text.ljust(width) for text, (_, width) in zip(cells, _COLUMNS, strict=True))
    return f"  {padded}  {_cell(row.protected)}"


def slots_lines(
    s: ScalingStatus, out: Callable[[str], None], down: Callable[[str, str], None]
) -> None:
    """The last slots as a table, oldest first: the admin chart's five series."""
    if (rows := s.slots.data) is None:
        down("Last slots", s.slots.error)
        return
    last = f"Last {len(rows)} slot{'s' if len(rows) != 1 else ''}"
    if not any(row.recorded for row in rows):
        out(f"{last}: nothing recorded.")
        return
    out(f"{last} (UTC, oldest first):")
    out("  " + "  ".join(name.ljust(width) for name, width in _COLUMNS) + "  protected")
    for n, row in enumerate(rows):
        out(_slot_line(row, current=n == len(rows) - 1))


def leases_lines(
    s: ScalingStatus, out: Callable[[str], None], down: Callable[[str, str], None]
) -> None:
    if (leases := s.leases.data) is None:
        down("Videos being processed", s.leases.error)
        return
    if leases.off:
        out(f"Leases, recovery, scale-in protection and drain: {leases.off}.")
        return
    if not leases.instances:
        out("Videos being processed: none.")
    else:
        out("Videos being processed, by instance:")
        for work in leases.instances:
            held = (
                f"{work.live} with a live lease"
                if work.live == work.processing
                else (f"{work.live} live, {work.processing - work.live} expired")
            )
            out(f"  {work.instance_id or '(no lease)'}: {work.processing} ({held})")
    if not leases.recoveries:
        out("Last recoveries: none.")
        return
    out("Last recoveries:")
    for r in leases.recoveries:
        out(
            f"  {r.recovered_at} video {r.video_id} -> {r.status} after {r.attempts} "
            f"attempt{'s' if r.attempts != 1 else ''} (instance {r.instance_id or 'unknown'})"
        )


def _work(videos: list[Work]) -> str:
    if not videos:
        return "idle"
    shown = [
        f"video {w.video_id}" + ("" if w.seconds is None else f" for {_duration(w.seconds)}")
        for w in videos
    ]
    return ", ".join(shown)


def fleet_lines(
    s: ScalingStatus, out: Callable[[str], None], down: Callable[[str, str], None]
) -> None:
    """Each instance of the group: lifecycle state, protection, its video; then the hook."""
    leases = not s.untracked
    if (fleet := s.fleet.data) is None:
        down("Fleet", s.fleet.error)
    elif not fleet.instances:
        out("Fleet: no instances.")
    else:
        pooled = f", {fleet.pooled} in the warm pool" if fleet.pooled else ""
        out(
            f"Fleet: {fleet.in_group} in the group, {fleet.busy} busy, "
            f"{fleet.protected} protected from scale-in{pooled}:"
        )
        for i in fleet.instances:
            shield = {None: "", True: ", protected", False: ", not protected"}[i.protected]
            if i.in_pool:
                shield = " (in the warm pool)"
            if not leases:  # nothing to say about their work: no leases
                out(f"  {i.instance_id} {i.state}{shield}")
                continue
            work = "videos unknown" if fleet.work_error else _work(i.videos)
            out(f"  {i.instance_id or '(no lease)'} {i.state}{shield}: {work}")
        if fleet.work_error and leases:
            down("Videos by instance", fleet.work_error)
        if fleet.pool_error:
            down("Warm pool instances", fleet.pool_error)
    if (hook := s.lifecycle_hook.data) is None:
        down("Lifecycle hook", s.lifecycle_hook.error)
    elif not hook.installed and not leases:
        out(f"Lifecycle hook {hook.name}: not installed (none needed: no leases to drain).")
    elif not hook.installed:
        out(f"Lifecycle hook {hook.name}: not installed (install_scaling_policy installs it).")
    else:
        out(
            f"Lifecycle hook {hook.name}: {hook.transition}, heartbeat timeout "
            f"{hook.heartbeat_timeout} s, then {hook.default_result}."
        )
