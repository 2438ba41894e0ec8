"""The admin's chart of published values, drawn as SVG on the server.

A pure function of its input: no database, no clock, no script. The admin
hands it the last 24 hours of publications; tests hand it whatever they like.

What it draws, so a reader of the admin can trust the picture:
- one mark per slot (``class="point ..."``): a dot for a value measured in
  the database, a square for a value that came from the SQS fallback, a
  cross for a slot that failed (drawn on the zero line when nothing was
  measured, never as a made-up zero in the line);
- a line through the published values, broken wherever a slot failed or
  slots are missing, so a gap in the data shows as a gap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from scaling.models import PublicationSource, PublicationStatus

WIDTH = 960
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 48, 16, 28, 28
_COLOURS = {"db": "#2b6cb0", "sqs": "#dd6b20", "failed": "#c53030", "line": "#4a5568"}


@dataclass(frozen=True)
class ChartSlot:
    slot_start: datetime
    interval_seconds: int
    value: int | None
    source: str
    status: str

    @property
    def failed(self) -> bool:
        return self.status != PublicationStatus.PUBLISHED or self.value is None


def _nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that is at least ``value``."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return step * factor
        step *= 10


def _segments(slots: Sequence[ChartSlot]) -> list[list[ChartSlot]]:
    segments: list[list[ChartSlot]] = []
    current: list[ChartSlot] = []
    previous: ChartSlot | None = None
    for slot in slots:
        contiguous = previous is not None and slot.slot_start - previous.slot_start <= timedelta(
            seconds=previous.interval_seconds
        )
        if slot.failed or not contiguous:
            if current:
                segments.append(current)
            current = []
        if not slot.failed:
            current.append(slot)
        previous = slot
    if current:
        segments.append(current)
    return segments


def publication_chart_svg(
    *,
    slots: Sequence[ChartSlot],
    start: datetime,
    end: datetime,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> str:
    """SVG markup for ``slots`` between ``start`` and ``end`` (slots outside are left out)."""
    span = max((end - start).total_seconds(), 1.0)
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    shown = sorted((s for s in slots if start <= s.slot_start <= end), key=lambda s: s.slot_start)
    y_max = _nice_ceiling(max([s.value for s in shown if s.value is not None] + [1]))

    def x(at: datetime) -> float:
        return _LEFT + (at - start).total_seconds() / span * plot_w

    def y(value: int | None) -> float:
        return _TOP + plot_h - (value or 0) / y_max * plot_h

    failed = sum(1 for s in shown if s.failed)
    from_sqs = sum(1 for s in shown if not s.failed and s.source == PublicationSource.SQS)
    summary = (
        f"Published BacklogCount from {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} UTC: "
        f"{len(shown)} slots, {from_sqs} from SQS, {failed} failed"
    )
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="publication-chart" '
        f'class="publication-chart" viewBox="0 0 {width} {height}" width="100%" '
        f'role="img" aria-labelledby="publication-chart-title" '
        f'data-slots="{len(shown)}" data-failed="{failed}" data-sqs="{from_sqs}" '
        f'style="max-width:{width}px;background:#fff;font:11px sans-serif">',
        f'<title id="publication-chart-title">{escape(summary)}</title>',
    ]
    # Axes, horizontal grid at 0, half and top, time labels every quarter.
    for tick in (0, y_max // 2, y_max) if y_max > 1 else (0, 1):
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" y1="{ty:.1f}" x2="{width - _RIGHT}" '
            f'y2="{ty:.1f}" stroke="#e2e8f0"/>'
            f'<text x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end" fill="#4a5568">{tick}</text>'
        )
    for quarter in range(5):
        at = start + (end - start) * quarter / 4
        anchor = ("start", "middle", "middle", "middle", "end")[quarter]
        parts.append(
            f'<text x="{x(at):.1f}" y="{height - 8}" text-anchor="{anchor}" '
            f'fill="#4a5568">{at:%H:%M}</text>'
        )
    legend = (
        ("db", "●", "database"),
        ("sqs", "■", "SQS fallback"),
        ("failed", "✕", "failed, nothing published"),
    )
    lx = _LEFT
    for key, glyph, label in legend:
        parts.append(f'<text x="{lx}" y="14" fill="{_COLOURS[key]}">{glyph} {label}</text>')
        lx += 30 + 7 * len(label)
    if not shown:
        parts.append(
            f'<text class="empty" x="{width / 2:.0f}" y="{_TOP + plot_h / 2:.0f}" '
            f'text-anchor="middle" fill="#718096">No publications in this period.</text>'
        )
    for segment in _segments(shown):
        points = " ".join(f"{x(s.slot_start):.1f},{y(s.value):.1f}" for s in segment)
        parts.append(
            f'<polyline class="values" fill="none" stroke="{_COLOURS["line"]}" '
            f'stroke-width="1.5" points="{points}"/>'
        )
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
    parts.append("</svg>")
    return "".join(parts)
