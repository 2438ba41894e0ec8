from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from scaling.audit.charts import HEIGHT, ChartSlot, _nice_ceiling, publication_chart_svg

SVG = "{http://www.w3.org/2000/svg}"
END = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
START = END - timedelta(hours=24)


def _slot(minutes_ago: int, value: int | None, source: str = "db", status: str = "published"):
    return ChartSlot(
        slot_start=END - timedelta(minutes=minutes_ago),
        interval_seconds=60,
        value=value,
        source=source,
        status=status,
    )


def _render(slots: list[ChartSlot]) -> ET.Element:
    markup = publication_chart_svg(slots=slots, start=START, end=END)
    return ET.fromstring(markup)  # noqa: S314 (markup we just generated)


def _points(root: ET.Element, kind: str = "") -> list[ET.Element]:
    wanted = {"point", kind} if kind else {"point"}
    return [el for el in root.iter() if wanted <= set(el.get("class", "").split())]


def _polylines(root: ET.Element, series: str = "backlog") -> list[list[tuple[float, float]]]:
    return [
        [tuple(map(float, pair.split(","))) for pair in el.get("points", "").split()]  # type: ignore[misc]
        for el in root.iter(f"{SVG}polyline")
        if el.get("data-series") == series
    ]


def test_one_mark_per_slot_and_one_line_when_all_published() -> None:
    root = _render([_slot(m, m % 7) for m in range(60, 0, -1)])

    assert len(_points(root)) == 60
    assert len(_points(root, "db")) == 60
    assert [len(line) for line in _polylines(root)] == [60]
    assert root.get("data-slots") == "60"


def test_sqs_and_failed_slots_are_marked_and_break_the_line() -> None:
    slots = [_slot(m, 5) for m in range(10, 0, -1)]
    slots[3] = _slot(7, 9, source="sqs")
    slots[6] = _slot(4, None, source="", status="failed")

    root = _render(slots)

    assert len(_points(root)) == 10
    assert [el.tag for el in _points(root, "sqs")] == [f"{SVG}rect"]
    failed = _points(root, "failed")
    assert [el.tag for el in failed] == [f"{SVG}path"]
    assert failed[0].findtext(f"{SVG}title") == "11:56:00 failed"
    # The SQS value stays on the line; the failed slot splits it in two.
    assert [len(line) for line in _polylines(root)] == [6, 3]
    assert (root.get("data-failed"), root.get("data-sqs")) == ("1", "1")


def test_a_failed_slot_with_nothing_measured_sits_on_the_zero_line() -> None:
    root = _render([_slot(2, 10), _slot(1, None, source="", status="failed")])

    zero_y = HEIGHT - 28
    cross = _points(root, "failed")[0].get("d", "")
    assert cross.startswith("M")
    first_y = float(cross[1:].split("L")[0].split()[1])
    assert first_y == pytest.approx(zero_y - 4)


def test_missing_slots_leave_a_gap_in_the_line() -> None:
    slots = [_slot(m, 3) for m in (30, 29, 28, 10, 9)]

    assert [len(line) for line in _polylines(_render(slots))] == [3, 2]


def test_values_scale_to_a_nice_top_and_stay_inside_the_plot() -> None:
    root = _render([_slot(120, 0), _slot(60, 37), _slot(1, 12)])

    labels = [
        el.text
        for el in root.iter(f"{SVG}text")
        if el.get("text-anchor") == "end" and not el.get("class")
    ]
    assert labels[:3] == ["0", "25", "50"]
    ys = [y for line in _polylines(root) for _, y in line]
    xs = [x for line in _polylines(root) for x, _ in line]
    assert all(60 <= y <= HEIGHT - 28 for y in ys)
    assert all(48 <= x <= 912 for x in xs)
    assert xs == sorted(xs)


def test_slots_outside_the_window_are_left_out() -> None:
    root = _render([_slot(60 * 25, 4), _slot(5, 4)])

    assert len(_points(root)) == 1


def test_empty_chart_says_so() -> None:
    root = _render([])

    assert _points(root) == []
    assert [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "empty"] == [
        "No publications in this period."
    ]


def test_a_day_of_ten_second_slots_renders_in_reasonable_size() -> None:
    # Five series; the instances change every few minutes, as a fleet does.
    slots = [
        ChartSlot(
            END - timedelta(seconds=10 * i), 10, i % 50, "db", "published", *[i // 30 % 7] * 4
        )
        for i in range(1, 8641)
    ]

    markup = publication_chart_svg(slots=slots, start=START, end=END)

    assert len(_points(ET.fromstring(markup))) == 8640  # noqa: S314 (our own markup)
    assert len(markup) < 1_000_000


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (37, 50), (501, 1000)]
)
def test_nice_ceiling(value: int, expected: int) -> None:
    assert _nice_ceiling(value) == expected
