"""A wall-clock deadline for calls that can hang (a database that accepts and never answers).

libpq has no read timeout, so a hung PostgreSQL would hold the tick past its
slot. In the main thread (a Celery prefork child, a management command, beat)
a SIGALRM interrupts the wait; psycopg's wait loop checks for signals, so the
exception is raised inside the blocked call. Elsewhere the deadline is a no-op
and the database's own connect and statement timeouts are what bound the call.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType


class DeadlineExceeded(Exception):
    pass


def deadline_cause(exc: BaseException) -> BaseException:
    """The DeadlineExceeded inside a library's wrapper exception, or the exception itself."""
    kwargs = getattr(exc, "kwargs", None)
    inner = kwargs.get("error") if isinstance(kwargs, dict) else None
    if isinstance(inner, DeadlineExceeded):
        return inner
    return exc


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded(f"{what} did not answer within {seconds:g} s")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, _expire)
    # It keeps firing every 0.1 s after the deadline: a library that catches the
    # first exception and retries (botocore wraps it in HTTPClientError) is
    # interrupted again at once instead of running on unbounded.
    previous_left, _ = signal.setitimer(signal.ITIMER_REAL, seconds, 0.1)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_left > 0:
            # An outer timer keeps its own end: take off what this block used.
            left = previous_left - (time.monotonic() - started)
            signal.setitimer(signal.ITIMER_REAL, max(left, 0.001))
