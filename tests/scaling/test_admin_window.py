"""The admin chart's window: ?window=1h (default) | 6h | 24h, and a bad value."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from scaling.admin import chart_limit
from scaling.audit.charts import CHART_WINDOWS
from scaling.models import MetricPublication

pytestmark = pytest.mark.django_db

LIST_URL = "/admin/scaling/metricpublication/"


def _rows(*ago: timedelta, **fields: object) -> None:
    now = timezone.now().replace(microsecond=0)
    MetricPublication.objects.bulk_create(
        MetricPublication(
            slot_start=now - delta,
            interval_seconds=60,
            value=3,
            source="db",
            status="published",
            duration_ms=2.0,
            asg_name="academy-video-worker-asg",
            **fields,
        )
        for delta in ago
    )


def _chart(html: str) -> str:
    return html.split('id="publication-chart"', 1)[1].split("</svg>", 1)[0]


def _bounds(html: str) -> tuple[datetime, datetime]:
    found = re.search(r'data-start="([^"]+)" data-end="([^"]+)"', _chart(html))
    assert found is not None
    return datetime.fromisoformat(found.group(1)), datetime.fromisoformat(found.group(2))


AGES = (timedelta(minutes=30), timedelta(hours=3), timedelta(hours=12), timedelta(hours=30))


@pytest.mark.parametrize(
    ("query", "span", "slots"),
    [("", 1, 1), ("?window=1h", 1, 1), ("?window=6h", 6, 2), ("?window=24h", 24, 3)],
)
def test_the_window_picks_the_span_of_the_axis(
    admin_client: Client, query: str, span: int, slots: int
) -> None:
    _rows(*AGES)

    before = timezone.now()
    response = admin_client.get(LIST_URL + query)
    after = timezone.now()

    assert response.status_code == 200
    html = response.content.decode()
    start, end = _bounds(html)
    assert end - start == timedelta(hours=span)
    assert before <= end <= after
    assert f'data-slots="{slots}"' in html
    assert 'id="chart-window-error"' not in html
    # The current window is marked; the list below is not filtered by it.
    current = re.findall(r'aria-current="page" data-window="(\w+)"', html)
    assert current == [f"{span}h"]
    assert response.context["cl"].result_count == len(AGES)
    assert f"Last {response.context['chart_window'].label} (UTC)" in html


@pytest.mark.parametrize("asked", ["3d", "%3Cscript%3E", "1"])
def test_a_bad_window_says_so_in_one_line_and_shows_the_default(
    admin_client: Client, asked: str
) -> None:
    _rows(*AGES)

    response = admin_client.get(f"{LIST_URL}?window={asked}")

    assert response.status_code == 200
    html = response.content.decode()
    [message] = re.findall(r'<p id="chart-window-error" class="errornote">(.*?)</p>', html)
    assert "showing the last 1 hour (choose one of 15m, 1h, 6h, 24h)." in message
    assert "<script>" not in html.split('id="chart-window-error"')[1][:200]
    start, end = _bounds(html)
    assert end - start == timedelta(hours=1)
    assert 'data-slots="1"' in html
    assert response.context["cl"].result_count == len(AGES)


def test_window_links_keep_the_filters_and_filters_keep_the_window(admin_client: Client) -> None:
    _rows(timedelta(minutes=5), timedelta(minutes=6))
    MetricPublication.objects.filter(
        slot_start__lt=timezone.now() - timedelta(minutes=5, seconds=30)
    ).update(status="failed", value=None, source="")

    response = admin_client.get(f"{LIST_URL}?status__exact=failed&window=6h")

    html = response.content.decode()
    assert response.context["cl"].result_count == 1
    found = re.findall(r'<a href="\?([^"]+)"[^>]*data-window="(\w+)"', html)
    links = {key: query for query, key in found}
    assert set(links) == {w.key for w in CHART_WINDOWS}
    for key, query in links.items():
        assert "status__exact=failed" in query
        assert f"window={key}" in query
    # The list's own links (sorting, filters) carry the window on.
    assert "window=6h" in html.split('id="changelist"', 1)[1]


def test_the_five_series_reach_the_page_from_the_audit_rows(admin_client: Client) -> None:
    _rows(
        timedelta(minutes=3),
        timedelta(minutes=2),
        in_service_instances=2,
        desired_capacity=3,
        busy_instances=1,
        protected_instances=1,
    )

    chart = _chart(admin_client.get(LIST_URL).content.decode())

    for key in ("backlog", "in-service", "desired", "busy", "protected"):
        assert f'<g class="legend" data-series="{key}">' in chart
        assert f'data-series="{key}" fill="none"' in chart


def test_the_query_limit_covers_the_window_at_ten_second_slots() -> None:
    assert [chart_limit(w) for w in CHART_WINDOWS] == [100, 370, 2170, 8650]


def test_the_change_page_shows_the_group_counts(admin_client: Client) -> None:
    _rows(timedelta(minutes=1), in_service_instances=4, desired_capacity=5)
    row = MetricPublication.objects.get()

    html = admin_client.get(f"{LIST_URL}{row.pk}/change/").content.decode()

    assert "In service instances" in html
    assert "Desired capacity" in html


def test_a_quarter_hour_window_shows_one_burst_slot_by_slot(admin_client: Client) -> None:
    _rows(*AGES)

    html = admin_client.get(f"{LIST_URL}?window=15m").content.decode()

    start, end = _bounds(html)
    assert end - start == timedelta(minutes=15)
    assert 'data-slots="0"' in html  # the youngest row is 30 minutes old
    assert re.findall(r'aria-current="page" data-window="(\w+)"', html) == ["15m"]
