"""Typed access to the video worker settings.

``academy/settings.py`` reads the environment and keeps these values as given;
this module turns them into types. Parsing never raises: a value that does not
parse becomes ``None`` here (the property then answers the default) and
``video.checks`` reports it with a sentence at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.conf import settings

from scaling.api import parse_int

DEFAULT_LEASE_SECONDS = 120
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_WORKER_JOB = "video.worker.jobs.hold_job"
# At least 3 s, so the renew period (a third, in whole seconds) is at least 1 s; at
# most 12 hours, SQS's longest visibility timeout, which a worker extends as it renews.
LEASE_SECONDS_RANGE = (3, 43_200)
MAX_ATTEMPTS_RANGE = (1, 100)
# "package.module.callable": dotted Python identifiers, at least one dot.
DOTTED_PATH_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def in_range(value: int | None, bounds: tuple[int, int]) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


@dataclass(frozen=True)
class VideoSettings:
    lease_raw: str
    lease_parsed: int | None
    max_attempts_raw: str
    max_attempts_parsed: int | None
    worker_job: str

    @property
    def lease_seconds(self) -> int:
        """How long a claim or a renewal holds a video; the default when invalid."""
        value = self.lease_parsed
        if value is not None and in_range(value, LEASE_SECONDS_RANGE):
            return value
        return DEFAULT_LEASE_SECONDS

    @property
    def renew_seconds(self) -> int:
        """How often a worker renews: a third of the lease, in whole seconds."""
        return self.lease_seconds // 3

    @property
    def max_attempts(self) -> int:
        """Claims a video gets before a lost worker makes it FAILED; the default when invalid."""
        value = self.max_attempts_parsed
        if value is not None and in_range(value, MAX_ATTEMPTS_RANGE):
            return value
        return DEFAULT_MAX_ATTEMPTS


def video_settings() -> VideoSettings:
    lease_raw = str(getattr(settings, "VIDEO_LEASE_SECONDS", DEFAULT_LEASE_SECONDS))
    attempts_raw = str(getattr(settings, "VIDEO_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS))
    return VideoSettings(
        lease_raw=lease_raw,
        lease_parsed=parse_int(lease_raw),
        max_attempts_raw=attempts_raw,
        max_attempts_parsed=parse_int(attempts_raw),
        worker_job=str(getattr(settings, "VIDEO_WORKER_JOB", DEFAULT_WORKER_JOB)).strip(),
    )


def lease_seconds() -> int:
    return video_settings().lease_seconds


def renew_seconds() -> int:
    return video_settings().renew_seconds


def max_attempts() -> int:
    return video_settings().max_attempts


def worker_api_keys() -> list[str]:
    """The keys a worker may present in ``X-Worker-Key`` (several during a rotation)."""
    return list(getattr(settings, "WORKER_API_KEYS", []))
