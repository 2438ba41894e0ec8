"""System checks for the video worker settings: a bad value fails at start-up."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from scaling.api import MAX_KEY_LENGTH, internal_api_keys
from video.conf import (
    DOTTED_PATH_RE,
    LEASE_SECONDS_RANGE,
    MAX_ATTEMPTS_RANGE,
    in_range,
    video_settings,
    worker_api_keys,
)


@register(Tags.compatibility)
def video_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    conf = video_settings()
    errors: list[CheckMessage] = []
    low, high = LEASE_SECONDS_RANGE
    if not in_range(conf.lease_parsed, LEASE_SECONDS_RANGE):
        errors.append(
            Error(
                f"VIDEO_LEASE_SECONDS is {conf.lease_raw!r}.",
                hint=f"Set VIDEO_LEASE_SECONDS to a whole number of seconds from {low} to "
                f"{high} (default 120; workers renew every third of it).",
                id="video.E001",
            )
        )
    low, high = MAX_ATTEMPTS_RANGE
    if not in_range(conf.max_attempts_parsed, MAX_ATTEMPTS_RANGE):
        errors.append(
            Error(
                f"VIDEO_MAX_ATTEMPTS is {conf.max_attempts_raw!r}.",
                hint=f"Set VIDEO_MAX_ATTEMPTS to a whole number from {low} to {high} (default 3).",
                id="video.E002",
            )
        )
    if not DOTTED_PATH_RE.match(conf.worker_job):
        errors.append(
            Error(
                f"VIDEO_WORKER_JOB {conf.worker_job!r} is not a dotted path.",
                hint="Set VIDEO_WORKER_JOB to package.module.callable "
                "(default video.worker.jobs.hold_job).",
                id="video.E003",
            )
        )
    # The audit key must not claim videos: a key configured for both would.
    if set(worker_api_keys()) & set(internal_api_keys()):
        errors.append(
            Error(
                "WORKER_API_KEY and INTERNAL_API_KEY share a key.",
                hint="Give the workers a key of their own: the audit key must not claim videos.",
                id="video.E004",
            )
        )
    return errors


# Not a deploy check: a key that can never match breaks the worker API everywhere.
@register(Tags.security)
def worker_api_key_length_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if all(len(key.encode("utf-8")) <= MAX_KEY_LENGTH for key in worker_api_keys()):
        return []
    return [
        Error(
            # The key itself stays out of the message (and the journal).
            f"WORKER_API_KEY holds a key longer than {MAX_KEY_LENGTH} bytes, which no request "
            f"can present: set keys of {MAX_KEY_LENGTH} bytes or fewer.",
            id="video.E005",
        )
    ]


@register(Tags.security, deploy=True)
def worker_api_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if worker_api_keys():
        return []
    return [
        Warning(
            "No worker API key is configured: the video worker API refuses every request.",
            hint="Set WORKER_API_KEY (several keys comma-separated for rotation).",
            id="video.W001",
        )
    ]
