"""The one place that changes a video's processing status.

Every change is one conditional UPDATE (``.filter(...).update(...)``) whose
WHERE holds the whole rule, so two callers that race (two workers claiming
the same video, a worker renewing while recovery runs) get one winner and the
loser changes nothing. Time comes from the database's clock (``Now()``), never
from a worker's or this process's.

The lease: a claim makes a video PROCESSING with a random token and an expiry
``VIDEO_LEASE_SECONDS`` ahead; the worker renews it every third of that. Renew,
finish and release need the token and a PROCESSING row, nothing else: a lease
that ran out but that nobody has taken over yet is still the worker's (after a
database outage the worker renews late and carries on). A PROCESSING row whose
lease ran out, or that has no lease at all (created before leases existed, or
by hand), can be claimed by another worker or recovered.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, F, Q, QuerySet
from django.db.models.functions import Greatest, Now

from scaling.api import Recovery
from video.conf import video_settings
from video.jobs import video_job_send_on_commit
from video.models import Video, VideoRecovery, VideoStatus
from video.selectors import (
    lease_expired_q,
    videos_lease_expired_qs,
    videos_lease_missing_qs,
    videos_waiting_oldest_qs,
)

logger = logging.getLogger("video.leases")

FinishStatus = Literal["READY", "FAILED"]
FINISH_STATUSES: tuple[str, ...] = (VideoStatus.READY, VideoStatus.FAILED)
# A claim that loses a race to a release or a recovery (the row went back to
# UPLOADED between the UPDATE and the read) tries again, this many times in all.
_CLAIM_TRIES = 3


class ClaimRefusal(StrEnum):
    TAKEN = "taken"  # another worker holds a live lease
    DONE = "done"  # READY
    FAILED = "failed"  # FAILED
    UNKNOWN = "unknown"  # no such video


@dataclass(frozen=True)
class Lease:
    video_id: int
    token: str
    expires_at: datetime
    attempts: int
    lease_seconds: int
    renew_seconds: int


@dataclass(frozen=True)
class RenewResult:
    ok: bool
    expires_at: datetime | None = None
    reason: str | None = None  # "lease-lost" or "unknown" when not ok
    # "Finish this video, take no other": the caller sets it (the worker API asks
    # scaling.fleet whether ``instance_id`` is leaving the group).
    drain: bool = False
    instance_id: str = ""  # the instance the lease names ("" when not ok, or none named)


@dataclass(frozen=True)
class FinishResult:
    ok: bool
    video_id: int
    status: str | None  # the video's status now (None: no such video)
    repeated: bool = False  # the same finish, with the same token, already happened
    reason: str | None = None  # "lease-lost" or "unknown" when not ok


@dataclass(frozen=True)
class ReleaseResult:
    ok: bool
    video_id: int
    reason: str | None = None  # "lease-lost" or "unknown" when not ok


LEASE_LOST = "lease-lost"
UNKNOWN = "unknown"


def _lease_expiry(seconds: int) -> ExpressionWrapper:
    return ExpressionWrapper(Now() + timedelta(seconds=seconds), output_field=DateTimeField())


def _lease_cleared() -> dict[str, Any]:
    return {
        "lease_expires_at": None,
        "lease_instance_id": "",
        "lease_worker_id": "",
        "lease_token": "",
        "processing_started_at": None,
    }


def _held(video_id: int, token: str) -> QuerySet[Video, Video]:
    """The row, if ``token`` still holds its lease."""
    return Video.objects.filter(pk=video_id, status=VideoStatus.PROCESSING, lease_token=token)


def video_upload(*, title: str) -> Video:
    """A new UPLOADED video; its job message goes out when the transaction commits."""
    video = Video.objects.create(title=title, status=VideoStatus.UPLOADED)
    video_job_send_on_commit(video.pk)
    return video


def video_claim(*, video_id: int, instance_id: str, worker_id: str) -> Lease | ClaimRefusal:
    """UPLOADED, or PROCESSING without a live lease, -> PROCESSING for this worker."""
    conf = video_settings()
    # A lost lease may be taken over before recovery sees it, but only while
    # attempts remain: a video at the most attempts waits for recovery to fail it
    # with the reason, so that workers that keep dying cannot keep it alive.
    claimable = Q(status=VideoStatus.UPLOADED) | (
        Q(status=VideoStatus.PROCESSING, attempts__lt=conf.max_attempts) & lease_expired_q()
    )
    for _ in range(_CLAIM_TRIES):
        token = secrets.token_urlsafe(24)
        updated = (
            Video.objects.filter(claimable, pk=video_id)
            .order_by()
            .update(
                status=VideoStatus.PROCESSING,
                status_changed_at=Now(),
                updated_at=Now(),
                processing_started_at=Now(),
                lease_expires_at=_lease_expiry(conf.lease_seconds),
                lease_instance_id=instance_id,
                lease_worker_id=worker_id,
                lease_token=token,
                attempts=F("attempts") + 1,
            )
        )
        if updated:
            row = (
                Video.objects.filter(pk=video_id)
                .values_list("lease_token", "lease_expires_at", "attempts")
                .first()
            )
            if row is not None and row[0] == token and row[1] is not None:
                logger.info(
                    "Video claimed | video_id=%s attempts=%s instance_id=%s worker_id=%s",
                    video_id,
                    row[2],
                    instance_id,
                    worker_id,
                )
                return Lease(
                    video_id=video_id,
                    token=token,
                    expires_at=row[1],
                    attempts=row[2],
                    lease_seconds=conf.lease_seconds,
                    renew_seconds=conf.renew_seconds,
                )
            # Taken over between the UPDATE and the read: only possible once our
            # lease ran out, i.e. never with a sane lease length.
            return ClaimRefusal.TAKEN
        status = Video.objects.filter(pk=video_id).values_list("status", flat=True).first()
        if status is None:
            return ClaimRefusal.UNKNOWN
        if status == VideoStatus.READY:
            return ClaimRefusal.DONE
        if status == VideoStatus.FAILED:
            return ClaimRefusal.FAILED
        if status == VideoStatus.PROCESSING:
            return ClaimRefusal.TAKEN
        # UPLOADED now: released or recovered just after our UPDATE looked. Again.
    return ClaimRefusal.TAKEN


def video_claim_next(*, instance_id: str, worker_id: str) -> Lease | None:
    """The longest-waiting UPLOADED video -> PROCESSING for this worker; None if none waits.

    For a worker whose queue is empty: the rows are the truth, a message only a
    wake-up, and one can be lost (a purge, a dead-letter queue, a failed send).
    The oldest row is locked ``FOR UPDATE SKIP LOCKED`` (two callers never get
    the same one, and neither waits for the other), then ``video_claim`` grants
    the lease as for a message. A message for it that comes later gets "taken".
    """
    with transaction.atomic():
        locked = videos_waiting_oldest_qs().select_for_update(skip_locked=True)
        video_id = locked.values_list("pk", flat=True).first()
        if video_id is None:
            return None
        result = video_claim(video_id=video_id, instance_id=instance_id, worker_id=worker_id)
    # Always a lease: the row is UPLOADED and ours until the commit.
    return result if isinstance(result, Lease) else None


def video_lease_renew(*, video_id: int, token: str) -> RenewResult:
    """Extend the lease by ``VIDEO_LEASE_SECONDS`` from now, if ``token`` still holds it."""
    conf = video_settings()
    updated = (
        _held(video_id, token)
        .order_by()
        .update(lease_expires_at=_lease_expiry(conf.lease_seconds), updated_at=Now())
    )
    if updated:
        row = _held(video_id, token).values_list("lease_expires_at", "lease_instance_id").first()
        if row is not None and row[0] is not None:
            return RenewResult(ok=True, expires_at=row[0], instance_id=row[1])
    if not Video.objects.filter(pk=video_id).exists():
        return RenewResult(ok=False, reason=UNKNOWN)
    logger.info("Video lease lost at renewal | video_id=%s", video_id)
    return RenewResult(ok=False, reason=LEASE_LOST)


def video_finish(
    *, video_id: int, token: str, status: FinishStatus, error: str = ""
) -> FinishResult:
    """PROCESSING -> READY or FAILED for the lease holder; a repeat answers the same.

    The token stays on the finished row: the same finish again (same token, same
    status) is recognised and answered as the first one was, changing nothing.
    """
    if status not in FINISH_STATUSES:
        raise ValueError(f"a video finishes READY or FAILED, not {status!r}")
    updated = (
        _held(video_id, token)
        .order_by()
        .update(
            status=status,
            status_changed_at=Now(),
            updated_at=Now(),
            lease_expires_at=None,
            last_error=error,
        )
    )
    if updated:
        logger.info("Video finished | video_id=%s status=%s", video_id, status)
        return FinishResult(ok=True, video_id=video_id, status=status)
    row = Video.objects.filter(pk=video_id).values_list("status", "lease_token").first()
    if row is None:
        return FinishResult(ok=False, video_id=video_id, status=None, reason=UNKNOWN)
    now_status, now_token = row
    if now_status == status and now_token == token:
        return FinishResult(ok=True, video_id=video_id, status=status, repeated=True)
    logger.info(
        "Video finish refused: lease lost | video_id=%s asked=%s status=%s",
        video_id,
        status,
        now_status,
    )
    return FinishResult(ok=False, video_id=video_id, status=now_status, reason=LEASE_LOST)


def video_release(*, video_id: int, token: str) -> ReleaseResult:
    """PROCESSING -> UPLOADED at once (a worker told to stop); not a failed attempt."""
    with transaction.atomic():
        updated = (
            _held(video_id, token)
            .order_by()
            .update(
                status=VideoStatus.UPLOADED,
                status_changed_at=Now(),
                updated_at=Now(),
                attempts=Greatest(F("attempts") - 1, 0),
                **_lease_cleared(),
            )
        )
        if updated:
            video_job_send_on_commit(video_id)
    if updated:
        logger.info("Video released | video_id=%s", video_id)
        return ReleaseResult(ok=True, video_id=video_id)
    if not Video.objects.filter(pk=video_id).exists():
        return ReleaseResult(ok=False, video_id=video_id, reason=UNKNOWN)
    return ReleaseResult(ok=False, video_id=video_id, reason=LEASE_LOST)


def videos_recover_expired(*, max_attempts: int, limit: int = 500) -> list[Recovery]:
    """PROCESSING videos without a live lease -> UPLOADED, or FAILED after ``max_attempts``.

    At most ``limit`` videos, the longest expired first. Each is one conditional
    UPDATE (its lease must still be the expired one it was read with), one
    ``VideoRecovery`` row and one log line; the job messages of the videos put
    back go out after the commit. Waiting a full lease after a database outage
    before calling this is the caller's job.
    """
    recoveries: list[Recovery] = []
    with transaction.atomic():
        # Locked rows are skipped: another recovery (or a claim) has them now.
        # Lease-less rows first (they have waited longest), then the longest expired.
        candidates: list[tuple[int, str, int, str, str]] = []
        for queryset_get in (videos_lease_missing_qs, videos_lease_expired_qs):
            if len(candidates) < limit:
                candidates += (
                    queryset_get(limit=limit - len(candidates))
                    .select_for_update(skip_locked=True)
                    .values_list(
                        "pk", "lease_token", "attempts", "lease_instance_id", "lease_worker_id"
                    )
                )
        for video_id, token, attempts, instance_id, worker_id in candidates:
            recovery = _recover_one(
                video_id=video_id,
                token=token,
                attempts=attempts,
                instance_id=instance_id,
                worker_id=worker_id,
                max_attempts=max_attempts,
            )
            if recovery is not None:
                recoveries.append(recovery)
    return recoveries


def _recover_one(
    *,
    video_id: int,
    token: str,
    attempts: int,
    instance_id: str,
    worker_id: str,
    max_attempts: int,
) -> Recovery | None:
    still_expired = Video.objects.filter(
        lease_expired_q(),
        pk=video_id,
        status=VideoStatus.PROCESSING,
        lease_token=token,
        attempts=attempts,
    ).order_by()
    if attempts >= max_attempts:
        status = VideoStatus.FAILED
        # The instance and worker stay on the row (who lost it, last time); the
        # token goes, so a late finish from that worker is refused, not "repeated".
        changes: dict[str, Any] = {
            "lease_expires_at": None,
            "lease_token": "",
            "last_error": f"lost its worker {attempts} times",
        }
    else:
        status = VideoStatus.UPLOADED
        changes = {**_lease_cleared(), "last_error": f"lost its worker (attempt {attempts})"}
    updated = still_expired.update(
        status=status, status_changed_at=Now(), updated_at=Now(), **changes
    )
    if not updated:
        return None
    record = VideoRecovery.objects.create(  # recovered_at: the database's Now(), returned
        video_id=video_id,
        status=status,
        attempts=attempts,
        instance_id=instance_id,
        worker_id=worker_id,
    )
    if status == VideoStatus.UPLOADED:
        video_job_send_on_commit(video_id)
    (logger.warning if status == VideoStatus.FAILED else logger.info)(
        "Video lease expired, recovered | video_id=%s status=%s attempts=%s instance_id=%s "
        "worker_id=%s",
        video_id,
        status,
        attempts,
        instance_id or "-",
        worker_id or "-",
    )
    return Recovery(
        video_id=video_id,
        status=status.value,
        attempts=attempts,
        instance_id=instance_id,
        worker_id=worker_id,
        recovered_at=record.recovered_at,
    )
