from __future__ import annotations

import argparse
import functools
import json
import os
import socket
from typing import Any

from django.conf import settings
from django.core.management.base import CommandError, CommandParser
from django.utils.module_loading import import_string

from scaling.api import QUEUE_URL_RE, OneLineErrorCommand, job_queue_url
from video.conf import lease_seconds, video_settings, worker_api_keys
from video.worker import client, imds, queue
from video.worker.jobs import DEFAULT_HOLD_SECONDS, hold_job
from video.worker.loop import Job, VideoWorker, WorkerFatal

DEFAULT_API_URL = "http://127.0.0.1:8000"


def bad_input(message: str) -> CommandError:
    return CommandError(message, returncode=2)


def positive_int(raw: str) -> int:
    if not raw.strip().isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number of 1 or more")
    return int(raw)


class Command(OneLineErrorCommand):
    help = (
        "Process videos from the job queue: long-poll SQS, claim each video through the "
        "worker API, run VIDEO_WORKER_JOB while renewing the lease, finish, delete the "
        "message. The default job is a stand-in for the transcoder that holds each video "
        "VIDEO_WORKER_HOLD_SECONDS [5]. "
        "SIGTERM or SIGINT releases the current video (UPLOADED again) and exits. "
        "One log line per action on stderr. Exit 0: stopped as asked (signal, drain, "
        "--max-videos); 1: cannot go on (key refused, queue missing, no credentials); "
        "2: bad argument or configuration."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--instance-id", help="This machine's EC2 instance id (default: ask IMDSv2)."
        )
        parser.add_argument(
            "--api-url", default=DEFAULT_API_URL, help=f"Worker API base [{DEFAULT_API_URL}]."
        )
        parser.add_argument("--queue-url", help="Job queue [SCALING_SQS_QUEUE_URL].")
        parser.add_argument(
            "--max-videos", type=positive_int, help="Exit after claiming this many videos."
        )
        parser.add_argument("--json", action="store_true", help="Print a JSON summary at exit.")

    def handle(self, *args: Any, **options: Any) -> None:
        api_url = str(options["api_url"]).strip()
        try:
            client.base_url_check(api_url)
        except ValueError:
            raise bad_input(
                f"--api-url {api_url!r} is not an http(s) URL: pass e.g. {DEFAULT_API_URL}."
            ) from None
        api = client.WorkerApiClient(api_url, worker_key())
        queue_url = str(options["queue_url"] or job_queue_url()).strip()
        if not queue_url:
            raise bad_input(
                "No job queue is configured: set SCALING_SQS_QUEUE_URL or pass --queue-url."
            )
        if not QUEUE_URL_RE.match(queue_url):
            raise bad_input(
                f"{queue_url!r} is not an SQS queue URL: expected "
                "https://sqs.<region>.amazonaws.com/<account>/<queue>."
            )
        job = job_load()
        instance_id = options["instance_id"]
        if instance_id is not None and not client.INSTANCE_ID_RE.match(instance_id):
            raise bad_input(
                f"--instance-id {instance_id!r} is not an instance id: pass up to 64 letters, "
                "digits, '.', '_', ':' or '-', e.g. i-0123456789abcdef0."
            )
        instance_id = instance_id or imds.instance_id_lookup()
        if instance_id is None:
            raise bad_input(
                "No instance id: the EC2 instance metadata service did not answer; "
                "pass --instance-id."
            )
        job_queue = queue.SqsJobQueue(
            queue_url, region=str(settings.AWS_REGION), endpoint_url=settings.AWS_ENDPOINT_URL
        )
        worker = VideoWorker(
            api=api,
            queue=job_queue,
            job=job,
            instance_id=instance_id,
            worker_id=f"{socket.gethostname()}:{os.getpid()}",
            lease_seconds=lease_seconds(),
            max_videos=options["max_videos"],
        )
        worker.signals_install()
        try:
            summary = worker.run()
        except WorkerFatal as exc:
            raise CommandError(f"{str(exc).rstrip('.')}.", returncode=1) from None
        text = json.dumps(summary.as_json(), sort_keys=True) if options["json"] else summary.text()
        self.stdout.write(text)
        self.stdout.flush()


def worker_key() -> str:
    """The first of the configured worker keys (the others are for rotation)."""
    keys = worker_api_keys()
    if not keys:
        raise bad_input("No worker API key is configured: set WORKER_API_KEY.")
    return keys[0]


def job_load() -> Job:
    path = video_settings().worker_job
    try:
        job = import_string(path)
    except ImportError as exc:
        raise bad_input(f"VIDEO_WORKER_JOB={path!r} cannot be imported: {exc}.") from None
    if not callable(job):
        raise bad_input(f"VIDEO_WORKER_JOB={path!r} is not callable.")
    if job is hold_job:
        return functools.partial(hold_job, seconds=hold_seconds())
    return job


def hold_seconds() -> float:
    raw: Any = getattr(settings, "VIDEO_WORKER_HOLD_SECONDS", DEFAULT_HOLD_SECONDS)
    try:
        seconds = float(raw)
    except (TypeError, ValueError):
        seconds = -1.0
    if not 0 <= seconds < 86_400:
        raise bad_input(
            f"VIDEO_WORKER_HOLD_SECONDS={raw!r} is not a number of seconds from 0 to 86400."
        )
    return seconds
