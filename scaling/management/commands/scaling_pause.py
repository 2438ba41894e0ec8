from __future__ import annotations

import getpass
import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError
from django.utils import timezone

from scaling.errors import error_one_line
from scaling.fleets import UnknownFleet, fleet_get, fleets_get
from scaling.management.base import OneLineErrorCommand
from scaling.policy.pause import (
    MAX_MINUTES,
    MIN_MINUTES,
    PauseError,
    PauseOutcome,
    PauseUsageError,
    minutes_parse,
    pause_active,
    pause_json,
    pause_line,
    pause_resume,
    pause_start,
    text_parse,
)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        return "unknown"


class Command(OneLineErrorCommand):
    help = (
        "Pause a fleet's scale-in for N minutes (--minutes N --reason TEXT), end it early "
        "(--resume), or show the pauses (no flag). A pause puts install_scaling_policy's "
        "target tracking policy again with DisableScaleIn true, every other field as AWS "
        "holds it: scale-out and the wake-from-zero alarm keep working, and unlike "
        "SuspendProcesses Terminate, health-check replacement and AZRebalance are untouched. "
        "Pausing again moves the end to the later one; the publisher's tick resumes it when "
        "the time is up; install_scaling_policy --uninstall ends it. Who, why and until when "
        "are recorded (scaling.ScalingPause) and shown by scaling_status and the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--minutes", metavar="N", help=f"Pause for N minutes, {MIN_MINUTES} to {MAX_MINUTES}."
        )
        parser.add_argument("--reason", help="Why (recorded and shown); required with --minutes.")
        parser.add_argument("--by", help="Who [the OS user].")
        parser.add_argument("--resume", action="store_true", help="End the pause now.")
        parser.add_argument("--fleet", metavar="NAME", help="This fleet [the default fleet].")
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            self._handle(options)
        except (PauseUsageError, UnknownFleet) as exc:
            raise CommandError(_sentence(exc), returncode=2) from exc
        except PauseError as exc:
            raise CommandError(_sentence(exc)) from exc
        except DatabaseError as exc:
            raise CommandError(f"The database: {error_one_line(exc, first_line=True)}.") from exc

    def _handle(self, options: dict[str, Any]) -> None:
        minutes, reason, resume = options["minutes"], options["reason"], options["resume"]
        if resume and (minutes is not None or reason is not None):
            raise PauseUsageError("--resume takes no --minutes or --reason")
        if minutes is None and reason is not None:
            raise PauseUsageError("--reason needs --minutes N")
        if minutes is not None:
            # Every argument is checked before anything is read.
            count = minutes_parse(minutes)
            why = text_parse(reason, "--reason")
            by = text_parse(options["by"] if options["by"] is not None else _os_user(), "--by")
            fleet = fleet_get(options["fleet"])
            self._out(options, pause_start(fleet=fleet, minutes=count, reason=why, by=by))
        elif resume:
            self._out(options, pause_resume(fleet=fleet_get(options["fleet"])))
        else:
            self._show(options)

    def _out(self, options: dict[str, Any], outcome: PauseOutcome) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(outcome.as_json(), sort_keys=True))
            return
        style = self.style.SUCCESS if outcome.action != "not-paused" else str
        self.stdout.write(style(outcome.message))

    def _show(self, options: dict[str, Any]) -> None:
        named = options["fleet"]
        fleets = [fleet_get(named)] if named is not None else fleets_get()
        now = timezone.now()
        pauses = {f.name: pause_active(f.name) for f in fleets}
        if options["json"]:
            data = {name: pause_json(p, now=now) for name, p in pauses.items()}
            self.stdout.write(json.dumps({"pauses": data}, sort_keys=True))
            return
        for name, pause in pauses.items():
            if pause is None:
                self.stdout.write(f"Fleet {name}: scale-in not paused.")
            else:
                self.stdout.write(self.style.WARNING(f"Fleet {name}: {pause_line(pause)}."))


def _sentence(exc: Exception) -> str:
    text = str(exc).rstrip()
    return text if text.endswith(".") else text + "."
