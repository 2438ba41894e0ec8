from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Sequence
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.management.base import OneLineErrorCommand
from scaling.policy.check import CHECK_HELP, check_command, check_lines
from scaling.policy.fleet_runs import (
    OPTION_FLAGS,
    FleetUsageError,
    fleets_command,
    fleets_run_lines,
    uninstall_flags_check,
)
from scaling.policy.install import policy_install, policy_uninstall
from scaling.policy.options import (
    PolicyError,
    alarm_topic_parse,
    asg_name_parse,
    drain_timeout_default,
    drain_timeout_parse,
    policy_flags_add,
    policy_options_parse,
)
from scaling.policy.report import policy_run_lines


def _checked(parse: Callable[[str], object], flag: str) -> Callable[[str], str]:
    # A bad value of this flag is a usage error: one line, exit 2, before anything is read.
    def check(raw: str) -> str:
        try:
            parse(raw)
        except PolicyError as exc:
            raise argparse.ArgumentTypeError(
                str(exc).removeprefix(f"{flag} ").rstrip(".")
            ) from None
        return raw

    return check


class Command(OneLineErrorCommand):
    help = (
        "Install (or align) the video workers' scaling policy: target tracking on backlog per "
        "in-service instance, a wake-from-zero alarm, five alarms that say when scaling "
        "breaks, a dashboard and a termination lifecycle hook that lets a busy instance "
        "finish its video. Idempotent; --uninstall removes them, --check compares."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Numbers arrive as text and are checked in scaling.policy.options, so that each bad
        # value gets its own sentence.
        parser.add_argument("--asg-name", help="The Auto Scaling group [SCALING_ASG_NAME].")
        parser.add_argument("--fleet", help="One fleet of SCALING_FLEETS, on its own group.")
        parser.add_argument(
            "--all", action="store_true", help="Every fleet, in order; one dashboard for all."
        )
        policy_flags_add(parser)
        parser.add_argument(
            "--alarm-topic",
            type=_checked(alarm_topic_parse, "--alarm-topic"),
            help="SNS topic ARN told when an alarm changes state.",
        )
        parser.add_argument(
            "--drain-timeout",
            type=_checked(drain_timeout_parse, "--drain-timeout"),
            help="Termination lifecycle hook's HeartbeatTimeout, 30 to 7200 s [two leases: "
            f"{drain_timeout_default()} s].",
        )
        parser.add_argument(
            "--uninstall", action="store_true", help="Remove what this command installed."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read AWS, print the exact write requests as JSON, send none of them.",
        )
        parser.add_argument("--check", action="store_true", help=CHECK_HELP)
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["check"]:  # scaling.policy.check
            self._run(options, check_command, check_lines)
            return
        if options["fleet"] is not None or options["all"]:
            self._run(options, fleets_command, fleets_run_lines)
            return
        try:
            if options["uninstall"]:
                uninstall_flags_check(options)
                run = policy_uninstall(
                    asg_name=asg_name_parse(options["asg_name"]), dry_run=options["dry_run"]
                )
            else:
                flags = {name: options[name] for name in OPTION_FLAGS}
                run = policy_install(
                    options=policy_options_parse(asg_name=options["asg_name"], **flags),
                    dry_run=options["dry_run"],
                )
        except PolicyError as exc:
            raise CommandError(str(exc)) from exc
        self._out(options, run.as_json(), policy_run_lines(run))

    def _run(self, options: dict[str, Any], command: Callable[..., Any], lines: Callable) -> None:
        """--check, or --fleet NAME / --all (each fleet on its own group: fleet_runs)."""
        try:
            run = command(options)
        except FleetUsageError as exc:  # and --check's own
            raise CommandError(str(exc), returncode=2) from exc
        except PolicyError as exc:
            raise CommandError(str(exc)) from exc
        self._out(options, run.as_json(), lines(run))
        failure = run.failure()
        if failure:
            raise CommandError(failure)

    def _out(self, options: dict[str, Any], data: Any, lines: Sequence[tuple[str, str]]) -> None:
        if options["json"]:
            self.stdout.write(json.dumps(data, sort_keys=True))
            return
        styles = {"warning": self.style.WARNING, "success": self.style.SUCCESS}
        for line, style in lines:
            self.stdout.write(styles[style](line) if style else line)
