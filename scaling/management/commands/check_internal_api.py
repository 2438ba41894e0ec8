"""Ask each given deployment for the backlog, and compare with the database now.

The probe itself lives in ``scaling.audit.probe``; this command parses the
arguments, runs it and prints one line (or one JSON object) per URL.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.audit.probe import ProbeError, deployments_probe
from scaling.management.base import OneLineErrorCommand


class Command(OneLineErrorCommand):
    help = (
        "Call the internal backlog endpoint at each base URL with the configured key and "
        "compare each answer with the database count now. Exit 1 when any URL disagrees "
        "or fails."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "urls", nargs="+", metavar="URL", help="Base URL, e.g. http://127.0.0.1:8000"
        )
        parser.add_argument(
            "--timeout", type=float, default=5.0, help="Seconds to wait for each URL."
        )
        parser.add_argument("--json", action="store_true", help="Print the results as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            answers = deployments_probe(options["urls"], timeout=options["timeout"])
        except ProbeError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps([asdict(a) for a in answers], sort_keys=True))
        else:
            for answer in answers:
                style = self.style.SUCCESS if answer.agrees else self.style.ERROR
                self.stdout.write(style(answer.line()))
        failing = sum(1 for a in answers if not a.agrees)
        if failing:
            raise CommandError(f"{failing} of {len(answers)} URLs disagree or fail.", returncode=1)
