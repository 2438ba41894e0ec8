"""The worker loop: poll the job queue, claim, run the job under a renewed lease, finish.

Django-free like ``video.worker.client``, so the academy's transcoder can run
this loop as it is. ``manage.py video_worker`` only wires settings into it.

One video at a time::

    receive a message (long poll) -> claim -> run the job (main thread)
                                              while a LeaseKeeper thread renews
                                              the lease and keeps the message
                                              in flight
    -> finish READY (job returned) or FAILED (job raised) -> delete the message

- A refused claim (taken, done, failed, unknown video) deletes the message: it
  is a duplicate, or the video needs nothing more.
- A lost lease stops the job (``stop`` is set) and finishes nothing: someone
  else may hold the video. A 503 from the API (its database is down) does not
  lose the lease, because nothing can recover a lease while the database is
  down; only a full lease period without any answer from the API does.
- ``shutdown_request`` (SIGTERM, SIGINT) stops the job, releases the video
  (back to UPLOADED at once) and makes its message visible again.
- ``drain`` in a renew answer: finish this video, take no other, exit.
- An empty receive asks the API for the longest-waiting video (claim-next):
  one whose message was lost (a purge, a dead-letter queue, a failed send) is
  still done, with no message to hold or delete. A receive long-polls only
  once claim-next has found nothing; at start and after any work it does not
  wait, so a new worker or one just done looks at the database at once.
- Transient errors are retried a bounded number of times with exponential
  backoff and jitter; the loop never spins.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TypeVar

from .client import (
    ClaimRefused,
    Lease,
    LeaseLost,
    StatusAnswer,
    TransientApiError,
    WorkerApiClient,
    WorkerApiError,
    error_one_line,
    visibility_for,
)
from .keeper import (
    Job,
    JobQueue,
    LeaseKeeper,
    RetryPolicy,
    WorkerFatal,
    WorkerSummary,
    _PollInterrupted,
    message_delete,
    message_visibility,
    retry_call,
)
from .queue import JobMessage, QueueError, video_id_parse

log = logging.getLogger("video.worker")

T = TypeVar("T")


class VideoWorker:
    def __init__(
        self,
        *,
        api: WorkerApiClient,
        queue: JobQueue,
        job: Job,
        instance_id: str,
        worker_id: str,
        lease_seconds: float = 120.0,
        max_videos: int | None = None,
        retry: RetryPolicy | None = None,
        idle_cap_seconds: float = 60.0,
    ) -> None:
        self.api, self.queue, self.job = api, queue, job
        self.instance_id, self.worker_id = instance_id, worker_id
        self.lease_seconds = lease_seconds
        self.max_videos = max_videos
        self.retry = retry or RetryPolicy()
        self.idle_cap_seconds = idle_cap_seconds
        self.summary = WorkerSummary()
        self._shutdown = threading.Event()
        self._shutdown_lock = threading.Lock()  # never taken in a signal handler
        self._stop: threading.Event | None = None  # the running job's
        self._polling = False
        self._drain = False
        self._poll_short = True  # no long poll: at start, and after any work
        self._claim_next_off = False  # the API has no claim-next (an older one)

    def shutdown_request(self, reason: str = "shutdown requested") -> None:
        """Stop the running job, release its video, exit (the signal watcher calls it)."""
        with self._shutdown_lock:
            if self._shutdown.is_set():
                return
            self._shutdown.set()
        stop = self._stop
        if stop is not None:
            stop.set()
        log.info("%s: stopping", reason)

    def signals_install(self) -> None:
        """SIGTERM and SIGINT call ``shutdown_request``, from a thread of its own.

        A Python signal handler runs in the main thread between two bytecodes,
        possibly while that thread holds the lock of the very Event it would set:
        so the handler only writes the signal number to a pipe, and a watcher
        thread does the rest. During a long poll nothing is held, so the handler
        also cuts the poll short instead of waiting up to 20 s for it.
        """
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)

        def handler(signum: int, frame: FrameType | None) -> None:
            with contextlib.suppress(OSError):
                os.write(write_fd, bytes([signum]))
            if self._polling:
                raise _PollInterrupted(signum)

        def watch() -> None:
            while data := os.read(read_fd, 1):
                self.shutdown_request(f"{signal.Signals(data[0]).name} received")

        threading.Thread(target=watch, name="signal-watcher", daemon=True).start()
        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def run(self) -> WorkerSummary:
        log.info(
            "worker %s on instance %s polls %s",
            self.worker_id,
            self.instance_id,
            getattr(self.queue, "queue_url", "the queue"),
        )
        idle_delay = self.retry.base_seconds
        try:
            while not self._exit_reason():
                try:
                    message = self._receive()
                except QueueError as exc:
                    if not exc.transient:
                        raise WorkerFatal(str(exc)) from exc
                    log.warning("%s; polling again in %.1f s", exc, idle_delay)
                    self._shutdown.wait(idle_delay)
                    idle_delay = min(idle_delay * 2, self.idle_cap_seconds)
                    continue
                idle_delay = self.retry.base_seconds
                if message is not None:
                    self._poll_short = True
                    self._message_handle(message)
                elif not self._exit_reason():
                    self._claim_next()
        except _PollInterrupted as interrupted:
            # Said here too: the watcher thread may not have had its turn before the exit.
            self.shutdown_request(f"{signal.Signals(interrupted.args[0]).name} received")
        self.summary.exit_reason = self._exit_reason() or "shutdown"
        log.info("worker %s exits: %s", self.worker_id, self.summary.text())
        return self.summary

    def _exit_reason(self) -> str:
        if self._shutdown.is_set():
            return "shutdown"
        if self._drain:
            return "drain"
        if self.max_videos is not None and self.summary.videos >= self.max_videos:
            return "max-videos"
        return ""

    def _receive(self) -> JobMessage | None:
        self._polling = True
        try:
            # A message received just as a signal cuts the poll short stays in flight
            # for its visibility timeout, then comes back: delayed, never lost.
            return self.queue.receive(
                visibility_seconds=visibility_for(self.lease_seconds),
                wait_seconds=0 if self._poll_short else None,
            )
        finally:
            self._polling = False

    def _message_handle(self, message: JobMessage) -> None:
        video_id = video_id_parse(message.body)
        log.info("received message %s for video %s", message.message_id, video_id or "?")
        if video_id is None:
            self.summary.bad_messages += 1
            log.warning(
                'message %s is not {"video_id": N}: %r', message.message_id, message.body[:200]
            )
            message_delete(self.queue, message, "a bad message")
            return
        claimed_at = time.monotonic()
        try:
            answer = self._retry(
                f"claim of video {video_id}",
                lambda: self.api.claim(
                    video_id, instance_id=self.instance_id, worker_id=self.worker_id
                ),
            )
        except TransientApiError as exc:
            log.warning("video %d not claimed (%s): its message comes back later", video_id, exc)
            message_visibility(
                self.queue, message, 0 if self._shutdown.is_set() else int(self.retry.cap_seconds)
            )
            self._shutdown.wait(self.retry.cap_seconds)
            return
        except WorkerApiError as exc:
            message_visibility(self.queue, message, 0)
            raise WorkerFatal(
                f"the worker API refused the claim of video {video_id}: {exc}"
            ) from exc
        if isinstance(answer, ClaimRefused):
            self.summary.refused += 1
            log.info("video %d not claimed (%s: %s)", video_id, answer.reason, answer.error)
            message_delete(self.queue, message, f"video {video_id}")
            return
        self._video_process(message, answer, claimed_at)

    def _claim_next(self) -> None:
        """No message: the oldest waiting video, if any, as if its message had come."""
        self._poll_short = False
        if self._claim_next_off:
            return
        claimed_at = time.monotonic()
        try:
            lease = self.api.claim_next(instance_id=self.instance_id, worker_id=self.worker_id)
        except TransientApiError as exc:
            log.warning("claim-next failed (%s); polling again", exc)
            self._shutdown.wait(self.retry.base_seconds)
            return
        except WorkerApiError as exc:
            if exc.status != 404:
                raise WorkerFatal(f"the worker API refused claim-next: {exc}") from exc
            self._claim_next_off = True
            log.warning("the worker API has no claim-next (%s): messages only", exc)
            return
        if lease is not None:
            self._poll_short = True
            self.summary.claimed_next += 1
            log.info("no message waiting; claim-next gave video %d", lease.video_id)
            self._video_process(None, lease, claimed_at)

    def _video_process(self, message: JobMessage | None, lease: Lease, claimed_at: float) -> None:
        video_id = lease.video_id
        self.summary.videos += 1
        log.info(
            "claimed video %d (attempt %d, lease until %s, renew every %g s%s)",
            video_id,
            lease.attempts,
            lease.lease_expires_at.isoformat(),
            lease.renew_seconds,
            ", instance protected" if lease.protected else "",
        )
        stop = threading.Event()
        keeper = LeaseKeeper(
            api=self.api,
            queue=self.queue,
            message=message,
            lease=lease,
            stop=stop,
            claimed_at=claimed_at,
            retry=self.retry,
        )
        self._stop = stop
        if self._shutdown.is_set():
            stop.set()
        keeper.start()
        completed, error = False, ""
        try:
            if not stop.is_set():
                log.info("job started on video %d", video_id)
                self.job(video_id, stop)
                completed = True
        except Exception as exc:
            error = error_one_line(exc)
            log.info("job on video %d raised %s", video_id, error)
        finally:
            self._stop = None
        if keeper.lost_reason is not None:
            keeper.close()
            self.summary.lost += 1
            log.warning("video %d: job stopped, not finished (lease lost)", video_id)
            message_delete(self.queue, message, f"video {video_id}")
        elif completed:
            self._finish(keeper, message, "READY", None)
        elif stop.is_set():
            keeper.close()
            self._release(message, lease)
        else:
            self._finish(keeper, message, "FAILED", error)
        self._drain = self._drain or keeper.drain

    def _finish(
        self, keeper: LeaseKeeper, message: JobMessage | None, status: str, error: str | None
    ) -> None:
        lease = keeper.lease
        try:
            # The keeper goes on renewing between attempts: a slow finish keeps its lease.
            answer: StatusAnswer = self._retry(
                f"finish of video {lease.video_id}",
                lambda: keeper.locked_call(
                    lambda: self.api.finish(
                        lease.video_id, token=lease.token, status=status, error=error
                    )
                ),
                attempts=self.retry.attempts + 3,
                interruptible=False,
            )
        except LeaseLost as exc:
            keeper.close()
            self.summary.lost += 1
            log.warning("video %d not finished %s: lease lost (%s)", lease.video_id, status, exc)
            message_delete(self.queue, message, f"video {lease.video_id}")
            return
        except WorkerApiError as exc:
            keeper.close()
            log.error(
                "video %d not finished %s (%s): its lease will expire and it will be done again",
                lease.video_id,
                status,
                exc,
            )
            return
        keeper.close()
        if answer.status == "READY":
            self.summary.ready += 1
        else:
            self.summary.failed += 1
        log.info(
            "finished video %d: %s%s", lease.video_id, answer.status, f" ({error})" if error else ""
        )
        message_delete(self.queue, message, f"video {lease.video_id}")

    def _release(self, message: JobMessage | None, lease: Lease) -> None:
        try:
            self._retry(
                f"release of video {lease.video_id}",
                lambda: self.api.release(lease.video_id, token=lease.token),
                attempts=3,
                interruptible=False,
            )
        except LeaseLost as exc:
            log.warning("video %d not released: lease already lost (%s)", lease.video_id, exc)
        except WorkerApiError as exc:
            log.error(
                "video %d not released (%s): it is recovered when its lease expires",
                lease.video_id,
                exc,
            )
        else:
            self.summary.released += 1
            log.info("released video %d: UPLOADED again", lease.video_id)
        message_visibility(self.queue, message, 0)

    def _retry(
        self,
        what: str,
        call: Callable[[], T],
        *,
        attempts: int | None = None,
        interruptible: bool = True,
    ) -> T:
        shutdown = self._shutdown if interruptible else None
        return retry_call(self.retry, what, call, attempts=attempts, shutdown=shutdown)
