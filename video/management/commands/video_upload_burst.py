from __future__ import annotations

import argparse
import json
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.db import DatabaseError

from scaling.api import OneLineErrorCommand, error_one_line, job_queue_url
from video.burst import BURST_MAX, BURST_MIN, TITLE_PREFIX_MAX, BurstError, video_burst_upload

DEFAULT_COUNT = 30


def burst_count(raw: str) -> int:
    text = raw.strip()
    if not text.isdigit() or not BURST_MIN <= int(text) <= BURST_MAX:
        raise argparse.ArgumentTypeError(
            f"{raw[:50]!r} is not a whole number from {BURST_MIN} to {BURST_MAX}"
        )
    return int(text)


def title_prefix(raw: str) -> str:
    if not raw.strip() or len(raw.strip()) > TITLE_PREFIX_MAX:
        raise argparse.ArgumentTypeError(f"must be 1 to {TITLE_PREFIX_MAX} characters")
    return raw.strip()


class Command(OneLineErrorCommand):
    help = (
        f"Upload --count videos at once ({BURST_MIN} to {BURST_MAX}) [{DEFAULT_COUNT}]: each "
        "UPLOADED through video.services.video_upload, its SQS job message sent when the "
        "burst commits (all videos or none). For watching the fleet scale: make burst "
        "COUNT=30. Exit 0: uploaded; 1: the database refused; 2: bad argument."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--count",
            type=burst_count,
            default=DEFAULT_COUNT,
            help=f"How many videos, {BURST_MIN} to {BURST_MAX} [{DEFAULT_COUNT}].",
        )
        parser.add_argument(
            "--title-prefix",
            type=title_prefix,
            help='Titles are "<prefix> <n>/<count>" [Burst <date and time>].',
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        queue_url = job_queue_url()
        try:
            burst = video_burst_upload(count=options["count"], title_prefix=options["title_prefix"])
        except BurstError as exc:
            raise CommandError(str(exc), returncode=2) from None
        except DatabaseError as exc:
            reason = error_one_line(exc, first_line=True)
            raise CommandError(
                f"No video uploaded: the database refused ({reason}).", returncode=1
            ) from None
        if not queue_url:
            self.stderr.write(
                "No job queue is configured (SCALING_SQS_QUEUE_URL): the videos wait in the "
                "database with no job message."
            )
        if options["json"]:
            result = {
                "uploaded": burst.count,
                "first_id": burst.first_id,
                "last_id": burst.last_id,
                "title_prefix": burst.title_prefix,
                "job_messages": bool(queue_url),
            }
            self.stdout.write(json.dumps(result, sort_keys=True))
            return
        self.stdout.write(
            self.style.SUCCESS(
                f"Uploaded {burst.count} videos, ids {burst.first_id} to {burst.last_id} "
                f'("{burst.title_prefix} 1/{burst.count}" ...).'
            )
        )
