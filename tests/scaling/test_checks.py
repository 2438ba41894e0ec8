"""scaling system checks: each bad setting gives its id, its sentence and its hint."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import Error, Warning, run_checks

from scaling.audit.internal_auth import MAX_KEY_LENGTH
from scaling.checks import (
    internal_api_key_check,
    internal_api_key_length_check,
    scaling_settings_check,
)

QUEUE_HINT = (
    "Set it to https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>, "
    "or leave it unset for no fallback."
)
LONG = "x" * 256


def test_defaults_pass() -> None:
    assert scaling_settings_check() == []


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"SCALING_PUBLISH_INTERVAL_SECONDS": "15"},
            ("scaling.E001", "SCALING_PUBLISH_INTERVAL_SECONDS is '15'.",
             "Set SCALING_PUBLISH_INTERVAL_SECONDS to 10, 30 or 60."),
            id="E001-not-allowed",
        ),
        pytest.param(
            {"SCALING_PUBLISH_INTERVAL_SECONDS": "1m"},
            ("scaling.E001", "SCALING_PUBLISH_INTERVAL_SECONDS is '1m'.",
             "Set SCALING_PUBLISH_INTERVAL_SECONDS to 10, 30 or 60."),
            id="E001-not-a-number",
        ),
        pytest.param(
            {"SCALING_NAMESPACE": "  "},
            ("scaling.E002", "SCALING_NAMESPACE is empty.",
             "Set SCALING_NAMESPACE, e.g. Academy/VideoProcessing."),
            id="E002-empty",
        ),
        pytest.param(
            {"SCALING_NAMESPACE": "AWS/Video"},
            ("scaling.E002",
             "SCALING_NAMESPACE 'AWS/Video' starts with 'AWS/', which CloudWatch reserves "
             "for AWS services.",
             "Set SCALING_NAMESPACE to a name of your own, e.g. Academy/VideoProcessing."),
            id="E002-reserved",
        ),
        pytest.param(
            {"SCALING_NAMESPACE": LONG},
            ("scaling.E002", "SCALING_NAMESPACE is longer than 255 characters.",
             "Set a shorter SCALING_NAMESPACE."),
            id="E002-too-long",
        ),
        pytest.param(
            {"SCALING_SQS_QUEUE_URL": "academy-video-jobs"},
            ("scaling.E003",
             "SCALING_SQS_QUEUE_URL 'academy-video-jobs' is not an SQS queue URL.", QUEUE_HINT),
            id="E003-name-not-url",
        ),
        pytest.param(
            {"SCALING_SQS_QUEUE_URL": "https://sqs.ap-northeast-2.amazonaws.com/123/jobs"},
            ("scaling.E003",
             "SCALING_SQS_QUEUE_URL 'https://sqs.ap-northeast-2.amazonaws.com/123/jobs' "
             "is not an SQS queue URL.", QUEUE_HINT),
            id="E003-short-account",
        ),
        pytest.param(
            {"SCALING_ASG_NAME": ""},
            ("scaling.E004", "SCALING_ASG_NAME is empty.",
             "Set SCALING_ASG_NAME to the video workers' Auto Scaling group name."),
            id="E004-empty",
        ),
        pytest.param(
            {"SCALING_ASG_NAME": LONG},
            ("scaling.E004", "SCALING_ASG_NAME is longer than 255 characters.",
             "Set SCALING_ASG_NAME to the group's real name."),
            id="E004-too-long",
        ),
        pytest.param(
            {"SCALING_METRIC_NAME": ""},
            ("scaling.E005", "SCALING_METRIC_NAME is empty.",
             "Set SCALING_METRIC_NAME to 1 to 255 characters (default: see .env.example)."),
            id="E005-metric-empty",
        ),
        pytest.param(
            {"SCALING_WORKER_TYPE": LONG},
            ("scaling.E005", "SCALING_WORKER_TYPE is longer than 255 characters.",
             "Set SCALING_WORKER_TYPE to 1 to 255 characters (default: see .env.example)."),
            id="E005-worker-type-too-long",
        ),
        pytest.param(
            {"SCALING_AUDIT_RETENTION_DAYS": "0"},
            ("scaling.E006", "SCALING_AUDIT_RETENTION_DAYS is '0'.",
             "Set SCALING_AUDIT_RETENTION_DAYS to a whole number of days, 1 or more."),
            id="E006-zero",
        ),
        pytest.param(
            {"SCALING_AUDIT_RETENTION_DAYS": "a month"},
            ("scaling.E006", "SCALING_AUDIT_RETENTION_DAYS is 'a month'.",
             "Set SCALING_AUDIT_RETENTION_DAYS to a whole number of days, 1 or more."),
            id="E006-not-a-number",
        ),
        pytest.param(
            {"SCALING_STATE_URL": "memcached://127.0.0.1:11211"},
            ("scaling.E007",
             "SCALING_STATE_URL starts with 'memcached://', neither redis:// nor file://.",
             "Set SCALING_STATE_URL to a Redis URL (production) or file:///some/dir."),
            id="E007-unknown-scheme",
        ),
    ],
)  # fmt: skip
def test_bad_setting_gives_one_error(
    overrides: dict[str, str], expected: tuple[str, str, str], settings: Any
) -> None:
    for name, value in overrides.items():
        setattr(settings, name, value)
    assert scaling_settings_check() == [Error(expected[1], hint=expected[2], id=expected[0])]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SCALING_PUBLISH_INTERVAL_SECONDS", "10"),
        ("SCALING_PUBLISH_INTERVAL_SECONDS", "30"),
        ("SCALING_SQS_QUEUE_URL", ""),
        ("SCALING_SQS_QUEUE_URL", "https://sqs.ap-northeast-2.amazonaws.com/123456789012/jobs"),
        ("SCALING_SQS_QUEUE_URL", "http://127.0.0.1:5000/123456789012/jobs.fifo"),
        ("SCALING_STATE_URL", "rediss://cache.example:6380/0"),
        ("SCALING_AUDIT_RETENTION_DAYS", "1"),
    ],
)
def test_good_values_pass(name: str, value: str, settings: Any) -> None:
    setattr(settings, name, value)
    assert scaling_settings_check() == []


def test_several_bad_settings_are_all_reported_in_id_order(settings: Any) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "0"
    settings.SCALING_ASG_NAME = ""
    settings.SCALING_STATE_URL = "/tmp/state"
    ids = [message.id for message in scaling_settings_check()]
    assert ids == ["scaling.E001", "scaling.E004", "scaling.E007"]


def test_check_is_registered(settings: Any) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "5"
    ids = {message.id for message in run_checks()}
    assert "scaling.E001" in ids


def test_no_internal_key_is_a_deploy_warning(settings: Any) -> None:
    settings.INTERNAL_API_KEYS = []
    expected = Warning(
        "No internal API key is configured: the internal backlog endpoint refuses every request.",
        hint="Set INTERNAL_API_KEY (several keys comma-separated for rotation).",
        id="scaling.W001",
    )
    assert internal_api_key_check() == [expected]
    assert "scaling.W001" not in {message.id for message in run_checks()}
    assert "scaling.W001" in {message.id for message in run_checks(include_deployment_checks=True)}


def test_internal_key_configured(settings: Any) -> None:
    settings.INTERNAL_API_KEYS = ["new", "old"]
    assert internal_api_key_check() == []


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("k" * (MAX_KEY_LENGTH + 1), id="ascii"),
        pytest.param("ключ" * 64 + "й", id="257-characters-514-utf8-bytes"),
    ],
)
def test_internal_key_longer_than_the_endpoint_compares_is_an_error(
    key: str, settings: Any
) -> None:
    settings.INTERNAL_API_KEYS = ["current", key]
    expected = Error(
        "INTERNAL_API_KEY (or LAMBDA_INTERNAL_API_KEY) holds a key longer than 512 bytes, "
        "which no request can present: set keys of 512 bytes or fewer.",
        id="scaling.E008",
    )
    assert internal_api_key_length_check() == [expected]
    # Not a deploy-only check: every manage.py command stops on it.
    assert "scaling.E008" in {message.id for message in run_checks()}


def test_internal_key_at_the_limit_passes(settings: Any) -> None:
    settings.INTERNAL_API_KEYS = ["k" * MAX_KEY_LENGTH, "ключ" * 64]
    assert internal_api_key_length_check() == []
