"""What runs beside a job: the LeaseKeeper thread (renews the lease, keeps the
message in flight, if there is one) and the small types and message helpers the
loop shares with it. Django-free."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol, TypeVar

from .client import (
    Lease,
    LeaseLost,
    TransientApiError,
    WorkerApiClient,
    WorkerApiError,
)
from .queue import JobMessage, QueueError

log = logging.getLogger("video.worker")

Job = Callable[[int, threading.Event], None]
T = TypeVar("T")


class JobQueue(Protocol):
    def receive(
        self, *, visibility_seconds: int, wait_seconds: int | None = None
    ) -> JobMessage | None: ...

    def delete(self, message: JobMessage) -> bool: ...

    def visibility_change(self, message: JobMessage, seconds: int) -> bool: ...


class WorkerFatal(Exception):
    """The worker cannot go on (a refused key, a missing queue): exit non-zero."""


class _PollInterrupted(BaseException):
    """Raised by the signal handler to cut a long poll short (nothing is held then)."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 1.0
    cap_seconds: float = 30.0


@dataclass
class WorkerSummary:
    videos: int = 0  # claimed
    claimed_next: int = 0  # of which through claim-next (no message: it was lost)
    ready: int = 0
    failed: int = 0
    released: int = 0
    lost: int = 0
    refused: int = 0
    bad_messages: int = 0
    exit_reason: str = ""  # "shutdown", "drain" or "max-videos"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return (
            f"Worker stopped ({self.exit_reason}): {self.videos} claimed "
            f"({self.claimed_next} without a message), {self.ready} ready, "
            f"{self.failed} failed, {self.released} released, {self.lost} lost, "
            f"{self.refused} refused, {self.bad_messages} bad messages."
        )


class LeaseKeeper(threading.Thread):
    """Renews one lease every ``renew_seconds`` and keeps its job message in flight.

    ``message`` is None for a video claimed through claim-next: nothing to hold.

    Sets ``lost_reason`` and then ``stop`` when the lease is lost, in that order,
    so a job that returns because of ``stop`` always finds the reason set.
    """

    def __init__(
        self,
        *,
        api: WorkerApiClient,
        queue: JobQueue,
        message: JobMessage | None,
        lease: Lease,
        stop: threading.Event,
        claimed_at: float,
        retry: RetryPolicy,
    ) -> None:
        super().__init__(name=f"lease-keeper-{lease.video_id}", daemon=True)
        self.api, self.queue, self.message, self.lease = api, queue, message, lease
        self.stop_event = stop
        self.retry = retry
        self.lost_reason: str | None = None
        self.drain = False
        # Serialises renewals with the finish: no renew goes out once the lease is closed.
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._safe_until = claimed_at + lease.lease_seconds

    def locked_call(self, call: Callable[[], T]) -> T:
        with self._lock:
            return call()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()

    def run(self) -> None:
        lease = self.lease
        interval, delay = lease.renew_seconds, self.retry.base_seconds
        while not self._closed.wait(interval):
            with self._lock:
                if self._closed.is_set():
                    return
                sent = time.monotonic()
                try:
                    renewal = self.api.renew(lease.video_id, token=lease.token)
                except LeaseLost as exc:
                    self._lose(f"the API says the lease is lost: {exc}")
                    return
                except WorkerApiError as exc:
                    alive = isinstance(exc, TransientApiError) and exc.api_alive
                    if alive:  # the database is down: no one can recover the lease meanwhile
                        self._safe_until = sent + lease.lease_seconds
                    if time.monotonic() >= self._safe_until:
                        self._lose(f"no answer from the API for a full lease period ({exc})")
                        return
                    interval, delay = min(delay, lease.renew_seconds), delay * 2
                    log.warning(
                        "renew of video %d failed (%s); again in %.1f s",
                        lease.video_id,
                        exc,
                        interval,
                    )
                    self._visibility_extend()
                    continue
                self._safe_until = sent + lease.lease_seconds
                interval, delay = lease.renew_seconds, self.retry.base_seconds
                extended = self._visibility_extend()
                self.drain = self.drain or renewal.drain
                log.info(
                    "renewed lease on video %d until %s; message in flight %s%s",
                    lease.video_id,
                    renewal.lease_expires_at.isoformat(),
                    f"{lease.visibility_seconds} s more"
                    if extended
                    else ("NOT extended" if self.message else "none (claim-next)"),
                    "; drain requested: no video after this one" if renewal.drain else "",
                )

    def _lose(self, reason: str) -> None:
        self.lost_reason = reason
        self.stop_event.set()
        log.warning("lease on video %d lost (%s): stopping the job", self.lease.video_id, reason)

    def _visibility_extend(self) -> bool:
        if self.message is None:
            return False
        try:
            return self.queue.visibility_change(self.message, self.lease.visibility_seconds)
        except QueueError as exc:
            log.warning("message for video %d not kept in flight: %s", self.lease.video_id, exc)
            return False


def message_delete(queue: JobQueue, message: JobMessage | None, what: str) -> None:
    """Delete a job message (None: a claim-next video has none); a failure is only logged."""
    if message is None:
        return
    try:
        gone = not queue.delete(message)
    except QueueError as exc:
        log.warning("message for %s not deleted (%s): it comes back and is refused", what, exc)
        return
    log.info("deleted message for %s%s", what, " (already gone)" if gone else "")


def message_visibility(queue: JobQueue, message: JobMessage | None, seconds: int) -> None:
    """Make a job message visible again in ``seconds`` (None: nothing to do)."""
    if message is None:
        return
    try:
        queue.visibility_change(message, seconds)
    except QueueError as exc:
        log.warning("message %s visibility not changed: %s", message.message_id, exc)
        return
    when = "at once" if seconds == 0 else f"in {seconds} s"
    log.info("message %s visible again %s", message.message_id, when)


def retry_call(
    retry: RetryPolicy,
    what: str,
    call: Callable[[], T],
    *,
    attempts: int | None = None,
    shutdown: threading.Event | None = None,
) -> T:
    """``call()``, again after a ``TransientApiError``, at most ``attempts`` times in all,
    with exponential backoff and jitter. With ``shutdown``, a shutdown ends the waiting
    and the retries; without, the pauses are slept through (a finish, a release).
    """
    attempts = attempts or retry.attempts
    delay = retry.base_seconds
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except TransientApiError as exc:
            if attempt >= attempts or (shutdown is not None and shutdown.is_set()):
                raise
            pause = delay * random.uniform(1.0, 1.5)  # jitter: workers spread out after an outage
            log.warning(
                "%s failed (%s); attempt %d of %d, again in %.1f s",
                what,
                exc,
                attempt,
                attempts,
                pause,
            )
            if shutdown is not None:
                shutdown.wait(pause)
            else:
                time.sleep(pause)
            delay = min(delay * 2, retry.cap_seconds)
    raise AssertionError("unreachable")
