"""manage.py scaling_iam_policy --role publisher|installer|status: the role's IAM policy
document for the configured fleets (scaling.policy.iam), as JSON on stdout."""

from __future__ import annotations

from typing import Any

from django.core.management.base import CommandError, CommandParser

from scaling.management.base import OneLineErrorCommand
from scaling.policy.iam import ROLES, iam_document_build, iam_document_text
from scaling.policy.options import PolicyError


class Command(OneLineErrorCommand):
    help = (
        "Print the IAM policy document of a role for the configured fleets (SCALING_FLEETS): "
        "PutMetricData only in their namespaces, writes only on their groups, alarms and "
        "dashboards. With one fleet it is deploy/iam/<role>.json."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--role", required=True, choices=ROLES, help="Whose document.")
        parser.add_argument(
            "--region", default="REGION", help="The region in every ARN [the REGION placeholder]."
        )
        parser.add_argument(
            "--account-id",
            default="ACCOUNT_ID",
            help="The account in every ARN [the ACCOUNT_ID placeholder].",
        )
        parser.add_argument(
            "--json", action="store_true", help="Accepted for symmetry: the output is JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            document = iam_document_build(
                options["role"], region=options["region"], account=options["account_id"]
            )
        except PolicyError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(iam_document_text(document), ending="")
