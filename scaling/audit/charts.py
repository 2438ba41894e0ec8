"""The admin's chart of the recent slots, drawn as SVG on the server.

A pure function of its input: no database, no clock, no script. The admin hands
it the publications of the window a person picked (``chart_window_parse``: the
last 1, 6 or 24 hours) and the window's bounds; tests hand it whatever they like.
The time axis covers exactly ``start`` to ``end``.

What it draws, so a reader of the admin can trust the picture:
- five series on one time axis, each in its own colour (and dash), named in the
  legend: the published backlog (left axis, videos) and, from the group as the
  reconciler read it, instances in service, desired capacity, busy instances
  and protected instances (right axis, instances);
- one mark per slot on the backlog (``class="point ..."``): a dot for a value
  measured in the database, a square for a value that came from the SQS
  fallback, a cross for a slot that failed (drawn on the zero line when nothing
  was measured, never as a made-up zero in the line);
- each line broken wherever its value is missing (a failed slot for the
  backlog, a slot where the group was not read for the instances) or slots
  are missing, so a gap in the data shows as a gap. A flat run of an instance
  series keeps only its ends (the same picture, a fraction of the markup).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from scaling.models import PublicationSource, PublicationStatus

WIDTH = 960
HEIGHT = 280
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 48, 60, 28
_HOUR = timedelta(hours=1)  # a forecast value's span (GetPredictiveScalingForecast: hourly)
_COLOURS = {"db": "#2b6cb0", "sqs": "#dd6b20", "failed": "#c53030", "axis": "#4a5568"}


@dataclass(frozen=True)
class ChartWindow:
    key: str  # the query parameter's value: ?window=6h
    label: str  # "6 hours"
    span: timedelta


CHART_WINDOWS = (
    # 15 minutes: one burst through `make run`'s 10-second slots, readable slot by slot.
    ChartWindow("15m", "15 minutes", timedelta(minutes=15)),
    ChartWindow("1h", "1 hour", timedelta(hours=1)),
    ChartWindow("6h", "6 hours", timedelta(hours=6)),
    ChartWindow("24h", "24 hours", timedelta(hours=24)),
)
DEFAULT_WINDOW = CHART_WINDOWS[1]  # 1 hour


def chart_window_parse(asked: str | None) -> tuple[ChartWindow, str]:
    """The window asked for (``15m``, ``1h``, ``6h``, ``24h``; none: 1 hour), or the default
    and one line that says why the value was not used."""
    if asked is None or not asked.strip():
        return DEFAULT_WINDOW, ""
    for window in CHART_WINDOWS:
        if asked.strip().lower() == window.key:
            return window, ""
    keys = ", ".join(w.key for w in CHART_WINDOWS)
    shown = asked if len(asked) <= 20 else asked[:20] + "…"
    return DEFAULT_WINDOW, (
        f"Unknown chart window {shown!r}: showing the last {DEFAULT_WINDOW.label} "
        f"(choose one of {keys})."
    )


@dataclass(frozen=True)
class ChartSlot:
    slot_start: datetime
    interval_seconds: int
    value: int | None
    source: str
    status: str
    # The group as the reconciler read it in this slot; None: not read (a gap).
    in_service: int | None = None
    desired: int | None = None
    busy: int | None = None
    protected: int | None = None

    @property
    def failed(self) -> bool:
        return self.status != PublicationStatus.PUBLISHED or self.value is None


@dataclass(frozen=True)
class Series:
    key: str  # the CSS class and data-series of its line and legend entry
    label: str
    colour: str
    dash: str  # stroke-dasharray; empty: solid
    read: Callable[[ChartSlot], int | None]  # None: no value in this slot (a gap)


# AWS's load forecast (scaling.audit.forecast), on the backlog's axis, when it has one.
FORECAST = Series("forecast", "forecast load (AWS predictive)", "#319795", "6 4", lambda s: None)

SERIES = (
    Series("backlog", "published backlog", "#2b6cb0", "", lambda s: None if s.failed else s.value),
    Series("in-service", "in service", "#2f855a", "", lambda s: s.in_service),
    Series("desired", "desired capacity", "#6b46c1", "7 4", lambda s: s.desired),
    Series("busy", "busy (holding a lease)", "#d53f8c", "", lambda s: s.busy),
    Series("protected", "protected from scale-in", "#b7791f", "2 3", lambda s: s.protected),
)


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _segments(slots: Sequence[ChartSlot], series: Series) -> list[list[ChartSlot]]:
    """Runs of consecutive slots where ``series`` has a value."""
    segments: list[list[ChartSlot]] = []
    current: list[ChartSlot] = []
    previous: ChartSlot | None = None
    for slot in slots:
        contiguous = previous is not None and slot.slot_start - previous.slot_start <= timedelta(
            seconds=previous.interval_seconds
        )
        present = series.read(slot) is not None
        if not present or not contiguous:
            if current:
                segments.append(current)
            current = []
        if present:
            current.append(slot)
        previous = slot
    if current:
        segments.append(current)
    return segments


def _flat_runs_trimmed(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Drop the middle points of a flat run: the line drawn stays the same."""
    kept = points[:1]
    for i in range(1, len(points) - 1):
        if not points[i - 1][1] == points[i][1] == points[i + 1][1]:
            kept.append(points[i])
    return kept + points[1:][-1:]


def publication_chart_svg(
    *,
    slots: Sequence[ChartSlot],
    start: datetime,
    end: datetime,
    width: int = WIDTH,
    height: int = HEIGHT,
    fleet: str = "",
    forecast: Sequence[tuple[datetime, float]] = (),
) -> str:
    """SVG markup for ``slots`` between ``start`` and ``end`` (slots outside are left out);
    ``fleet``: whose slots they are (``data-fleet``, and named in the title); ``forecast``:
    AWS's hourly load forecast (a dashed step line beside the backlog: each value across its
    hour, cut to the window; hours outside left out)."""
    span = max((end - start).total_seconds(), 1.0)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    shown = sorted((s for s in slots if start <= s.slot_start <= end), key=lambda s: s.slot_start)
    # Each forecast value holds for its hour (AWS forecasts hourly): every hour that
    # overlaps the window is drawn as a step, cut to the window.
    predicted = sorted((at, v) for at, v in forecast if at < end and at + _HOUR > start)
    values = [s.value for s in shown if s.value is not None] + [
        round(v + 0.4999) for _, v in predicted
    ]
    backlog_max = _nice_ceiling(max([*values, 1]))
    counts = [v for s in shown for r in SERIES[1:] if (v := r.read(s)) is not None]
    instances_max = _nice_ceiling(max([*counts, 1]))

    def x(at: datetime) -> float:
        return _LEFT + (at - start).total_seconds() / span * plot_w

    def y(value: int | None, top: int) -> float:
        return _TOP + plot_h - (value or 0) / top * plot_h

    failed = sum(1 for s in shown if s.failed)
    from_sqs = sum(1 for s in shown if not s.failed and s.source == PublicationSource.SQS)
    whose = f"Fleet {fleet}: p" if fleet else "P"
    fleet_attr = f'data-fleet="{escape(fleet)}" ' if fleet else ""
    forecast_attr = f'data-forecast="{len(predicted)}" ' if predicted else ""
    summary = (
        f"{whose}ublished BacklogCount and the group's instances from {start:%Y-%m-%d %H:%M} to "
        f"{end:%Y-%m-%d %H:%M} UTC: {len(shown)} slots, {from_sqs} from SQS, {failed} failed"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="publication-chart" '
        f'class="publication-chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="publication-chart-title" '
        f'data-slots="{len(shown)}" data-failed="{failed}" data-sqs="{from_sqs}" '
        f'data-start="{start.isoformat()}" data-end="{end.isoformat()}" {fleet_attr}'
        f"{forecast_attr}"
        f'style="max-width:{width}px;background:#fff;font:11px sans-serif">',
        f'<title id="publication-chart-title">{escape(summary)}</title>',
    ]
    parts += _axes(start, end, backlog_max, instances_max, x, y, width, height)
    parts += _legend(forecast=bool(predicted))
    if not shown:
        parts.append(
            f'<text class="empty" x="{width / 2:.0f}" y="{_TOP + plot_h / 2:.0f}" '
            f'text-anchor="middle" fill="#718096">No publications in this period.</text>'
        )
    # The instances first, the backlog last: its line and marks stay on top.
    for series in (*SERIES[1:], SERIES[0]):
        top = backlog_max if series is SERIES[0] else instances_max
        for segment in _segments(shown, series):
            points = [(x(s.slot_start), y(series.read(s), top)) for s in segment]
            if series is not SERIES[0]:
                # One point alone draws as a dot (round caps on a zero-length line).
                points = _flat_runs_trimmed(points) if len(points) > 1 else points * 2
            css = "values series backlog" if series is SERIES[0] else f"series {series.key}"
            dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
            parts.append(
                f'<polyline class="{css}" data-series="{series.key}" fill="none" '
                f'stroke="{series.colour}" stroke-width="1.5" stroke-linecap="round"{dash} '
                f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in points)}"/>'
            )
    if predicted:
        drawn = [
            (x(edge), _TOP + plot_h - v / backlog_max * plot_h)
            for at, v in predicted
            for edge in (max(at, start), min(at + _HOUR, end))
        ]
        parts.append(
            f'<polyline class="series forecast" data-series="forecast" fill="none" '
            f'stroke="{FORECAST.colour}" stroke-width="1.5" stroke-dasharray="{FORECAST.dash}" '
            f'points="{" ".join(f"{px:.1f},{py:.1f}" for px, py in drawn)}"/>'
        )
    parts += _marks(shown, x, lambda v: y(v, backlog_max))
    parts.append("</svg>")
    return "".join(parts)


def _axes(
    start: datetime,
    end: datetime,
    backlog_max: int,
    instances_max: int,
    x: Callable[[datetime], float],
    y: Callable[[int | None, int], float],
    width: int,
    height: int,
) -> list[str]:
    """Grid and labels at 0, half and top of each value axis; times every quarter."""
    grey = _COLOURS["axis"]
    parts = [
        f'<text class="axis-title" x="{_LEFT - 6}" y="{_TOP - 10}" text-anchor="end" '
        f'fill="{SERIES[0].colour}">videos</text>'
        f'<text class="axis-title" x="{width - 4}" y="{_TOP - 10}" '
        f'text-anchor="end" fill="{grey}">instances</text>'
    ]
    for tick in (0, backlog_max // 2, backlog_max) if backlog_max > 1 else (0, 1):
        ty = y(tick, backlog_max)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{ty:.1f}" x2="{width - _RIGHT}" '
            f'y2="{ty:.1f}" stroke="#e2e8f0"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" '
            f'fill="{SERIES[0].colour}">{tick}</text>'
        )
    for tick in (0, instances_max // 2, instances_max) if instances_max > 1 else (0, 1):
        ty = y(tick, instances_max)
        parts.append(
            f'<text class="right-axis" x="{width - _RIGHT + 6}" y="{ty + 4:.1f}" '
            f'text-anchor="start" fill="{grey}">{tick}</text>'
        )
    for quarter in range(5):
        at = start + (end - start) * quarter / 4
        anchor = ("start", "middle", "middle", "middle", "end")[quarter]
        parts.append(
            f'<text class="time" x="{x(at):.1f}" y="{height - 8}" text-anchor="{anchor}" '
            f'fill="{grey}">{at:%H:%M}</text>'
        )
    return parts


def _legend(*, forecast: bool = False) -> list[str]:
    """The five series on the first row; the backlog's marks (and the forecast, when
    drawn: no room is left on the first row) on the second."""
    parts = []
    lx = float(_LEFT)
    for series in SERIES:
        dash = f' stroke-dasharray="{series.dash}"' if series.dash else ""
        parts.append(
            f'<g class="legend" data-series="{series.key}">'
            f'<line x1="{lx:.0f}" y1="10" x2="{lx + 18:.0f}" y2="10" stroke="{series.colour}" '
            f'stroke-width="2"{dash}/>'
            f'<text x="{lx + 22:.0f}" y="14" fill="{series.colour}">{series.label}</text></g>'
        )
        lx += 36 + 6.2 * len(series.label)
    marks = (
        ("db", "●", "backlog from the database"),
        ("sqs", "■", "from the SQS fallback"),
        ("failed", "✕", "failed, nothing published"),
    )
    lx = float(_LEFT)
    for key, glyph, label in marks:
        parts.append(
            f'<text class="legend-mark" x="{lx:.0f}" y="32" fill="{_COLOURS[key]}">'
            f"{glyph} {label}</text>"
        )
        lx += 30 + 6.2 * len(label)
    if forecast:
        parts.append(
            f'<g class="legend" data-series="{FORECAST.key}">'
            f'<line x1="{lx:.0f}" y1="28" x2="{lx + 18:.0f}" y2="28" stroke="{FORECAST.colour}" '
            f'stroke-width="2" stroke-dasharray="{FORECAST.dash}"/>'
            f'<text x="{lx + 22:.0f}" y="32" fill="{FORECAST.colour}">{FORECAST.label}</text></g>'
        )
    return parts


def _marks(
    shown: Sequence[ChartSlot], x: Callable[[datetime], float], y: Callable[[int | None], float]
) -> list[str]:
    """One mark per slot on the backlog: dot (database), square (SQS), cross (failed)."""
    parts = []
    for slot in shown:
        px, py = x(slot.slot_start), y(slot.value)
        if slot.failed:
            label = escape(
                f"{slot.slot_start:%H:%M:%S} failed"
                + ("" if slot.value is None else f" (measured {slot.value})")
            )
            parts.append(
                f'<path class="point failed" stroke="{_COLOURS["failed"]}" stroke-width="2" '
                f'd="M{px - 4:.1f} {py - 4:.1f}L{px + 4:.1f} {py + 4:.1f}'
                f'M{px - 4:.1f} {py + 4:.1f}L{px + 4:.1f} {py - 4:.1f}">'
                f"<title>{label}</title></path>"
            )
        elif slot.source == PublicationSource.SQS:
            label = escape(f"{slot.slot_start:%H:%M:%S} {slot.value} from SQS")
            parts.append(
                f'<rect class="point sqs" fill="{_COLOURS["sqs"]}" x="{px - 3.5:.1f}" '
                f'y="{py - 3.5:.1f}" width="7" height="7"><title>{label}</title></rect>'
            )
        else:
            parts.append(
                f'<circle class="point db" fill="{_COLOURS["db"]}" cx="{px:.1f}" '
                f'cy="{py:.1f}" r="2.5"/>'
            )
    return parts
