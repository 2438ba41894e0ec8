"""Beat with the broker down: it runs the slot's tick itself, within the slot."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from functools import cached_property
from typing import Any

import pytest

from academy.celery import app
from scaling.models import MetricPublication, SlotClaim
from scaling.publishing.beat import ResilientDatabaseScheduler, SlotAlignedEntry
from scaling.publishing.schedule import SCHEDULE_NAME, schedule_ensure
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

REFUSING = "redis://127.0.0.1:1/0"  # nothing listens on port 1


@pytest.fixture
def slot_time_left(settings: Any) -> None:
    """60-second slots, with at least 10 s of this one left for the tick."""
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "60"
    into = time.time() % 60
    if into > 50:
        time.sleep(60 - into + 0.6)


@pytest.fixture
def hanging_broker() -> Iterator[str]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"redis://127.0.0.1:{listener.getsockname()[1]}/0"


class _Scheduler(ResilientDatabaseScheduler):
    """Beat pointed at a broker of the test's own (never the configured one)."""

    broker_url = ""

    @cached_property
    def connection(self) -> Any:
        return self.app.connection_for_write(self.broker_url)


def _scheduler(broker_url: str) -> ResilientDatabaseScheduler:
    scheduler = _Scheduler(app=app, lazy=True)
    scheduler.broker_url = broker_url
    scheduler._finalize.cancel()  # no sync at interpreter exit
    scheduler.should_sync = lambda: False  # no run-time writes
    return scheduler


def _send(scheduler: ResilientDatabaseScheduler) -> float:
    from django_celery_beat.models import PeriodicTask

    entry = SlotAlignedEntry(PeriodicTask.objects.get(name=SCHEDULE_NAME), app=app)
    started = time.monotonic()
    assert scheduler.apply_async(entry, producer=scheduler.producer, advance=False) is None
    return time.monotonic() - started


def test_broker_refusing_beat_runs_the_tick_itself_and_two_beats_publish_once(
    aws: dict[str, str],
    settings: Any,
    slot_time_left: None,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.SCALING_STATE_URL = REFUSING  # the claims' Redis is the broker's: down as well
    schedule_ensure()
    videos_create(UPLOADED=2)
    beat_a, beat_b = _scheduler(REFUSING), _scheduler(REFUSING)

    elapsed = _send(beat_a)
    _send(beat_b)

    assert caplog.text.count("Beat could not send the tick (OperationalError: ") == 2
    row = MetricPublication.objects.get()
    assert (row.status, row.value, row.source) == ("published", 2, "db")
    assert SlotClaim.objects.get().redis_answered is False
    assert caplog.text.count("BacklogCount metric published") == 1
    assert caplog.text.count("BacklogCount slot already claimed") == 1
    assert elapsed < 10, f"beat was held {elapsed:.1f} s"


def test_broker_that_never_answers_holds_beat_for_the_send_timeout_only(
    aws: dict[str, str],
    settings: Any,
    slot_time_left: None,
    hanging_broker: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    schedule_ensure()
    videos_create(UPLOADED=1)
    beat = _scheduler(hanging_broker)

    elapsed = _send(beat)

    assert (
        "Beat could not send the tick (DeadlineExceeded: the broker did not answer within 2 s)"
        in (caplog.text)
    )
    assert MetricPublication.objects.get().status == "published"
    # 2 s for the send, then a tick that reads the database (kombu alone would wait ~20 s).
    assert elapsed < 8, f"beat was held {elapsed:.1f} s"
    assert "connection" not in beat.__dict__, "the broken connection should be dropped"


def test_broker_back_beat_also_runs_the_tick_while_workers_may_reconnect(
    aws: dict[str, str],
    settings: Any,
    slot_time_left: None,
    redis_databases: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import redis

    schedule_ensure()
    videos_create(UPLOADED=1)
    beat = _scheduler(REFUSING)
    _send(beat)  # the broker is down: beat publishes the slot itself
    beat.broker_url = redis_databases[1]  # back

    sent = _send_expecting_a_message(beat)
    beat._broker_failed_at = time.monotonic() - 1000  # long ago: workers are back
    _send_expecting_a_message(beat)

    queued = redis.Redis.from_url(redis_databases[1]).llen("celery")
    assert (sent, queued) == (True, 2)
    assert caplog.text.count("Beat runs the tick as well: the broker is back") == 1
    assert caplog.text.count("BacklogCount slot already claimed") == 1
    assert MetricPublication.objects.get().status == "published"
    assert beat._broker_failed_at is None


def _send_expecting_a_message(scheduler: ResilientDatabaseScheduler) -> bool:
    from django_celery_beat.models import PeriodicTask

    entry = SlotAlignedEntry(PeriodicTask.objects.get(name=SCHEDULE_NAME), app=app)
    return scheduler.apply_async(entry, producer=scheduler.producer, advance=False) is not None


@pytest.mark.django_db(transaction=True)  # beat's sync closes stale connections
def test_broker_and_database_down_nothing_published_and_beat_writes_the_failure_later(
    aws: dict[str, str],
    settings: Any,
    slot_time_left: None,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from django.db import OperationalError

    from scaling.publishing import claim
    from scaling.state import state_store_get

    settings.SCALING_STATE_URL = REFUSING
    schedule_ensure()
    videos_create(UPLOADED=1)
    row_insert = claim.claim_row_insert

    def refuse(**_: Any) -> bool:
        raise OperationalError("connection refused")

    monkeypatch.setattr(claim, "claim_row_insert", refuse)
    beat = _scheduler(REFUSING)

    _send(beat)

    assert "no slot claim store answered; redis: Redis: Error 111" in caplog.text
    assert MetricPublication.objects.count() == 0
    assert state_store_get().spool_size() == 1  # beat's own local file
    monkeypatch.setattr(claim, "claim_row_insert", row_insert)  # the database is back

    beat.sync()

    row = MetricPublication.objects.get()
    assert (row.status, row.value, row.spooled) == ("failed", None, True)
    assert row.error.startswith("no slot claim store answered")
    assert state_store_get().spool_size() == 0
    assert "Beat wrote 1 audit records from its local spool" in caplog.text
