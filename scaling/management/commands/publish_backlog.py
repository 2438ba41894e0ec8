from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.fleets import UnknownFleet, fleet_get
from scaling.management.base import OneLineErrorCommand
from scaling.publishing.outcome import TickResult, TickStatus
from scaling.publishing.tick import slot_tick

_FINE = (TickStatus.PUBLISHED, TickStatus.ALREADY_CLAIMED, TickStatus.DRY_RUN)


class Command(OneLineErrorCommand):
    help = (
        "Run one publishing tick now (the same code path as the Celery task): every fleet, "
        "or --fleet NAME alone. Exit 0 when every fleet's value was published or its slot "
        "already was; 1 when nothing could be for one of them; 2 for an unknown fleet."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Measure and show the value, but publish and record nothing.",
        )
        parser.add_argument("--fleet", metavar="NAME", help="Tick this fleet alone [every fleet].")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        name = options["fleet"]
        try:
            fleets = None if name is None else [fleet_get(name)]
        except UnknownFleet as exc:
            raise CommandError(str(exc), returncode=2) from exc
        outcome = slot_tick(dry_run=options["dry_run"], fleets=fleets)
        results = outcome.results
        if options["json"]:
            # --fleet: that fleet's result alone; else the default fleet's keys and `fleets`.
            data = results[0].as_json() if name is not None else outcome.as_json()
            self.stdout.write(json.dumps(data, sort_keys=True))
        else:
            for result in results:
                self._line(result, named=len(results) > 1)
        failed = [r for r in results if not (r.published or r.status in _FINE)]
        if not failed:
            return
        if len(results) == 1:
            raise CommandError(f"Nothing published: {failed[0].error}", returncode=1)
        reasons = "; ".join(f"fleet {r.fleet}: {r.error}" for r in failed)
        raise CommandError(f"Nothing published for {len(failed)} fleet(s): {reasons}", returncode=1)

    def _line(self, result: TickResult, *, named: bool) -> None:
        fleet = f"[{result.fleet}] " if named else ""
        slot = result.slot_start.isoformat()
        if result.status is TickStatus.ALREADY_CLAIMED:
            self.stdout.write(f"{fleet}Slot {slot} was already published.")
        elif result.status is TickStatus.DRY_RUN:
            self.stdout.write(
                f"{fleet}Would publish BacklogCount={result.value} (source {result.source}) "
                f"for slot {slot}."
            )
        elif result.published:
            self.stdout.write(
                self.style.SUCCESS(
                    f"{fleet}Published BacklogCount={result.value} (source {result.source}) "
                    f"for slot {slot}; audit {result.audit}."
                )
            )
        elif named:
            self.stdout.write(self.style.WARNING(f"{fleet}Nothing published: {result.error}"))
