"""An upload burst: many videos in one step, to watch the fleet scale out and back in.

Used by ``manage.py video_upload_burst`` (``make burst``) and the Video admin's
"Upload a burst" form. Every video goes through ``video.services.video_upload``:
UPLOADED, and its SQS job message once the burst's transaction commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from video.services import video_upload

BURST_MIN = 1
BURST_MAX = 1000
# Titles are "<prefix> <n>/<count>"; the model's title holds 255 characters.
TITLE_PREFIX_MAX = 200


@dataclass(frozen=True)
class Burst:
    count: int
    first_id: int
    last_id: int
    title_prefix: str
    ids: tuple[int, ...]  # in upload order


class BurstError(ValueError):
    """A count or a prefix out of bounds: one sentence, shown as is."""


def burst_title_prefix_default() -> str:
    return f"Burst {timezone.localtime():%Y-%m-%d %H:%M:%S}"


def burst_count_check(count: int) -> int:
    if not BURST_MIN <= count <= BURST_MAX:
        raise BurstError(f"count must be from {BURST_MIN} to {BURST_MAX}, got {count}.")
    return count


def video_burst_upload(*, count: int, title_prefix: str | None = None) -> Burst:
    """``count`` UPLOADED videos, all or none (one transaction); ids first to last."""
    burst_count_check(count)
    prefix = (title_prefix or "").strip() or burst_title_prefix_default()
    if len(prefix) > TITLE_PREFIX_MAX:
        raise BurstError(f"the title prefix must be at most {TITLE_PREFIX_MAX} characters.")
    with transaction.atomic():
        ids = [video_upload(title=f"{prefix} {n}/{count}").pk for n in range(1, count + 1)]
    return Burst(
        count=count, first_id=min(ids), last_id=max(ids), title_prefix=prefix, ids=tuple(ids)
    )
