"""video.services: the one place that changes a video's processing status."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from tests.factories import video_create, video_leased
from video import services
from video.models import Video, VideoRecovery, VideoStatus
from video.services import ClaimRefusal, Lease

pytestmark = pytest.mark.django_db

LEASE = 120
INSTANCE = "i-0bbbbbbbbbbbbbbb2"
WORKER = "worker-2"


@pytest.fixture(autouse=True)
def _lease_settings(settings: Any) -> None:
    settings.VIDEO_LEASE_SECONDS = str(LEASE)
    settings.VIDEO_MAX_ATTEMPTS = "3"
    settings.SCALING_SQS_QUEUE_URL = ""


def _row(video: Video) -> Video:
    return Video.objects.get(pk=video.pk)


def _claim(video_id: int) -> Lease | ClaimRefusal:
    return services.video_claim(video_id=video_id, instance_id=INSTANCE, worker_id=WORKER)


def _lease(video_id: int) -> Lease:
    lease = _claim(video_id)
    assert isinstance(lease, Lease), lease
    return lease


# --- claim --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "outcome", "attempts_after"),
    [
        pytest.param(lambda: video_create(status="UPLOADED"), "lease", 1, id="uploaded"),
        pytest.param(lambda: video_leased(expires_in=60), ClaimRefusal.TAKEN, 1, id="live-lease"),
        pytest.param(lambda: video_leased(expires_in=-1), "lease", 2, id="expired-lease"),
        pytest.param(
            lambda: video_create(status="PROCESSING"), "lease", 1, id="processing-no-lease"
        ),
        pytest.param(lambda: video_create(status="READY"), ClaimRefusal.DONE, 0, id="ready"),
        pytest.param(lambda: video_create(status="FAILED"), ClaimRefusal.FAILED, 0, id="failed"),
    ],
)
def test_claim_table(make: Callable[[], Video], outcome: Any, attempts_after: int) -> None:
    video = make()
    before = _row(video)

    result = _claim(video.pk)

    after = _row(video)
    assert after.attempts == attempts_after
    if outcome == "lease":
        assert isinstance(result, Lease)
        assert after.status == VideoStatus.PROCESSING
        assert (after.lease_token, after.lease_expires_at) == (result.token, result.expires_at)
        assert (after.lease_instance_id, after.lease_worker_id) == (INSTANCE, WORKER)
        assert result.attempts == attempts_after
    else:
        assert result is outcome
        # A refusal changes nothing.
        assert (after.status, after.lease_token, after.lease_expires_at, after.updated_at) == (
            before.status,
            before.lease_token,
            before.lease_expires_at,
            before.updated_at,
        )


def test_claim_unknown_video() -> None:
    assert _claim(987654) is ClaimRefusal.UNKNOWN


def test_claim_gives_a_lease_of_the_configured_length_from_the_database_clock() -> None:
    video = video_create()
    lower = timezone.now() - timedelta(seconds=5)

    lease = _lease(video.pk)

    row = _row(video)
    assert (lease.lease_seconds, lease.renew_seconds) == (LEASE, LEASE // 3)
    assert lower + timedelta(seconds=LEASE) <= lease.expires_at
    assert lease.expires_at <= timezone.now() + timedelta(seconds=LEASE + 5)
    assert row.processing_started_at is not None
    assert row.status_changed_at == row.processing_started_at
    assert len(lease.token) >= 32


def test_each_claim_has_a_new_token() -> None:
    video = video_leased(expires_in=-1, token="old-token")

    first = _lease(video.pk)
    Video.objects.filter(pk=video.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    second = _lease(video.pk)

    assert len({"old-token", first.token, second.token}) == 3
    assert second.attempts == 3


# --- renew --------------------------------------------------------------------------------


def test_renew_moves_the_expiry_from_now() -> None:
    video = video_leased(expires_in=5, token="t-1")

    result = services.video_lease_renew(video_id=video.pk, token="t-1")

    assert result.ok
    assert result.drain is False
    assert result.expires_at == _row(video).lease_expires_at
    assert result.expires_at is not None
    assert result.expires_at > timezone.now() + timedelta(seconds=LEASE - 10)


def test_renew_of_a_lease_that_ran_out_but_is_not_taken_still_holds() -> None:
    """After a database outage a worker renews late: nobody else has the video, so it goes on."""
    video = video_leased(expires_in=-30, token="t-1")

    result = services.video_lease_renew(video_id=video.pk, token="t-1")

    assert result.ok
    assert _row(video).lease_token == "t-1"


@pytest.mark.parametrize(
    ("change", "token"),
    [
        pytest.param(lambda video: None, "wrong", id="wrong-token"),
        pytest.param(
            lambda video: services.video_finish(video_id=video.pk, token="t-1", status="READY"),
            "t-1",
            id="after-finish",
        ),
        pytest.param(
            lambda video: services.video_release(video_id=video.pk, token="t-1"),
            "t-1",
            id="after-release",
        ),
        pytest.param(
            lambda video: services.videos_recover_expired(max_attempts=3),
            "t-1",
            id="after-recovery",
        ),
        pytest.param(lambda video: _claim(video.pk), "t-1", id="after-another-claim"),
    ],
)
def test_renew_after_loss_table(change: Callable[[Video], Any], token: str) -> None:
    video = video_leased(expires_in=-1, token="t-1")
    change(video)
    before = _row(video)

    result = services.video_lease_renew(video_id=video.pk, token=token)

    assert (result.ok, result.reason, result.expires_at, result.drain) == (
        False,
        "lease-lost",
        None,
        False,
    )
    after = _row(video)
    assert (after.lease_expires_at, after.updated_at) == (
        before.lease_expires_at,
        before.updated_at,
    )


def test_renew_unknown_video() -> None:
    result = services.video_lease_renew(video_id=987654, token="t-1")
    assert (result.ok, result.reason) == (False, "unknown")


# --- finish -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error"),
    [
        pytest.param("READY", "", id="ready"),
        pytest.param("FAILED", "ffmpeg exited with 1", id="failed-with-error"),
    ],
)
def test_finish_table(status: services.FinishStatus, error: str) -> None:
    video = video_leased(token="t-1")

    result = services.video_finish(video_id=video.pk, token="t-1", status=status, error=error)

    row = _row(video)
    assert (result.ok, result.status, result.repeated) == (True, status, False)
    assert (row.status, row.last_error, row.lease_expires_at) == (status, error, None)
    # The token stays, so that a repeat can be recognised.
    assert row.lease_token == "t-1"
    assert row.status_changed_at > video.status_changed_at


def test_finish_twice_answers_the_same_and_changes_nothing() -> None:
    video = video_leased(token="t-1")
    first = services.video_finish(video_id=video.pk, token="t-1", status="READY")
    after_first = _row(video)

    second = services.video_finish(video_id=video.pk, token="t-1", status="READY")

    assert (first.ok, first.status) == (second.ok, second.status) == (True, "READY")
    assert second.repeated is True
    assert _row(video).updated_at == after_first.updated_at


@pytest.mark.parametrize(
    ("change", "token", "status_after"),
    [
        pytest.param(lambda video: None, "wrong", "PROCESSING", id="wrong-token"),
        pytest.param(
            lambda video: services.video_finish(video_id=video.pk, token="t-1", status="READY"),
            "t-1",
            "READY",
            id="other-status-after-finish",
        ),
        pytest.param(
            lambda video: services.videos_recover_expired(max_attempts=3),
            "t-1",
            "UPLOADED",
            id="after-recovery",
        ),
        pytest.param(
            lambda video: services.videos_recover_expired(max_attempts=1),
            "t-1",
            "FAILED",
            id="after-recovery-to-failed",
        ),
        pytest.param(lambda video: _claim(video.pk), "t-1", "PROCESSING", id="after-takeover"),
    ],
)
def test_finish_with_a_lost_lease_changes_nothing(
    change: Callable[[Video], Any], token: str, status_after: str
) -> None:
    video = video_leased(expires_in=-1, token="t-1")
    change(video)
    before = _row(video)

    result = services.video_finish(video_id=video.pk, token=token, status="FAILED", error="late")

    assert (result.ok, result.reason, result.status) == (False, "lease-lost", status_after)
    after = _row(video)
    assert (after.status, after.last_error, after.updated_at) == (
        before.status,
        before.last_error,
        before.updated_at,
    )


def test_finish_unknown_video() -> None:
    result = services.video_finish(video_id=987654, token="t", status="READY")
    assert (result.ok, result.reason, result.status) == (False, "unknown", None)


def test_finish_refuses_a_status_that_is_not_an_end() -> None:
    video = video_leased(token="t-1")
    with pytest.raises(ValueError, match="READY or FAILED"):
        services.video_finish(video_id=video.pk, token="t-1", status="UPLOADED")  # type: ignore[arg-type]
    assert _row(video).status == VideoStatus.PROCESSING


# --- release ------------------------------------------------------------------------------


def test_release_puts_the_video_back_at_once_and_is_not_counted() -> None:
    video = video_create()
    lease = _lease(video.pk)

    result = services.video_release(video_id=video.pk, token=lease.token)

    row = _row(video)
    assert (result.ok, result.reason) == (True, None)
    assert (row.status, row.attempts) == (VideoStatus.UPLOADED, 0)
    assert (row.lease_token, row.lease_expires_at, row.lease_instance_id) == ("", None, "")
    assert row.processing_started_at is None
    # The next claim is the first attempt again.
    assert _lease(video.pk).attempts == 1


@pytest.mark.parametrize(
    ("make", "token", "reason"),
    [
        pytest.param(lambda: video_leased(token="t-1"), "wrong", "lease-lost", id="wrong-token"),
        pytest.param(lambda: video_create(status="UPLOADED"), "t-1", "lease-lost", id="uploaded"),
        pytest.param(lambda: video_create(status="READY"), "t-1", "lease-lost", id="ready"),
    ],
)
def test_release_refused_table(make: Callable[[], Video], token: str, reason: str) -> None:
    video = make()
    before = _row(video)

    result = services.video_release(video_id=video.pk, token=token)

    assert (result.ok, result.reason) == (False, reason)
    assert _row(video).updated_at == before.updated_at


def test_release_twice_is_refused_the_second_time() -> None:
    video = video_leased(token="t-1")
    assert services.video_release(video_id=video.pk, token="t-1").ok
    assert services.video_release(video_id=video.pk, token="t-1").reason == "lease-lost"


def test_release_unknown_video() -> None:
    assert services.video_release(video_id=987654, token="t").reason == "unknown"


# --- recovery -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expires_in", "attempts", "max_attempts", "status_after", "last_error"),
    [
        pytest.param(-1, 1, 3, "UPLOADED", "lost its worker (attempt 1)", id="first-loss"),
        pytest.param(-1, 2, 3, "UPLOADED", "lost its worker (attempt 2)", id="second-loss"),
        pytest.param(-1, 3, 3, "FAILED", "lost its worker 3 times", id="out-of-attempts"),
        pytest.param(-1, 5, 3, "FAILED", "lost its worker 5 times", id="over-the-maximum"),
        pytest.param(-1, 1, 1, "FAILED", "lost its worker 1 times", id="one-attempt-only"),
        pytest.param(60, 3, 3, "PROCESSING", "", id="live-lease-untouched"),
        pytest.param(1, 1, 3, "PROCESSING", "", id="about-to-expire-untouched"),
    ],
)
def test_recover_table(
    expires_in: float,
    attempts: int,
    max_attempts: int,
    status_after: str,
    last_error: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    video = video_leased(expires_in=expires_in, attempts=attempts, instance_id=INSTANCE)

    with caplog.at_level(logging.INFO, logger="video.leases"):
        recoveries = services.videos_recover_expired(max_attempts=max_attempts)

    row = _row(video)
    assert (row.status, row.last_error, row.attempts) == (status_after, last_error, attempts)
    lines = [r.getMessage() for r in caplog.records if r.name == "video.leases"]
    if status_after == "PROCESSING":
        assert (recoveries, lines, VideoRecovery.objects.count()) == ([], [], 0)
        return
    assert [(r.video_id, r.status, r.attempts, r.instance_id) for r in recoveries] == [
        (video.pk, status_after, attempts, INSTANCE)
    ]
    assert lines == [
        f"Video lease expired, recovered | video_id={video.pk} status={status_after} "
        f"attempts={attempts} instance_id={INSTANCE} worker_id=worker-1"
    ]
    assert row.lease_expires_at is None
    assert row.lease_token == ""
    assert row.status_changed_at > video.status_changed_at
    record = VideoRecovery.objects.get()
    assert (record.video_id, record.status, record.attempts, record.instance_id) == (
        video.pk,
        status_after,
        attempts,
        INSTANCE,
    )
    assert recoveries[0].recovered_at == record.recovered_at
    if status_after == "UPLOADED":
        assert (row.lease_instance_id, row.processing_started_at) == ("", None)
    else:  # who lost it, last time, stays on the failed row
        assert row.lease_instance_id == INSTANCE


@pytest.mark.parametrize("status", ["UPLOADED", "READY", "FAILED"])
def test_recover_leaves_other_statuses_alone(status: str) -> None:
    video = video_create(status=status)
    Video.objects.filter(pk=video.pk).update(
        lease_expires_at=timezone.now() - timedelta(hours=1), attempts=1
    )

    assert services.videos_recover_expired(max_attempts=3) == []
    assert _row(video).status == status


def test_recover_takes_a_processing_video_without_a_lease() -> None:
    video = video_create(status=VideoStatus.PROCESSING)

    (recovery,) = services.videos_recover_expired(max_attempts=3)

    assert (recovery.video_id, recovery.status, recovery.attempts) == (video.pk, "UPLOADED", 0)


def test_recover_respects_the_limit_longest_expired_first() -> None:
    newest = video_leased(expires_in=-10)
    oldest = video_leased(expires_in=-300)
    middle = video_leased(expires_in=-60)

    first = services.videos_recover_expired(max_attempts=3, limit=2)
    second = services.videos_recover_expired(max_attempts=3, limit=2)

    assert [r.video_id for r in first] == [oldest.pk, middle.pk]
    assert [r.video_id for r in second] == [newest.pk]
    assert services.videos_recover_expired(max_attempts=3) == []


def test_a_video_whose_workers_keep_dying_ends_failed() -> None:
    video = video_create()
    for attempt in (1, 2, 3):
        lease = _lease(video.pk)
        assert lease.attempts == attempt
        Video.objects.filter(pk=video.pk).update(lease_expires_at=timezone.now() - timedelta(1))
        (recovery,) = services.videos_recover_expired(max_attempts=3)
        assert recovery.status == ("FAILED" if attempt == 3 else "UPLOADED")

    row = _row(video)
    assert (row.status, row.last_error) == ("FAILED", "lost its worker 3 times")
    assert _claim(video.pk) is ClaimRefusal.FAILED
    assert VideoRecovery.objects.filter(video=video).count() == 3


# --- upload -------------------------------------------------------------------------------


def test_upload_makes_an_uploaded_video() -> None:
    video = services.video_upload(title="Lecture 9")

    row = _row(video)
    assert (row.title, row.status, row.attempts, row.lease_token) == (
        "Lecture 9",
        "UPLOADED",
        0,
        "",
    )


def test_a_lost_lease_at_the_most_attempts_is_left_for_recovery_to_fail(settings: Any) -> None:
    from tests.factories import video_leased
    from video.services import ClaimRefusal, video_claim, videos_recover_expired

    settings.VIDEO_MAX_ATTEMPTS = "2"
    taken_over = video_leased(expires_in=-5, attempts=1)
    exhausted = video_leased(expires_in=-5, attempts=2)

    first = video_claim(video_id=taken_over.pk, instance_id="i-0new", worker_id="w-new")
    second = video_claim(video_id=exhausted.pk, instance_id="i-0new", worker_id="w-new")
    [recovery] = videos_recover_expired(max_attempts=2)

    assert (getattr(first, "attempts", None), second) == (2, ClaimRefusal.TAKEN)
    assert (recovery.video_id, recovery.status) == (exhausted.pk, "FAILED")
