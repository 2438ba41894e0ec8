from __future__ import annotations

import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.management.base import OneLineErrorCommand
from scaling.publishing.outcome import TickStatus
from scaling.publishing.tick import backlog_tick


class Command(OneLineErrorCommand):
    help = (
        "Run one publishing tick now (the same code path as the Celery task). "
        "Exit 0 when a value was published or this slot already was; 1 when nothing could be."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Measure and show the value, but publish and record nothing.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = backlog_tick(dry_run=options["dry_run"])
        if options["json"]:
            self.stdout.write(json.dumps(result.as_json(), sort_keys=True))
        elif result.status is TickStatus.ALREADY_CLAIMED:
            self.stdout.write(f"Slot {result.slot_start.isoformat()} was already published.")
        elif result.status is TickStatus.DRY_RUN:
            self.stdout.write(
                f"Would publish BacklogCount={result.value} (source {result.source}) "
                f"for slot {result.slot_start.isoformat()}."
            )
        elif result.published:
            self.stdout.write(
                self.style.SUCCESS(
                    f"Published BacklogCount={result.value} (source {result.source}) "
                    f"for slot {result.slot_start.isoformat()}; audit {result.audit}."
                )
            )
        if result.published or result.status in (TickStatus.ALREADY_CLAIMED, TickStatus.DRY_RUN):
            return
        raise CommandError(f"Nothing published: {result.error}", returncode=1)
