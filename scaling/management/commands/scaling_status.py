from __future__ import annotations

import json
from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.audit.report import fleet_header, status_lines
from scaling.audit.series import DEFAULT_SLOTS, slots_count_parse
from scaling.audit.status import ScalingStatus, scaling_status_get
from scaling.fleets import UnknownFleet, fleet_get, fleets_get
from scaling.management.base import OneLineErrorCommand
from scaling.policy.options import PolicyError, asg_name_parse


class Command(OneLineErrorCommand):
    help = (
        "Show the backlog now, the last slots as a table (backlog and its source, in service, "
        "desired, busy, protected), the installed policies, the group's capacity, each alarm's "
        "state and since when, what target tracking aims for, the videos being processed by "
        "instance and the last recoveries, the fleet (each instance's lifecycle state, "
        "scale-in protection and video) and the drain lifecycle hook; a section per fleet. "
        "A part that cannot be read says so in one line; the command still exits 0."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--asg-name", help="The Auto Scaling group [the fleet's; alone: the default fleet]."
        )
        parser.add_argument("--fleet", metavar="NAME", help="This fleet alone [every fleet].")
        parser.add_argument(
            "--slots",
            type=_slots,
            default=DEFAULT_SLOTS,
            metavar="N",
            help=f"How many of the last slots to list, 1-500 [{DEFAULT_SLOTS}].",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        asg_name = options["asg_name"]
        if asg_name is not None:
            try:
                asg_name = asg_name_parse(asg_name)
            except PolicyError as exc:
                raise CommandError(str(exc)) from exc
        name = options["fleet"]
        try:
            default = fleet_get(name)
        except UnknownFleet as exc:
            raise CommandError(str(exc), returncode=2) from exc
        # --asg-name names one group: the fleet asked for (or the default) alone.
        alone = name is not None or asg_name is not None
        fleets = [default] if alone else fleets_get()
        statuses = [
            scaling_status_get(asg_name=asg_name, slots=options["slots"], fleet=f) for f in fleets
        ]
        if options["json"]:
            # The default fleet's keys at the top, as before fleets; every fleet in `fleets`.
            top = next(s for s in statuses if s.of_fleet == default)
            data = {**top.as_json(), "fleets": [s.fleet_json() for s in statuses]}
            if name is not None:
                data = top.fleet_json()
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        header = name is not None or len(fleets_get()) > 1
        for status in statuses:
            self._print(status, header=header)

    def _print(self, status: ScalingStatus, *, header: bool) -> None:
        if header:
            self.stdout.write(self.style.MIGRATE_HEADING(fleet_header(status)))
        for line, warning in status_lines(status):
            self.stdout.write(self.style.WARNING(line) if warning else line)


def _slots(text: str) -> int:
    # A usage error: "argument --slots: must be ...", one line, exit 2, before any read.
    try:
        return slots_count_parse(text)
    except ValueError as exc:
        raise ArgumentTypeError(str(exc).removeprefix("--slots ")) from None
