"""video.checks and video.conf: the worker settings, typed and checked at start-up."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from video.checks import video_settings_check, worker_api_key_check, worker_api_key_length_check
from video.conf import video_settings


@pytest.fixture(autouse=True)
def _defaults(settings: Any) -> None:
    settings.VIDEO_LEASE_SECONDS = "120"
    settings.VIDEO_MAX_ATTEMPTS = "3"
    settings.VIDEO_WORKER_JOB = "video.worker.jobs.hold_job"
    settings.WORKER_API_KEYS = ["wk-1"]
    settings.INTERNAL_API_KEYS = ["k-1"]


def _ids(messages: list[Any]) -> list[str]:
    return [message.id for message in messages]


def test_defaults_pass_and_read_typed() -> None:
    conf = video_settings()
    assert video_settings_check() == []
    assert (conf.lease_seconds, conf.renew_seconds, conf.max_attempts) == (120, 40, 3)
    assert conf.worker_job == "video.worker.jobs.hold_job"


@pytest.mark.parametrize(
    ("name", "value", "check_id", "message", "hint"),
    [
        (
            "VIDEO_LEASE_SECONDS",
            "2m",
            "video.E001",
            "VIDEO_LEASE_SECONDS is '2m'.",
            "Set VIDEO_LEASE_SECONDS to a whole number of seconds from 3 to 43200 "
            "(default 120; workers renew every third of it).",
        ),
        ("VIDEO_LEASE_SECONDS", "2", "video.E001", "VIDEO_LEASE_SECONDS is '2'.", None),
        ("VIDEO_LEASE_SECONDS", "0", "video.E001", "VIDEO_LEASE_SECONDS is '0'.", None),
        ("VIDEO_LEASE_SECONDS", "43201", "video.E001", "VIDEO_LEASE_SECONDS is '43201'.", None),
        ("VIDEO_LEASE_SECONDS", "", "video.E001", "VIDEO_LEASE_SECONDS is ''.", None),
        (
            "VIDEO_MAX_ATTEMPTS",
            "0",
            "video.E002",
            "VIDEO_MAX_ATTEMPTS is '0'.",
            "Set VIDEO_MAX_ATTEMPTS to a whole number from 1 to 100 (default 3).",
        ),
        ("VIDEO_MAX_ATTEMPTS", "three", "video.E002", "VIDEO_MAX_ATTEMPTS is 'three'.", None),
        ("VIDEO_MAX_ATTEMPTS", "101", "video.E002", "VIDEO_MAX_ATTEMPTS is '101'.", None),
        (
            "VIDEO_WORKER_JOB",
            "hold_job",
            "video.E003",
            "VIDEO_WORKER_JOB 'hold_job' is not a dotted path.",
            "Set VIDEO_WORKER_JOB to package.module.callable (default video.worker.jobs.hold_job).",
        ),
        ("VIDEO_WORKER_JOB", "video.worker:hold", "video.E003", None, None),
        ("VIDEO_WORKER_JOB", "video..hold", "video.E003", None, None),
        ("VIDEO_WORKER_JOB", "", "video.E003", None, None),
        ("VIDEO_WORKER_JOB", "1video.jobs.hold", "video.E003", None, None),
    ],
)
def test_bad_values_are_reported(
    settings: Any, name: str, value: str, check_id: str, message: str | None, hint: str | None
) -> None:
    setattr(settings, name, value)

    (error,) = video_settings_check()

    assert error.id == check_id
    if message is not None:
        assert error.msg == message
    if hint is not None:
        assert error.hint == hint


@pytest.mark.parametrize(
    ("raw", "lease", "renew"),
    [("3", 3, 1), ("10", 10, 3), (" 120 ", 120, 40), ("43200", 43200, 14400), ("bad", 120, 40)],
)
def test_renew_is_a_third_of_the_lease_in_whole_seconds(
    settings: Any, raw: str, lease: int, renew: int
) -> None:
    settings.VIDEO_LEASE_SECONDS = raw
    conf = video_settings()
    assert (conf.lease_seconds, conf.renew_seconds) == (lease, renew)


def test_the_audit_key_cannot_be_a_worker_key(settings: Any) -> None:
    settings.WORKER_API_KEYS = ["wk-1", "shared"]
    settings.INTERNAL_API_KEYS = ["shared"]

    (error,) = video_settings_check()

    assert error.id == "video.E004"
    assert "shared" not in f"{error.msg} {error.hint}"


@pytest.mark.parametrize(
    ("keys", "ids"),
    [
        (["k" * 512], []),
        (["k" * 513], ["video.E005"]),
        (["ключ" * 64 + "й"], ["video.E005"]),  # 514 bytes in UTF-8
    ],
)
def test_key_length(settings: Any, keys: list[str], ids: list[str]) -> None:
    settings.WORKER_API_KEYS = keys
    messages = worker_api_key_length_check()
    assert _ids(messages) == ids
    assert all(key not in str(m) for m in messages for key in keys)


def test_no_worker_key_is_a_deploy_warning(settings: Any) -> None:
    settings.WORKER_API_KEYS = []
    assert _ids(worker_api_key_check()) == ["video.W001"]
    settings.WORKER_API_KEYS = ["wk"]
    assert worker_api_key_check() == []


def test_the_checks_are_registered(settings: Any) -> None:
    settings.VIDEO_MAX_ATTEMPTS = "0"
    with pytest.raises(SystemCheckError, match=r"video\.E002"):
        call_command("check")
