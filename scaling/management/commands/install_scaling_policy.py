from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.management.base import OneLineErrorCommand
from scaling.policy.install import PolicyRun, policy_install, policy_uninstall
from scaling.policy.options import (
    MAX_WARMUP_SECONDS,
    PolicyError,
    alarm_topic_parse,
    asg_name_parse,
    policy_options_parse,
)

_VERB = {"created": "create", "updated": "update", "removed": "remove"}
_INSTALL_ONLY = "mode target_value acceptable_wait processing_time warmup alarm_wait alarm_topic"


def _topic(raw: str) -> str | None:
    # A bad ARN is a usage error: one line, exit 2, before anything is read.
    try:
        return alarm_topic_parse(raw)
    except PolicyError as exc:
        message = str(exc).removeprefix("--alarm-topic ").rstrip(".")
        raise argparse.ArgumentTypeError(message) from None


class Command(OneLineErrorCommand):
    help = (
        "Install (or align) the video workers' scaling policy: target tracking on backlog per "
        "in-service instance, a wake-from-zero alarm, five alarms that say when scaling "
        "breaks and a dashboard. Idempotent; --uninstall removes them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # Numbers arrive as text and are checked in scaling.policy.options, so that each bad
        # value gets its own sentence.
        parser.add_argument("--asg-name", help="The Auto Scaling group [SCALING_ASG_NAME].")
        parser.add_argument(
            "--mode",
            help="per-instance (default): backlog / in-service instances; "
            "total: the raw count, as the old policy did.",
        )
        parser.add_argument(
            "--target-value", help="Videos per in-service instance (per-instance) [3]."
        )
        parser.add_argument(
            "--acceptable-wait",
            help="Seconds a video may wait; with --processing-time gives the target.",
        )
        parser.add_argument(
            "--processing-time", help="Average seconds one worker needs for one video."
        )
        parser.add_argument(
            "--warmup",
            help=f"EstimatedInstanceWarmup in seconds, 0 to {MAX_WARMUP_SECONDS} [60].",
        )
        parser.add_argument(
            "--alarm-wait",
            help="Seconds the oldest video may wait before the wait alarm [--acceptable-wait, "
            "else 600].",
        )
        parser.add_argument(
            "--alarm-topic", type=_topic, help="SNS topic ARN told when an alarm changes state."
        )
        parser.add_argument(
            "--uninstall", action="store_true", help="Remove what this command installed."
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read AWS, print the exact write requests as JSON, send none of them.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["uninstall"]:
                given = [
                    f"--{k.replace('_', '-')}"
                    for k in _INSTALL_ONLY.split()
                    if options[k] is not None
                ]
                if given:
                    raise PolicyError(
                        f"--uninstall takes no {', '.join(given)}: it removes what was installed."
                    )
                run = policy_uninstall(
                    asg_name=asg_name_parse(options["asg_name"]), dry_run=options["dry_run"]
                )
            else:
                run = policy_install(
                    options=policy_options_parse(
                        asg_name=options["asg_name"],
                        mode=options["mode"],
                        target_value=options["target_value"],
                        acceptable_wait=options["acceptable_wait"],
                        processing_time=options["processing_time"],
                        warmup=options["warmup"],
                        alarm_wait=options["alarm_wait"],
                        alarm_topic=options["alarm_topic"],
                    ),
                    dry_run=options["dry_run"],
                )
        except PolicyError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(run.as_json(), sort_keys=True))
            return
        self._report(run)

    def _report(self, run: PolicyRun) -> None:
        if run.options is not None:
            o = run.options
            self.stdout.write(
                f"Group {run.asg_name} ({run.region}), mode {o.mode}: {o.target_derivation}; "
                f"warmup {o.warmup_seconds} s; alarm wait {o.alarm_wait_seconds:g} s."
            )
        else:
            self.stdout.write(f"Group {run.asg_name} ({run.region}): uninstall.")
        for warning in run.warnings:
            self.stdout.write(self.style.WARNING(warning))
        for item in run.items:
            action = item.action
            if run.dry_run and action in _VERB:
                action = f"would {_VERB[action]}"  # type: ignore[assignment]
            note = f" ({item.note})" if item.note else ""
            self.stdout.write(f"{item.kind} {item.name}: {action}{note}")
            for change in item.changes:
                self.stdout.write(f"  {change.line()}")
        counts: dict[str, int] = {}
        for item in run.items:
            counts[item.action] = counts.get(item.action, 0) + 1
        summary = ", ".join(f"{n} {action}" for action, n in counts.items())
        if run.dry_run:
            self.stdout.write("Requests that would be sent:")
            self.stdout.write(
                json.dumps([r.as_json() for r in run.requests], indent=2, sort_keys=True)
            )
            self.stdout.write(
                f"Dry run: {len(run.requests)} write request(s) not sent ({summary})."
            )
        else:
            self.stdout.write(self.style.SUCCESS(f"Done: {summary}."))
