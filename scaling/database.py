"""The database connection after a failed or hung query."""

from __future__ import annotations

import contextlib

from django.db import connection


def connection_drop() -> None:
    # Inside an atomic block (a test's transaction) closing would break the
    # caller's transaction; the tick itself never runs in one.
    if connection.in_atomic_block:
        return
    with contextlib.suppress(Exception):
        connection.close()
