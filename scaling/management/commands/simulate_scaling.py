"""simulate_scaling: the command line of ``scaling.simulation``; it parses and prints."""

from __future__ import annotations

import json
import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from scaling.fleets import UnknownFleet
from scaling.simulation.flags import simulation_flags_add
from scaling.simulation.policy import SimulationError
from scaling.simulation.report import plot_write
from scaling.simulation.study import Study, StudyFlags, study_run


class Command(BaseCommand):
    help = (
        "Replay a workload against a target tracking policy, one metric period at a "
        "time, and report waits, instances and cost. Nothing is sent to AWS."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        # A bad flag or value raises CommandError (one line, see run_from_argv)
        # instead of printing argparse's usage block.
        parser.called_from_command_line = False
        return parser

    def run_from_argv(self, argv: list[str]) -> None:
        try:
            super().run_from_argv(argv)
        except CommandError as exc:
            # Only parse errors get here: Django handles those raised by handle().
            self.stderr.write(f"CommandError: {exc}")
            sys.exit(exc.returncode)

    def add_arguments(self, parser: CommandParser) -> None:
        simulation_flags_add(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            study = study_run(StudyFlags.from_options(options))
            self._print(study, as_json=options["json"])
            if study.plot is not None:
                plot_write(study.plot, results=study.results, workload=study.workload)
                if not options["json"]:
                    self.stdout.write(f"Chart written to {study.plot}.")
        except UnknownFleet as exc:
            raise CommandError(str(exc), returncode=2) from exc
        except SimulationError as exc:
            raise CommandError(str(exc)) from exc

    def _print(self, study: Study, *, as_json: bool) -> None:
        if as_json:
            self.stdout.write(json.dumps(study.as_json(), sort_keys=True))
            return
        styles = {"warning": self.style.WARNING, "success": self.style.SUCCESS}
        for style, line in study.lines():
            self.stdout.write(styles[style](line) if style else line)
