from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.audit.status import ScalingStatus, scaling_status_get
from scaling.management.base import OneLineErrorCommand
from scaling.policy.install import PolicyError, asg_name_parse


class Command(OneLineErrorCommand):
    help = (
        "Show the backlog now, the last publications, the installed policies, the group's "
        "capacity and what target tracking aims for. A part that cannot be read says so in "
        "one line; the command still exits 0."
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
        if s.database.ok:
            b = s.database.data
            oldest = b["oldest_waiting_seconds"]
            waited = "" if oldest is None else f"; oldest waiting {oldest:.0f} s"
            out(
                f"Backlog in the database now: {b['total']} "
                f"(uploaded {b['uploaded']}, processing {b['processing']}{waited})."
            )
        else:
            self._down("Backlog in the database", s.database.error)
        if not s.publications.ok:
            self._down("Last publications", s.publications.error)
        elif not s.publications.data:
            out("Last publications: none yet.")
        else:
            out("Last publications:")
            for p in s.publications.data:
                value = "-" if p["value"] is None else p["value"]
                out(f"  {p['slot_start']} {p['status']} {value} ({p['source'] or 'no source'})")
        if s.agreement.ok:
            a = s.agreement.data
            verdict = "agrees with" if a["agrees"] else "differs from"
            out(
                f"Latest published value {a['published']} (slot {a['slot_start']}) {verdict} "
                f"the database now ({a['database_now']})."
            )
        else:
            out(f"Published versus database: not compared ({s.agreement.error}).")
        if s.group.ok:
            g = s.group.data
            metrics = ", ".join(g["enabled_metrics"]) or "none"
            out(
                f"Capacity: min {g['min']}, max {g['max']}, desired {g['desired']}, "
                f"in service {g['in_service']}; group metrics: {metrics}."
            )
        else:
            self._down("Capacity", s.group.error)
        if not s.policies.ok:
            self._down("Policies", s.policies.error)
        elif not s.policies.data:
            out("Policies: none installed.")
        else:
            out("Policies:")
            for p in s.policies.data:
                details = [p["type"] or "?"]
                if p["mode"]:
                    details.append(f"{p['mode']}: {p['tracks']}, target {p['target_value']:g}")
                if p["warmup_seconds"] is not None:
                    details.append(f"warmup {p['warmup_seconds']} s")
                out(f"  {p['name']}: {'; '.join(details)}")
        if not s.alarms.ok:
            self._down("Alarms", s.alarms.error)
        elif not s.alarms.data:
            out("Alarms: none.")
        else:
            out("Alarms:")
            for alarm in s.alarms.data:
                out(f"  {alarm['name']}: {alarm['state']}")
        if s.aim.ok:
            aim = s.aim.data
            out(
                f"Target tracking aims for about {aim['instances']} instances "
                f"({aim['rule']}; backlog from the {aim['basis']})."
            )
        else:
            out(f"Target tracking aim: unknown ({s.aim.error}).")
