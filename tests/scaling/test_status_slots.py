"""``scaling_status``'s last slots: a table of the admin chart's series, and --slots N."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from scaling.audit.part import Part
from scaling.audit.report import slots_lines
from scaling.audit.series import SlotRow, slot_rows_read, slots_count_parse
from scaling.audit.status import ScalingStatus
from scaling.models import MetricPublication
from tests.badinput.manage_run import manage_run

NOW = datetime(2026, 11, 2, 12, 0, 25, tzinfo=UTC)  # in the slot of 12:00:00 (60 s)


def _row(slot: datetime, **fields: Any) -> None:
    defaults: dict[str, Any] = {
        "interval_seconds": 60,
        "value": 4,
        "source": "db",
        "status": "published",
        "duration_ms": 2.0,
        "asg_name": "academy-video-worker-asg",
        "in_service_instances": 2,
        "desired_capacity": 3,
        "busy_instances": 1,
        "protected_instances": 1,
    }
    MetricPublication.objects.create(slot_start=slot, **{**defaults, **fields})


def _at(minutes_before: int) -> datetime:
    return datetime(2026, 11, 2, 12, 0, tzinfo=UTC) - timedelta(minutes=minutes_before)


def _lines(rows: list[SlotRow] | None, error: str = "") -> list[str]:
    down: Part[Any] = Part(error="not read")
    status = ScalingStatus(
        "g", "r", down, down, down, down, down, down, down,
        slots=Part(data=rows) if rows is not None else Part(error=error),
    )  # fmt: skip
    lines: list[str] = []
    slots_lines(
        status,
        lambda line: lines.append(line),
        lambda label, why: lines.append(f"{label}: unavailable ({why})."),
    )
    return lines


@pytest.mark.django_db
def test_one_row_a_slot_oldest_first_with_gaps_as_gaps() -> None:
    _row(_at(5), value=12, in_service_instances=3, desired_capacity=4)
    _row(_at(4), value=9, source="sqs", in_service_instances=None, desired_capacity=None,
         busy_instances=None, protected_instances=None)  # fmt: skip
    # _at(3): no record at all
    _row(_at(2), value=None, source="", status="failed", in_service_instances=None,
         desired_capacity=None, busy_instances=None, protected_instances=None)  # fmt: skip
    _row(_at(1), value=7, status="failed")  # measured, CloudWatch refused it
    _row(_at(9))  # before the window

    rows = slot_rows_read(count=6, interval=60, now=NOW)

    assert [r.slot_start for r in rows] == [_at(m).isoformat() for m in (5, 4, 3, 2, 1, 0)]
    assert [r.recorded for r in rows] == [True, True, False, True, True, False]
    assert (rows[0].value, rows[0].in_service, rows[0].desired, rows[0].busy) == (12, 3, 4, 1)
    assert (rows[1].source, rows[1].in_service, rows[1].desired) == ("sqs", None, None)
    assert rows[2] == SlotRow(_at(3).isoformat(), False, None, None, None, None, None, None, None)
    assert _lines(rows) == [
        "Last 6 slots (UTC, oldest first):",
        "  time                 backlog          in service  desired  busy  protected",
        "  2026-11-02 11:55:00  12 db            3           4        1     1",
        "  2026-11-02 11:56:00  9 sqs            -           -        -     -",
        "  2026-11-02 11:57:00  no record",
        "  2026-11-02 11:58:00  failed           -           -        -     -",
        "  2026-11-02 11:59:00  7 db failed      2           3        1     1",
        "  2026-11-02 12:00:00  not recorded yet",
    ]


@pytest.mark.django_db
def test_a_record_off_the_grid_fills_its_slot_the_newest_wins() -> None:
    # Recorded at a 10 s interval, read on a 60 s grid.
    _row(_at(1) + timedelta(seconds=10), value=1, interval_seconds=10)
    _row(_at(1) + timedelta(seconds=50), value=5, interval_seconds=10)

    [row] = slot_rows_read(count=2, interval=60, now=NOW)[:1]

    assert (row.slot_start, row.value) == ((_at(1) + timedelta(seconds=50)).isoformat(), 5)


def test_nothing_recorded_is_one_line_and_a_database_outage_another() -> None:
    empty = [SlotRow(_at(m).isoformat(), False, *[None] * 7) for m in (1, 0)]

    assert _lines(empty) == ["Last 2 slots: nothing recorded."]
    assert _lines(None, "OperationalError: connection refused") == [
        "Last slots: unavailable (OperationalError: connection refused)."
    ]


@pytest.mark.django_db
def test_json_lists_the_slots_and_text_has_the_table(aws: dict[str, str]) -> None:
    from django.utils import timezone

    now = timezone.now()
    slot = datetime.fromtimestamp(int(now.timestamp()) // 60 * 60, tz=UTC)
    _row(slot - timedelta(minutes=1), value=6, in_service_instances=2, desired_capacity=2)

    out = StringIO()
    call_command("scaling_status", "--json", "--slots", "3", stdout=out)
    data = json.loads(out.getvalue())
    text = StringIO()
    call_command("scaling_status", "--slots=3", stdout=text)

    part = data["slots"]
    assert (part["ok"], part["error"], len(part["data"])) == (True, "", 3)
    assert set(part["data"][0]) == {
        "slot_start",
        "recorded",
        "value",
        "source",
        "status",
        "in_service",
        "desired",
        "busy",
        "protected",
    }
    starts = [datetime.fromisoformat(r["slot_start"]) for r in part["data"]]
    assert starts == sorted(starts)
    recorded = [r for r in part["data"] if r["recorded"]]
    assert [(r["value"], r["in_service"], r["desired"]) for r in recorded] == [(6, 2, 2)]
    assert "Last 3 slots (UTC, oldest first):" in text.getvalue()
    # The publication rows gain the group's counts (additions only).
    assert data["publications"]["data"][0]["in_service_instances"] == 2
    assert data["publications"]["data"][0]["desired_capacity"] == 2


@pytest.mark.django_db
def test_the_default_is_twelve_slots(aws: dict[str, str]) -> None:
    out = StringIO()
    call_command("scaling_status", "--json", stdout=out)

    assert len(json.loads(out.getvalue())["slots"]["data"]) == 12


@pytest.mark.parametrize(("text", "count"), [("1", 1), ("12", 12), ("500", 500), (" 7 ", 7)])
def test_slots_count_accepted(text: str, count: int) -> None:
    assert slots_count_parse(text) == count


BAD_SLOTS = ["0", "501", "-1", "1.5", "x", "", "1e3"]


@pytest.mark.parametrize("bad", BAD_SLOTS)
def test_slots_count_refused_in_process(bad: str) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("scaling_status", f"--slots={bad}", stdout=StringIO(), stderr=StringIO())

    assert raised.value.returncode == 2
    assert str(raised.value) == (
        f"argument --slots: must be a whole number from 1 to 500, not {bad!r}."
    )


@pytest.mark.parametrize("bad", ["0", "many"])
def test_slots_count_refused_from_the_shell(bad: str, tmp_path: Path) -> None:
    done = manage_run(["scaling_status", "--slots", bad], {}, tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == (
        f"CommandError: argument --slots: must be a whole number from 1 to 500, not {bad!r}.\n"
    )
