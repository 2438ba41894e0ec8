"""Job callables for ``manage.py video_worker`` (named by the setting ``VIDEO_WORKER_JOB``).

A job is ``job(video_id: int, stop: threading.Event) -> None``, run in the
worker's main thread while another thread renews the lease:
- return: the video is done (the worker finishes it READY);
- raise: the video failed (finished FAILED with the error's first line),
  unless ``stop`` was set, in which case the worker lost its lease or was told
  to shut down and decides itself (no finish, or a release);
- watch ``stop`` and end soon after it is set, by raising ``JobInterrupted``.

No Django import here either: a job must run wherever the client runs.
"""

from __future__ import annotations

import threading

DEFAULT_HOLD_SECONDS = 5.0


class JobInterrupted(Exception):
    """The job gave up because ``stop`` was set; the video is not done."""


def hold_job(
    video_id: int, stop: threading.Event, *, seconds: float = DEFAULT_HOLD_SECONDS
) -> None:
    """A STAND-IN for the academy's transcoder: holds the video, transcodes nothing.

    It keeps the video PROCESSING for ``seconds`` (the command passes the
    setting ``VIDEO_WORKER_HOLD_SECONDS`` through ``functools.partial``), which
    is enough to exercise leases, renewals, scale-in protection and recovery
    end to end. Deploy the real transcoder by pointing ``VIDEO_WORKER_JOB`` at
    its callable.
    """
    if stop.wait(seconds):
        raise JobInterrupted(f"video {video_id}: stopped after less than {seconds:g} s")


def fail_job(video_id: int, stop: threading.Event) -> None:
    """Fails every video at once: for tests of the FAILED path."""
    raise RuntimeError(f"video {video_id}: fail_job fails every video")
