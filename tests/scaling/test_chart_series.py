"""The admin chart's five series, its window and its gaps (scaling.audit.charts)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from scaling.audit.charts import (
    CHART_WINDOWS,
    DEFAULT_WINDOW,
    SERIES,
    WIDTH,
    ChartSlot,
    chart_window_parse,
    publication_chart_svg,
)

SVG = "{http://www.w3.org/2000/svg}"
END = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SERIES_KEYS = ["backlog", "in-service", "desired", "busy", "protected"]


def _slot(
    seconds_ago: int,
    value: int | None = 5,
    *,
    fleet: tuple[int | None, int | None, int | None, int | None] = (3, 4, 2, 2),
    status: str = "published",
    interval: int = 10,
) -> ChartSlot:
    return ChartSlot(
        END - timedelta(seconds=seconds_ago),
        interval,
        value,
        "db" if value is not None else "",
        status,
        *fleet,
    )


def _render(slots: list[ChartSlot], span: timedelta = timedelta(hours=1)) -> ET.Element:
    markup = publication_chart_svg(slots=slots, start=END - span, end=END)
    return ET.fromstring(markup)  # noqa: S314 (markup we just generated)


def _lines(root: ET.Element, series: str) -> list[list[tuple[float, float]]]:
    return [
        [tuple(map(float, p.split(","))) for p in el.get("points", "").split()]  # type: ignore[misc]
        for el in root.iter(f"{SVG}polyline")
        if el.get("data-series") == series
    ]


def test_five_series_each_with_a_colour_and_a_legend_entry() -> None:
    root = _render([_slot(s) for s in range(600, 0, -10)])

    legend = {
        el.get("data-series"): el for el in root.iter(f"{SVG}g") if el.get("class") == "legend"
    }
    assert list(legend) == SERIES_KEYS
    labels = [el.findtext(f"{SVG}text") for el in legend.values()]
    assert labels == [
        "published backlog",
        "in service",
        "desired capacity",
        "busy (holding a lease)",
        "protected from scale-in",
    ]
    colours = [s.colour for s in SERIES]
    assert len(set(colours)) == 5
    for series in SERIES:
        [line] = _lines(root, series.key)
        assert line  # drawn
        [polyline] = [
            el for el in root.iter(f"{SVG}polyline") if el.get("data-series") == series.key
        ]
        assert polyline.get("stroke") == series.colour
        assert legend[series.key].find(f"{SVG}line").get("stroke") == series.colour  # type: ignore[union-attr]


def test_instances_share_the_right_axis_and_the_backlog_keeps_its_marks() -> None:
    slots = [_slot(s, 40, fleet=(4, 5, 2, 2)) for s in range(300, 0, -10)]
    slots[5] = _slot(250, 30, fleet=(4, 5, 2, 2), status="failed")  # measured, not published
    root = _render(slots)

    # Backlog on the left (top 50); instances on the right (top 5): in service 4 -> 4/5 high.
    right = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "right-axis"]
    assert right == ["0", "2", "5"]
    [in_service] = _lines(root, "in-service")
    [desired] = _lines(root, "desired")
    top, bottom = 60, 280 - 28
    assert in_service[0][1] == pytest.approx(bottom - 0.8 * (bottom - top), abs=0.1)
    assert desired[0][1] == pytest.approx(top, abs=0.1)
    # A flat run keeps only its ends.
    assert len(in_service) == 2
    # One mark a slot on the backlog; the failed slot breaks its line only.
    assert len([el for el in root.iter() if "point" in el.get("class", "").split()]) == 30
    assert [len(line) for line in _lines(root, "backlog")] == [5, 24]
    assert len(_lines(root, "busy")) == 1


def test_a_slot_where_the_group_was_not_read_is_a_gap_not_a_zero() -> None:
    slots = [_slot(s, 7, fleet=(2, 2, 1, 1)) for s in range(100, 0, -10)]
    slots[4] = _slot(60, 7, fleet=(None, None, None, None))
    root = _render(slots)

    bottom = 280 - 28
    for key in ("in-service", "desired", "busy", "protected"):
        lines = _lines(root, key)
        assert len(lines) == 2, key
        assert all(y < bottom for line in lines for _, y in line), key
        # The gap spans the slot with no reading: nothing is drawn between its neighbours.
        (left_end, _), (right_start, _) = lines[0][-1], lines[1][0]
        assert right_start - left_end > 2 * (WIDTH - 96) * 10 / 3600 - 0.2
    assert [len(line) for line in _lines(root, "backlog")] == [10]


def test_missing_slots_break_every_series() -> None:
    slots = [_slot(s) for s in (100, 90, 80, 30, 20)]

    root = _render(slots)

    for key in SERIES_KEYS:
        assert len(_lines(root, key)) == 2, key


def test_a_lone_reading_still_shows_as_a_dot() -> None:
    root = _render([_slot(50, fleet=(1, None, None, None))])

    [line] = _lines(root, "in-service")
    assert len(line) == 2
    assert line[0] == line[1]
    assert _lines(root, "desired") == []


@pytest.mark.parametrize("window", CHART_WINDOWS, ids=lambda w: w.key)
def test_the_axis_covers_exactly_the_window(window: object) -> None:
    span = window.span  # type: ignore[attr-defined]
    start = END - span
    inside, edge, outside = (
        _slot(int(span.total_seconds()) - 10),
        _slot(0),
        _slot(int(span.total_seconds()) + 10),
    )
    first = ChartSlot(start, 10, 3, "db", "published")

    root = _render([outside, first, inside, edge], span)

    assert (root.get("data-start"), root.get("data-end")) == (start.isoformat(), END.isoformat())
    assert root.get("data-slots") == "3"
    xs = [float(el.get("cx", "0")) for el in root.iter(f"{SVG}circle")]
    assert min(xs) == pytest.approx(48)
    assert max(xs) == pytest.approx(WIDTH - 48)
    times = [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "time"]
    assert times[0] == f"{start:%H:%M}"
    assert times[-1] == f"{END:%H:%M}"


def test_an_empty_window_says_so_and_still_has_the_legend() -> None:
    root = _render([])

    assert [el.text for el in root.iter(f"{SVG}text") if el.get("class") == "empty"] == [
        "No publications in this period."
    ]
    assert len([el for el in root.iter(f"{SVG}g") if el.get("class") == "legend"]) == 5


@pytest.mark.parametrize(
    ("asked", "key"),
    [(None, "1h"), ("", "1h"), ("1h", "1h"), ("6h", "6h"), ("24h", "24h"), (" 6H ", "6h")],
)
def test_window_parse(asked: str | None, key: str) -> None:
    window, error = chart_window_parse(asked)

    assert (window.key, error) == (key, "")


@pytest.mark.parametrize("asked", ["3d", "60", "1 hour", "x" * 200])
def test_a_bad_window_gets_the_default_and_one_line(asked: str) -> None:
    window, error = chart_window_parse(asked)

    assert window == DEFAULT_WINDOW
    assert error.startswith("Unknown chart window '")
    assert error.endswith(": showing the last 1 hour (choose one of 15m, 1h, 6h, 24h).")
    assert "\n" not in error
    assert len(error) < 120
