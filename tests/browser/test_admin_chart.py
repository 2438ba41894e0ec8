"""The audit admin in a real headless Chromium (Debian's), driven by Selenium.

Debian's chromium-driver matches its chromium exactly; both are given by
path, so Selenium never looks for (or downloads) a driver or a browser.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from scaling.models import MetricPublication
from tests.conftest import service_missing

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("ACADEMY_ARTIFACTS_DIR", REPO / "artifacts"))
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,1000",
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    driver_path = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (os.access(chromium, os.X_OK) and os.access(driver_path, os.X_OK)):
        service_missing("needs Debian's chromium and chromium-driver: apt-get install them")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        service_missing("needs selenium: pip install -e '.[dev]'")
        raise
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(executable_path=driver_path, log_output=str(tmp_path / "driver.log")),
        options=options,
    )
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _sixty_publications_one_failed() -> None:
    """The last hour, one slot a minute; the group was not read in two slots (a gap).

    The newest slot starts 5 s ago, not at the minute: the page's hour ends at the
    moment it loads, and a minute boundary crossed between these rows and the page
    (CI saw it: 59 points) would push a minute-aligned first slot out of the window.
    """
    end = timezone.now().replace(microsecond=0) - timedelta(seconds=5)
    rows = []
    for i in range(60):
        failed = i == 41
        sqs = i in (10, 11, 12)
        in_service = None if i in (30, 31) else 2 + i // 20
        fleet = {
            "in_service_instances": in_service,
            "desired_capacity": None if in_service is None else in_service + (i % 15 < 5),
            "busy_instances": None if in_service is None else min(in_service, i % 3),
            "protected_instances": None if in_service is None else min(in_service, i % 3 + 1),
        }
        rows.append(
            MetricPublication(
                slot_start=end - timedelta(minutes=59 - i),
                interval_seconds=60,
                value=None if failed else (i * 7) % 23,
                source="" if failed else ("sqs" if sqs else "db"),
                status="failed" if failed else "published",
                error="database and SQS both unavailable" if failed else "",
                duration_ms=3.0,
                asg_name="academy-video-worker-asg",
                **fleet,
            )
        )
    MetricPublication.objects.bulk_create(rows)


def test_staff_user_sees_sixty_points_and_the_failed_slot(live_server: Any, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    _sixty_publications_one_failed()
    user = User.objects.create_user("auditor", password="pw-auditor-7731", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename="view_metricpublication"))

    browser.get(f"{live_server.url}/admin/scaling/metricpublication/")
    assert "/admin/login/" in browser.current_url  # not logged in yet: sent to the login page
    browser.find_element(By.NAME, "username").send_keys("auditor")
    browser.find_element(By.NAME, "password").send_keys("pw-auditor-7731")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    assert browser.current_url == f"{live_server.url}/admin/scaling/metricpublication/"
    chart = browser.find_element(By.ID, "publication-chart")
    points = chart.find_elements(By.CSS_SELECTOR, ".point")
    failed = chart.find_elements(By.CSS_SELECTOR, ".point.failed")
    from_sqs = chart.find_elements(By.CSS_SELECTOR, ".point.sqs")
    lines = chart.find_elements(By.CSS_SELECTOR, "polyline.values")
    assert len(points) == 60
    assert len(failed) == 1
    assert len(from_sqs) == 3
    # The line breaks at the failed slot: 41 values before it, 18 after.
    assert [len(line.get_attribute("points").split()) for line in lines] == [41, 18]
    # Five series, each named in the legend in its own colour; the instances break
    # where the group was not read.
    legend = chart.find_elements(By.CSS_SELECTOR, "g.legend")
    assert [g.text for g in legend] == [
        "published backlog",
        "in service",
        "desired capacity",
        "busy (holding a lease)",
        "protected from scale-in",
    ]
    assert all(g.is_displayed() and g.rect["width"] > 0 for g in legend)
    colours = {g.find_element(By.TAG_NAME, "line").get_attribute("stroke") for g in legend}
    assert len(colours) == 5
    for key in ("in-service", "desired", "busy", "protected"):
        drawn = chart.find_elements(By.CSS_SELECTOR, f'polyline[data-series="{key}"]')
        assert len(drawn) == 2, key
        assert all(line.is_displayed() for line in drawn), key
    # The last hour by default: the axis spans exactly one hour.
    assert _span_hours(chart) == 1
    assert failed[0].is_displayed()
    assert failed[0].rect["width"] > 0
    # Rendered on the server: the page loads no script from outside.
    sources = [s.get_attribute("src") for s in browser.find_elements(By.TAG_NAME, "script")]
    assert all(src.startswith(live_server.url) for src in sources if src)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 60

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / "admin-metricpublication-chart.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000

    # A person picks another window with the links above the chart.
    browser.find_element(By.CSS_SELECTOR, '#chart-window a[data-window="6h"]').click()
    assert browser.current_url.endswith("?window=6h")
    chart = browser.find_element(By.ID, "publication-chart")
    assert _span_hours(chart) == 6
    assert len(chart.find_elements(By.CSS_SELECTOR, ".point")) == 60
    current = browser.find_element(By.CSS_SELECTOR, '#chart-window a[aria-current="page"]')
    assert current.get_attribute("data-window") == "6h"
    browser.find_element(By.CSS_SELECTOR, '#chart-window a[data-window="24h"]').click()
    assert _span_hours(browser.find_element(By.ID, "publication-chart")) == 24
    assert len(browser.find_elements(By.CSS_SELECTOR, "#result_list tbody tr")) == 60

    # A window the page does not know: one line, and the default hour.
    browser.get(f"{live_server.url}/admin/scaling/metricpublication/?window=3d")
    message = browser.find_element(By.ID, "chart-window-error")
    assert message.is_displayed()
    assert message.text == (
        "Unknown chart window '3d': showing the last 1 hour (choose one of 15m, 1h, 6h, 24h)."
    )
    assert _span_hours(browser.find_element(By.ID, "publication-chart")) == 1


def _span_hours(chart: Any) -> float:
    start = datetime.fromisoformat(chart.get_attribute("data-start"))
    end = datetime.fromisoformat(chart.get_attribute("data-end"))
    return (end - start).total_seconds() / 3600


def test_the_forecast_is_a_dashed_line_beside_the_backlog(
    live_server: Any, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """AWS's load forecast (GetPredictiveScalingForecast, answered here in-process: moto
    does not implement it) is drawn dashed on the backlog's axis and named in the legend;
    without one, the line says why."""
    from selenium.webdriver.common.by import By

    from scaling import admin as scaling_admin
    from scaling.audit.forecast import Forecast, ForecastPoint

    _sixty_publications_one_failed()
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    points = [
        ForecastPoint(at=(hour + timedelta(minutes=m)).isoformat(), value=v)
        for m, v in ((-60, 4.0), (0, 9.0), (60, 6.0))
    ]
    answers = {
        "one": Forecast(policy=None, start="", end="", load=points),
        "none": Forecast(policy=None, start="", end="", reason="no forecast yet (test)"),
    }
    given = {"answer": "one"}
    monkeypatch.setattr(
        scaling_admin, "forecast_page_get", lambda **kwargs: answers[given["answer"]]
    )
    User.objects.create_superuser("lead", password="pw-lead-5521")
    browser.get(f"{live_server.url}/admin/login/?next=/admin/scaling/metricpublication/")
    browser.find_element(By.NAME, "username").send_keys("lead")
    browser.find_element(By.NAME, "password").send_keys("pw-lead-5521")
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    chart = browser.find_element(By.ID, "publication-chart")
    drawn = chart.find_elements(By.CSS_SELECTOR, 'polyline[data-series="forecast"]')
    assert len(drawn) == 1
    assert drawn[0].is_displayed()
    assert drawn[0].get_attribute("stroke-dasharray") == "6 4"
    # Each value a step across its hour, cut to the window (the last hour): the hour that
    # started before the window and the one now.
    assert chart.get_attribute("data-forecast") == "2"
    assert len(drawn[0].get_attribute("points").split()) == 4
    assert drawn[0].rect["width"] > 800
    legend = [g.text for g in chart.find_elements(By.CSS_SELECTOR, "g.legend")]
    assert "forecast load (AWS predictive)" in legend

    given["answer"] = "none"
    browser.get(f"{live_server.url}/admin/scaling/metricpublication/")
    chart = browser.find_element(By.ID, "publication-chart")
    assert chart.find_elements(By.CSS_SELECTOR, 'polyline[data-series="forecast"]') == []
    assert "Forecast load not drawn: no forecast yet (test)." in browser.page_source
