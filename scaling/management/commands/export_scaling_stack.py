"""manage.py export_scaling_stack: what install_scaling_policy installs, as a template."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.export.run import FORMATS, export_build, export_lines
from scaling.management.base import OneLineErrorCommand
from scaling.policy.options import PolicyError, policy_flags_add


class Command(OneLineErrorCommand):
    help = (
        "Write the video workers' scaling (target tracking, wake from zero, the five alarms, "
        "the dashboard, the drain hook) as a CloudFormation template (JSON, or YAML with "
        "--yaml or an --output ending .yaml) or Terraform JSON (.tf.json), built from the "
        "same requests install_scaling_policy sends. The group is referenced, not created. "
        "Reads nothing from AWS."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        # install_scaling_policy's own flags, read by its own parser (policy_options_parse).
        parser.add_argument("--format", required=True, choices=FORMATS, help="The template.")
        parser.add_argument(
            "--fleet", help="One fleet of SCALING_FLEETS (its group, metric, defaults)."
        )
        parser.add_argument("--asg-name", help="The group parameter's default [SCALING_ASG_NAME].")
        parser.add_argument(
            "--output", help="Write here (.json/.template/.yaml/.yml; .tf.json) [stdout]."
        )
        parser.add_argument(
            "--yaml", action="store_true", help="CloudFormation as YAML (JSON by default)."
        )
        parser.add_argument(
            "--json",
            action="store_true",
            help="Print a JSON summary (with the template under 'template').",
        )
        policy_flags_add(parser)
        parser.add_argument("--alarm-topic", help="SNS topic ARN told when an alarm changes.")
        parser.add_argument(
            "--drain-timeout",
            help="Termination lifecycle hook's HeartbeatTimeout, 30 to 7200 s [two leases].",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            export = export_build(options)
        except PolicyError as exc:
            raise CommandError(str(exc), returncode=2) from exc
        if export.output is not None:
            try:
                Path(export.output).write_text(export.text)
            except OSError as exc:
                raise CommandError(
                    f"Could not write {export.output}: {exc.strerror or exc}."
                ) from exc
        if options["json"]:
            summary = export.as_json()
            if export.output is None:
                summary["template"] = export.text if export.yaml else export.document
            self.stdout.write(json.dumps(summary, sort_keys=True))
            return
        if export.output is None:
            self.stdout.write(export.text, ending="")
            return
        for line in export_lines(export):
            self.stdout.write(line)
