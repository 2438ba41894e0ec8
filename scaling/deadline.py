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
from collections.abc import Iterator
from types import FrameType


class DeadlineExceeded(Exception):
    pass


@contextlib.contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expire(signum: int, frame: FrameType | None) -> None:
        raise DeadlineExceeded(f"{what} did not answer within {seconds:g} s")

    previous_handler = signal.signal(signal.SIGALRM, _expire)
    previous_timer = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_timer[0] > 0:
            signal.setitimer(signal.ITIMER_REAL, *previous_timer)
