"""The backlog port (scaling/port.py): how scaling finds the host's work, what a bad
SCALING_BACKLOG_SOURCE says, and what a host without leases gets."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command

from scaling.checks import scaling_settings_check
from scaling.port import Backlog, backlog_source, lease_hooks, processing_history
from scaling.publishing.tick import backlog_tick
from tests.factories import videos_create

MEASURED_AT = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


class CountOnly:
    """A host whose workers hold no leases: a backlog and nothing else."""

    def backlog_get(self) -> Backlog:
        return Backlog(
            waiting=7,
            in_progress=2,
            oldest_waiting_at=MEASURED_AT - timedelta(seconds=90),
            measured_at=MEASURED_AT,
        )


class HalfLeases(CountOnly):
    def lease_seconds(self) -> int:
        return 60


class NoBacklog:
    def leases_recover_expired(self) -> int:
        return 0


COUNT_ONLY = CountOnly()
HERE = "tests.scaling.test_port"


def _e009(settings: Any, path: str) -> list[str]:
    settings.SCALING_BACKLOG_SOURCE = path
    return [m.msg for m in scaling_settings_check() if m.id == "scaling.E009"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        pytest.param(
            "",
            "SCALING_BACKLOG_SOURCE is not set: name the host's implementation of "
            "scaling.port.BacklogSource (a dotted path, e.g. 'myapp.backlog.Source').",
            id="missing",
        ),
        pytest.param(
            "lectures.backlog.Source",
            "SCALING_BACKLOG_SOURCE 'lectures.backlog.Source' cannot be imported "
            "(No module named 'lectures').",
            id="not-importable",
        ),
        pytest.param(
            f"{HERE}.NoBacklog",
            f"SCALING_BACKLOG_SOURCE '{HERE}.NoBacklog' has no backlog_get(): it must "
            "implement scaling.port.BacklogSource.",
            id="wrong-shape",
        ),
        pytest.param(
            f"{HERE}.HalfLeases",
            f"SCALING_BACKLOG_SOURCE '{HERE}.HalfLeases' has some lease hooks but not "
            "leases_recover_expired(), leases_by_instance(), work_in_progress(), "
            "recoveries_recent(): implement all of scaling.port.LeaseHooks, or none.",
            id="some-lease-hooks",
        ),
    ],
)
def test_a_bad_backlog_source_is_one_check_error(settings: Any, path: str, message: str) -> None:
    assert _e009(settings, path) == [message]


@pytest.mark.parametrize(
    "path", [f"{HERE}.CountOnly", f"{HERE}.COUNT_ONLY", "video.backlog.VideoBacklogSource"]
)
def test_a_class_or_an_object_is_a_good_source(settings: Any, path: str) -> None:
    assert _e009(settings, path) == []


def test_a_class_is_made_once_per_setting(settings: Any) -> None:
    settings.SCALING_BACKLOG_SOURCE = f"{HERE}.CountOnly"
    first = backlog_source()
    assert isinstance(first, CountOnly)
    assert backlog_source() is first
    settings.SCALING_BACKLOG_SOURCE = f"{HERE}.COUNT_ONLY"
    assert backlog_source() is COUNT_ONLY


@pytest.mark.django_db
def test_this_projects_source_has_leases_and_history(settings: Any) -> None:
    settings.VIDEO_LEASE_SECONDS = "45"
    hooks = lease_hooks()
    assert hooks is not None
    assert hooks.lease_seconds() == 45
    assert processing_history(since=MEASURED_AT - timedelta(days=1), limit=5) == []


def test_a_source_without_history_says_so(settings: Any) -> None:
    settings.SCALING_BACKLOG_SOURCE = f"{HERE}.CountOnly"
    assert lease_hooks() is None
    assert processing_history(since=MEASURED_AT, limit=5) is None


@pytest.mark.django_db
def test_a_host_without_leases_publishes_its_own_count_and_nothing_of_leases(
    aws: dict[str, str], settings: Any
) -> None:
    videos_create(UPLOADED=3)  # the video app's rows: not this host's backlog
    settings.SCALING_BACKLOG_SOURCE = f"{HERE}.CountOnly"

    result = backlog_tick()

    assert (result.published, result.value, result.source) == (True, 9, "db")
    assert (result.uploaded, result.processing) == (7, 2)
    # Recovery and the reconciler did not run: no count is made up for them.
    assert (result.recovered, result.busy_instances, result.protected_instances) == (
        None,
        None,
        None,
    )


@pytest.mark.django_db
def test_status_and_the_installer_say_leases_are_off(aws: dict[str, str], settings: Any) -> None:
    settings.SCALING_BACKLOG_SOURCE = f"{HERE}.CountOnly"
    status = StringIO()
    call_command("scaling_status", stdout=status)
    install = StringIO()
    call_command("install_scaling_policy", "--json", stdout=install)

    assert (
        "Leases, recovery, scale-in protection and drain: off: the backlog source "
        "(SCALING_BACKLOG_SOURCE) has no lease hooks, so its workers hold no leases to "
        "recover, protect or drain." in status.getvalue().splitlines()
    )
    run = json.loads(install.getvalue())
    assert "lifecycle-hook" not in [item["kind"] for item in run["items"]]
    assert any(w.startswith("Lifecycle hook not installed: drain is off") for w in run["warnings"])
    assert "target-tracking-policy" in [item["kind"] for item in run["items"]]
