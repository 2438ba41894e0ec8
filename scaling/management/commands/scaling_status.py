from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.audit.status import ScalingStatus, scaling_status_get
from scaling.management.base import OneLineErrorCommand
from scaling.policy.options import PolicyError, asg_name_parse


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


class Command(OneLineErrorCommand):
    help = (
        "Show the backlog now, the last publications, the installed policies, the group's "
        "capacity, each alarm's state and since when, and what target tracking aims for. A "
        "part that cannot be read says so in one line; the command still exits 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--asg-name", help="The Auto Scaling group [SCALING_ASG_NAME].")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        asg_name = options["asg_name"]
        if asg_name is not None:
            try:
                asg_name = asg_name_parse(asg_name)
            except PolicyError as exc:
                raise CommandError(str(exc)) from exc
        status = scaling_status_get(asg_name=asg_name)
        if options["json"]:
            self.stdout.write(json.dumps(status.as_json(), sort_keys=True))
            return
        self._report(status)

    def _down(self, label: str, error: str) -> None:
        self.stdout.write(self.style.WARNING(f"{label}: unavailable ({error})."))

    def _report(self, s: ScalingStatus) -> None:
        out = self.stdout.write
        out(f"Group {s.asg_name} ({s.region})")
        if (b := s.database.data) is not None:
            oldest = b.oldest_waiting_seconds
            waited = "" if oldest is None else f"; oldest waiting {oldest:.0f} s"
            out(
                f"Backlog in the database now: {b.total} "
                f"(uploaded {b.uploaded}, processing {b.processing}{waited})."
            )
        else:
            self._down("Backlog in the database", s.database.error)
        if (publications := s.publications.data) is None:
            self._down("Last publications", s.publications.error)
        elif not publications:
            out("Last publications: none yet.")
        else:
            out("Last publications:")
            for p in publications:
                value = "-" if p.value is None else p.value
                out(f"  {p.slot_start} {p.status} {value} ({p.source or 'no source'})")
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
            self._down("Capacity", s.group.error)
        if (policies := s.policies.data) is None:
            self._down("Policies", s.policies.error)
        elif not policies:
            out("Policies: none installed.")
        else:
            out("Policies:")
            for policy in policies:
                details = [policy.type or "?"]
                if policy.mode:
                    details.append(
                        f"{policy.mode}: {policy.tracks}, target {policy.target_value:g}"
                    )
                if policy.warmup_seconds is not None:
                    details.append(f"warmup {policy.warmup_seconds} s")
                out(f"  {policy.name}: {'; '.join(details)}")
        if (alarms := s.alarms.data) is None:
            self._down("Alarms", s.alarms.error)
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
