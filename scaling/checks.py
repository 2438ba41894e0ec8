"""System checks for the scaling settings: a bad value fails at start-up."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from scaling.audit.internal_auth import MAX_KEY_LENGTH
from scaling.conf import ALLOWED_INTERVALS, QUEUE_URL_RE, internal_api_keys, scaling_settings
from scaling.fleets import fleet_problems
from scaling.port import backlog_source_problem

# CloudWatch limits: names and dimension values are 1..255 characters.
_MAX_NAME = 255


@register(Tags.compatibility)
def scaling_settings_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return _settings_errors()


@register(Tags.compatibility)
def scaling_fleets_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """SCALING_FLEETS: one error per bad entry (scaling.fleets says which and why)."""
    return [Error(p.message, hint=p.hint, id=p.check_id) for p in fleet_problems()]


@register(Tags.security, deploy=True)
def internal_api_key_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if internal_api_keys():
        return []
    return [
        Warning(
            "No internal API key is configured: the internal backlog endpoint refuses "
            "every request.",
            hint="Set INTERNAL_API_KEY (several keys comma-separated for rotation).",
            id="scaling.W001",
        )
    ]


# Not a deploy check: a key that can never match breaks the endpoint in every
# environment, so ``check``, ``migrate`` and runserver stop on it everywhere.
@register(Tags.security)
def internal_api_key_length_check(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    if all(len(key.encode("utf-8")) <= MAX_KEY_LENGTH for key in internal_api_keys()):
        return []
    return [
        Error(
            # The key itself stays out of the message (and the journal).
            f"INTERNAL_API_KEY (or LAMBDA_INTERNAL_API_KEY) holds a key longer than "
            f"{MAX_KEY_LENGTH} bytes, which no request can present: set keys of "
            f"{MAX_KEY_LENGTH} bytes or fewer.",
            id="scaling.E008",
        )
    ]


def _scheme(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else url[:8] + "..."


def _name_error(
    name: str, value: str, check_id: str, hints: tuple[str, str] | None = None
) -> Error | None:
    """The error for a CloudWatch / Auto Scaling name that is empty or too long, else None.

    ``hints``: what to do when it is empty, and when it is too long; by default
    both say the limits.
    """
    if value and len(value) <= _MAX_NAME:
        return None
    hint_empty, hint_long = hints or (
        (f"Set {name} to 1 to 255 characters (default: see .env.example).",) * 2
    )
    if not value:
        return Error(f"{name} is empty.", hint=hint_empty, id=check_id)
    return Error(f"{name} is longer than 255 characters.", hint=hint_long, id=check_id)


def _settings_errors() -> list[CheckMessage]:
    conf = scaling_settings()
    errors: list[CheckMessage] = []
    if conf.interval_seconds not in ALLOWED_INTERVALS:
        errors.append(
            Error(
                f"SCALING_PUBLISH_INTERVAL_SECONDS is {conf.interval_raw!r}.",
                hint="Set SCALING_PUBLISH_INTERVAL_SECONDS to 10, 30 or 60.",
                id="scaling.E001",
            )
        )
    namespace_error = _name_error(
        "SCALING_NAMESPACE",
        conf.namespace,
        "scaling.E002",
        (
            "Set SCALING_NAMESPACE, e.g. Academy/VideoProcessing.",
            "Set a shorter SCALING_NAMESPACE.",
        ),
    )
    if conf.namespace.startswith("AWS/"):
        errors.append(
            Error(
                f"SCALING_NAMESPACE {conf.namespace!r} starts with 'AWS/', which CloudWatch "
                "reserves for AWS services.",
                hint="Set SCALING_NAMESPACE to a name of your own, e.g. Academy/VideoProcessing.",
                id="scaling.E002",
            )
        )
    elif namespace_error:
        errors.append(namespace_error)
    if conf.sqs_queue_url and not QUEUE_URL_RE.match(conf.sqs_queue_url):
        errors.append(
            Error(
                f"SCALING_SQS_QUEUE_URL {conf.sqs_queue_url!r} is not an SQS queue URL.",
                hint="Set it to https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>, "
                "or leave it unset for no fallback.",
                id="scaling.E003",
            )
        )
    asg_hints = (
        "Set SCALING_ASG_NAME to the video workers' Auto Scaling group name.",
        "Set SCALING_ASG_NAME to the group's real name.",
    )
    for name, value, check_id, hints in (
        ("SCALING_ASG_NAME", conf.asg_name, "scaling.E004", asg_hints),
        ("SCALING_METRIC_NAME", conf.metric_name, "scaling.E005", None),
        ("SCALING_WORKER_TYPE", conf.worker_type, "scaling.E005", None),
    ):
        error = _name_error(name, value, check_id, hints)
        if error:
            errors.append(error)
    if conf.audit_retention_days is None or conf.audit_retention_days < 1:
        errors.append(
            Error(
                f"SCALING_AUDIT_RETENTION_DAYS is {conf.audit_retention_raw!r}.",
                hint="Set SCALING_AUDIT_RETENTION_DAYS to a whole number of days, 1 or more.",
                id="scaling.E006",
            )
        )
    if not conf.state_url:
        errors.append(
            Error(
                "SCALING_STATE_URL is not set: slot claims and the audit spool need a store.",
                hint="Set SCALING_STATE_URL to a Redis URL (production) or file:///some/dir.",
                id="scaling.E007",
            )
        )
    elif not conf.state_url.startswith(("redis://", "rediss://", "file://")):
        errors.append(
            Error(
                # The scheme only: the rest of a URL may hold a password.
                f"SCALING_STATE_URL starts with {_scheme(conf.state_url)!r}, "
                "neither redis:// nor file://.",
                hint="Set SCALING_STATE_URL to a Redis URL (production) or file:///some/dir.",
                id="scaling.E007",
            )
        )
    problem = backlog_source_problem()
    if problem:
        errors.append(
            Error(
                problem,
                hint="Set SCALING_BACKLOG_SOURCE to the dotted path of a class or object with "
                "backlog_get() (see scaling.port).",
                id="scaling.E009",
            )
        )
    return errors
