"""Every environment variable settings read, with a bad (or edge) value, as an operator meets it.

Each row runs ``manage.py`` in a subprocess with one changed variable and
asserts the exit code and the exact output. A value refused while settings are
imported gives one line ``error: <sentence>`` and exit 2; a value the system
checks refuse gives Django's check report and exit 1; an edge value that is
accepted shows what it became. ``test_every_setting_has_a_row`` fails as soon as
settings read a name that has no row here.

Cases already pinned elsewhere are not repeated: SECRET_KEY and ALLOWED_HOSTS
missing, DEBUG='maybe', DATABASE_CONNECT_TIMEOUT='3s', SECURE_HSTS_SECONDS='a
year', SECURE_SSL_REDIRECT='sure', a non-PostgreSQL or bad-port DATABASE_URL
(tests/academy/test_settings.py) and each scaling check through Django settings
(tests/scaling/test_checks.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from scaling.audit.internal_auth import MAX_KEY_LENGTH
from tests.academy.env_names import BASE_DIR, settings_env_names
from tests.badinput.manage_run import PRODUCTION_ENV, manage_run

CHECK = ["check"]
DEPLOY = ["check", "--deploy", "--fail-level", "WARNING"]


def _show(expression: str) -> list[str]:
    return [
        "shell",
        "--no-imports",
        "-c",
        f"from django.conf import settings as s; print({expression})",
    ]


def _checks(level: str, *lines: str) -> str:
    body = "".join(f"{line}\n" for line in lines)
    count = len([line for line in lines if line.startswith("?: ")])
    return (
        "SystemCheckError: System check identified some issues:\n\n"
        f"{level}:\n{body}\n"
        f"System check identified {count} issue{'s' if count != 1 else ''} (0 silenced).\n"
    )


def _scaling_error(check_id: str, message: str, hint: str) -> str:
    return _checks("ERRORS", f"?: ({check_id}) {message}", f"\tHINT: {hint}")


@dataclass(frozen=True)
class Row:
    name: str
    value: str
    code: int
    stderr: str  # exact; "{tmp}" stands for the test's temporary directory
    argv: list[str] = field(default_factory=lambda: list(CHECK))
    stdout: str = ""
    production: bool = False  # DEBUG off (SECURE_* are read only then)

    def env(self, tmp: Path) -> dict[str, str]:
        base = dict(PRODUCTION_ENV) if self.production else {}
        return {**base, self.name: self.value.format(tmp=tmp)}


def _error(name: str, value: str, sentence: str, **kwargs: object) -> Row:
    return Row(name, value, 2, f"error: {sentence}\n", **kwargs)  # type: ignore[arg-type]


def _accepted(name: str, value: str, expression: str, shown: str, **kwargs: object) -> Row:
    return Row(name, value, 0, "", _show(expression), f"{shown}\n", **kwargs)  # type: ignore[arg-type]


NOT_A_VAR_DIR = "set ACADEMY_VAR_DIR to a directory this user can write."
HOST_EXAMPLE = "set it to e.g. redis://127.0.0.1:6379/0."
ENDPOINT_FIX = "set it to e.g. http://127.0.0.1:5000, or leave it unset for real AWS."
LEVELS = "set it to DEBUG, INFO, WARNING, ERROR or CRITICAL."
LONG_KEY = "k" * (MAX_KEY_LENGTH + 1)
# Settings take any key; the scaling app's check refuses one no request can present.
LONG_KEY_REPORT = _checks(
    "ERRORS",
    "?: (scaling.E008) INTERNAL_API_KEY (or LAMBDA_INTERNAL_API_KEY) holds a key longer than "
    "512 bytes, which no request can present: set keys of 512 bytes or fewer.",
)
NO_ISSUES = "System check identified no issues (0 silenced).\n"
W009 = (
    "?: (security.W009) Your SECRET_KEY has less than 50 characters, less than 5 unique "
    "characters, or it's prefixed with 'django-insecure-' indicating that it was generated "
    "automatically by Django. Please generate a long and random value, otherwise many of "
    "Django's security-critical features will be vulnerable to attack."
)

TABLE: dict[str, Row] = {
    # --- where local state lives ---------------------------------------------------
    "var-dir-is-a-file": _error(
        "ACADEMY_VAR_DIR",
        "{tmp}/afile",
        "ACADEMY_VAR_DIR: directory '{tmp}/afile' cannot be made (File exists): " + NOT_A_VAR_DIR,
    ),
    "var-dir-under-a-file": _error(
        "ACADEMY_VAR_DIR",
        "{tmp}/afile/var",
        "ACADEMY_VAR_DIR: directory '{tmp}/afile/var' cannot be made (Not a directory): "
        + NOT_A_VAR_DIR,
    ),
    "var-dir-empty-is-the-default": _accepted(
        "ACADEMY_VAR_DIR", "", "s.VAR_DIR", str(BASE_DIR / "var")
    ),
    "static-root-empty-is-the-default": _accepted(
        "STATIC_ROOT", "", "s.STATIC_ROOT", "{tmp}/var/static"
    ),
    # --- database ------------------------------------------------------------------
    "sqlite-file-under-a-file": _error(
        "DATABASE_URL",
        "sqlite:///{tmp}/afile/academy.sqlite3",
        "DATABASE_URL: directory '{tmp}/afile' cannot be made (File exists): "
        "set DATABASE_URL to a file in a directory this user can write.",
    ),
    "connect-timeout-zero-waits-forever": _error(
        "DATABASE_CONNECT_TIMEOUT",
        "0",
        "DATABASE_CONNECT_TIMEOUT='0' is below 1: set it to a whole number, 1 or more.",
    ),
    "connect-timeout-negative": _error(
        "DATABASE_CONNECT_TIMEOUT",
        "-3",
        "DATABASE_CONNECT_TIMEOUT='-3' is below 1: set it to a whole number, 1 or more.",
    ),
    "connect-timeout-fraction": _error(
        "DATABASE_CONNECT_TIMEOUT", "1.5", "DATABASE_CONNECT_TIMEOUT='1.5' is not a whole number."
    ),
    "connect-timeout-spaces": _accepted(
        "DATABASE_CONNECT_TIMEOUT",
        " 7 ",
        "s.DATABASES['default']['OPTIONS']['connect_timeout']",
        "7",
        production=True,
    ),
    "test-database-name-taken-as-is": _accepted(
        "DATABASE_TEST_NAME",
        'test_x"; DROP',
        "s.DATABASES['default']['TEST']['NAME']",
        'test_x"; DROP',
    ),
    # --- Django ----------------------------------------------------------------------
    "debug-y": _error("DEBUG", "y", "DEBUG='y' is not a boolean: set it to true or false."),
    "debug-upper-with-spaces": _accepted("DEBUG", " TRUE ", "s.DEBUG", "True"),
    "secret-key-short": Row(
        "SECRET_KEY", "short", 1, _checks("WARNINGS", W009), DEPLOY, production=True
    ),
    "allowed-hosts-blank-items-dropped": _accepted(
        "ALLOWED_HOSTS",
        " , api.academy.example ,, ",
        "s.ALLOWED_HOSTS",
        "['api.academy.example']",
        production=True,
    ),
    "csrf-origin-without-scheme": Row(
        "CSRF_TRUSTED_ORIGINS",
        "api.academy.example",
        1,
        _checks(
            "ERRORS",
            "?: (4_0.E001) As of Django 4.0, the values in the CSRF_TRUSTED_ORIGINS setting must "
            "start with a scheme (usually http:// or https://) but found api.academy.example. "
            "See the release notes for details.",
        ),
    ),
    "hsts-negative": _error(
        "SECURE_HSTS_SECONDS",
        "-1",
        "SECURE_HSTS_SECONDS='-1' is below 0: set it to a whole number, 0 or more.",
        production=True,
    ),
    "hsts-exponent": _error(
        "SECURE_HSTS_SECONDS",
        "1e6",
        "SECURE_HSTS_SECONDS='1e6' is not a whole number.",
        production=True,
    ),
    "ssl-redirect-two": _error(
        "SECURE_SSL_REDIRECT",
        "2",
        "SECURE_SSL_REDIRECT='2' is not a boolean: set it to true or false.",
        production=True,
    ),
    "log-level-word": _error(
        "LOG_LEVEL", "verbose", f"LOG_LEVEL='verbose' is not a log level: {LEVELS}"
    ),
    "log-level-number": _error("LOG_LEVEL", "20", f"LOG_LEVEL='20' is not a log level: {LEVELS}"),
    "log-level-lower-warn": _accepted("LOG_LEVEL", "warn", "s.LOG_LEVEL", "WARN"),
    "log-level-empty-is-info": _accepted("LOG_LEVEL", " ", "s.LOG_LEVEL", "INFO"),
    # --- Celery ----------------------------------------------------------------------
    "broker-unknown-transport": _error(
        "CELERY_BROKER_URL",
        "nosuch://127.0.0.1",
        f"CELERY_BROKER_URL has an unknown transport 'nosuch': {HOST_EXAMPLE}",
    ),
    # The password in a mistyped URL stays out of the message (and the journal).
    "broker-typo-keeps-password-out": _error(
        "CELERY_BROKER_URL",
        "redsi://:s3cret-pw@127.0.0.1:6379/0",
        f"CELERY_BROKER_URL has an unknown transport 'redsi': {HOST_EXAMPLE}",
    ),
    "broker-host-port-only": _error(
        "CELERY_BROKER_URL", "127.0.0.1:6379", f"CELERY_BROKER_URL is not a URL: {HOST_EXAMPLE}"
    ),
    "broker-empty-is-the-default": _accepted(
        "CELERY_BROKER_URL", "", "s.CELERY_BROKER_URL", "filesystem://"
    ),
    "state-url-unknown-scheme": Row(
        "SCALING_STATE_URL",
        "http://127.0.0.1:6379/0",
        1,
        _scaling_error(
            "scaling.E007",
            "SCALING_STATE_URL starts with 'http://', neither redis:// nor file://.",
            "Set SCALING_STATE_URL to a Redis URL (production) or file:///some/dir.",
        ),
    ),
    "state-url-follows-a-redis-broker": _accepted(
        "SCALING_STATE_URL",
        "",
        "s.SCALING_STATE_URL",
        "redis://127.0.0.1:6379/0",
        production=True,
    ),
    # --- AWS ---------------------------------------------------------------------------
    "region-with-spaces": _error(
        "AWS_REGION",
        "ap northeast 2",
        "AWS_REGION='ap northeast 2' is not an AWS region name: set it to e.g. ap-northeast-2.",
    ),
    "region-leading-dash": _error(
        "AWS_REGION",
        "-ap-northeast-2",
        "AWS_REGION='-ap-northeast-2' is not an AWS region name: set it to e.g. ap-northeast-2.",
    ),
    "old-region-name-is-checked-too": _error(
        "AWS_DEFAULT_REGION",
        "mars/1",
        "AWS_DEFAULT_REGION='mars/1' is not an AWS region name: set it to e.g. ap-northeast-2.",
    ),
    "endpoint-without-scheme": _error(
        "AWS_ENDPOINT_URL",
        "localhost:5000",
        f"AWS_ENDPOINT_URL='localhost:5000' is not an http(s) URL: {ENDPOINT_FIX}",
    ),
    "endpoint-ftp": _error(
        "AWS_ENDPOINT_URL",
        "ftp://127.0.0.1:21",
        f"AWS_ENDPOINT_URL='ftp://127.0.0.1:21' is not an http(s) URL: {ENDPOINT_FIX}",
    ),
    "endpoint-bad-port": _error(
        "AWS_ENDPOINT_URL",
        "http://127.0.0.1:port",
        f"AWS_ENDPOINT_URL='http://127.0.0.1:port' is not an http(s) URL: {ENDPOINT_FIX}",
    ),
    "endpoint-no-host": _error(
        "AWS_ENDPOINT_URL",
        "http://",
        f"AWS_ENDPOINT_URL='http://' is not an http(s) URL: {ENDPOINT_FIX}",
    ),
    "endpoint-blank-is-real-aws": _accepted("AWS_ENDPOINT_URL", "  ", "s.AWS_ENDPOINT_URL", "None"),
    # --- internal API keys -------------------------------------------------------------
    "key-too-long": Row("INTERNAL_API_KEY", LONG_KEY, 1, LONG_KEY_REPORT),
    # 257 characters, 514 bytes: the endpoint would see 514 and refuse every request.
    "key-too-long-in-utf8-bytes": Row("INTERNAL_API_KEY", "ключ" * 64 + "й", 1, LONG_KEY_REPORT),
    # 256 characters, 512 bytes: exactly the limit, and the checks pass.
    "key-at-the-limit-in-utf8-bytes": Row("INTERNAL_API_KEY", "ключ" * 64, 0, "", stdout=NO_ISSUES),
    "key-only-commas": Row(
        "INTERNAL_API_KEY",
        " , ,",
        1,
        _checks(
            "WARNINGS",
            "?: (scaling.W001) No internal API key is configured: the internal backlog "
            "endpoint refuses every request.",
            "\tHINT: Set INTERNAL_API_KEY (several keys comma-separated for rotation).",
        ),
        DEPLOY,
        production=True,
    ),
    "key-rotation-spaces-dropped": _accepted(
        "INTERNAL_API_KEY", " new-key , old-key ", "s.INTERNAL_API_KEYS", "['new-key', 'old-key']"
    ),
    "old-key-name-too-long": Row("LAMBDA_INTERNAL_API_KEY", LONG_KEY, 1, LONG_KEY_REPORT),
    # --- scaling (checked by scaling.checks, read through the environment here) -------
    "interval-45": Row(
        "SCALING_PUBLISH_INTERVAL_SECONDS",
        "45",
        1,
        _scaling_error(
            "scaling.E001",
            "SCALING_PUBLISH_INTERVAL_SECONDS is '45'.",
            "Set SCALING_PUBLISH_INTERVAL_SECONDS to 10, 30 or 60.",
        ),
    ),
    "interval-with-unit": Row(
        "SCALING_PUBLISH_INTERVAL_SECONDS",
        "10s",
        1,
        _scaling_error(
            "scaling.E001",
            "SCALING_PUBLISH_INTERVAL_SECONDS is '10s'.",
            "Set SCALING_PUBLISH_INTERVAL_SECONDS to 10, 30 or 60.",
        ),
    ),
    "namespace-reserved": Row(
        "SCALING_NAMESPACE",
        "AWS/EC2",
        1,
        _scaling_error(
            "scaling.E002",
            "SCALING_NAMESPACE 'AWS/EC2' starts with 'AWS/', which CloudWatch reserves for AWS "
            "services.",
            "Set SCALING_NAMESPACE to a name of your own, e.g. Academy/VideoProcessing.",
        ),
    ),
    "queue-url-other-scheme": Row(
        "SCALING_SQS_QUEUE_URL",
        "sqs://academy-video-jobs",
        1,
        _scaling_error(
            "scaling.E003",
            "SCALING_SQS_QUEUE_URL 'sqs://academy-video-jobs' is not an SQS queue URL.",
            "Set it to https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>, "
            "or leave it unset for no fallback.",
        ),
    ),
    "asg-name-blank": Row(
        "SCALING_ASG_NAME",
        "   ",
        1,
        _scaling_error(
            "scaling.E004",
            "SCALING_ASG_NAME is empty.",
            "Set SCALING_ASG_NAME to the video workers' Auto Scaling group name.",
        ),
    ),
    "metric-name-too-long": Row(
        "SCALING_METRIC_NAME",
        "m" * 256,
        1,
        _scaling_error(
            "scaling.E005",
            "SCALING_METRIC_NAME is longer than 255 characters.",
            "Set SCALING_METRIC_NAME to 1 to 255 characters (default: see .env.example).",
        ),
    ),
    "worker-type-empty": Row(
        "SCALING_WORKER_TYPE",
        "",
        1,
        _scaling_error(
            "scaling.E005",
            "SCALING_WORKER_TYPE is empty.",
            "Set SCALING_WORKER_TYPE to 1 to 255 characters (default: see .env.example).",
        ),
    ),
    "lease-too-short": Row(
        "VIDEO_LEASE_SECONDS",
        "2",
        1,
        _scaling_error(
            "video.E001",
            "VIDEO_LEASE_SECONDS is '2'.",
            "Set VIDEO_LEASE_SECONDS to a whole number of seconds from 3 to 43200 "
            "(default 120; workers renew every third of it).",
        ),
    ),
    "attempts-zero": Row(
        "VIDEO_MAX_ATTEMPTS",
        "0",
        1,
        _scaling_error(
            "video.E002",
            "VIDEO_MAX_ATTEMPTS is '0'.",
            "Set VIDEO_MAX_ATTEMPTS to a whole number from 1 to 100 (default 3).",
        ),
    ),
    "worker-job-not-a-path": Row(
        "VIDEO_WORKER_JOB",
        "hold job",
        1,
        _scaling_error(
            "video.E003",
            "VIDEO_WORKER_JOB 'hold job' is not a dotted path.",
            "Set VIDEO_WORKER_JOB to package.module.callable (default video.worker.jobs.hold_job).",
        ),
    ),
    "worker-key-too-long": Row(
        "WORKER_API_KEY",
        LONG_KEY,
        1,
        _checks(
            "ERRORS",
            f"?: (video.E005) WORKER_API_KEY holds a key longer than {MAX_KEY_LENGTH} bytes, "
            f"which no request can present: set keys of {MAX_KEY_LENGTH} bytes or fewer.",
        ),
    ),
    "hold-seconds-as-given": _accepted(
        "VIDEO_WORKER_HOLD_SECONDS", " 2.5 ", "repr(s.VIDEO_WORKER_HOLD_SECONDS)", "' 2.5 '"
    ),
    "fleets-on-one-group": Row(
        "SCALING_FLEETS",
        # Braces doubled: the value goes through str.format (the {tmp} placeholder).
        '[{{"name": "video", "asg_name": "academy-video-worker-asg"}}, {{"name": "ai", '
        '"asg_name": "academy-video-worker-asg", "source": "sqs", "queue_url": '
        '"https://sqs.ap-northeast-2.amazonaws.com/123456789012/ai-jobs"}}]',
        1,
        _scaling_error(
            "scaling.E012",
            "SCALING_FLEETS puts fleets 'video' and 'ai' on one Auto Scaling group "
            "'academy-video-worker-asg': two metrics would fight over it.",
            "Give every fleet its own Auto Scaling group.",
        ),
    ),
    "backlog-source-missing": Row(
        "SCALING_BACKLOG_SOURCE",
        "video.nowhere.Source",
        1,
        _scaling_error(
            "scaling.E009",
            "SCALING_BACKLOG_SOURCE 'video.nowhere.Source' cannot be imported (No module "
            "named 'video.nowhere').",
            "Set SCALING_BACKLOG_SOURCE to the dotted path of a class or object with "
            "backlog_get() (see scaling.port).",
        ),
    ),
    "retention-negative": Row(
        "SCALING_AUDIT_RETENTION_DAYS",
        "-1",
        1,
        _scaling_error(
            "scaling.E006",
            "SCALING_AUDIT_RETENTION_DAYS is '-1'.",
            "Set SCALING_AUDIT_RETENTION_DAYS to a whole number of days, 1 or more.",
        ),
    ),
}

# Names whose every value is taken as given (or refused in another file): the row
# shows what an edge value becomes, and the reason is written down here.
NO_REFUSAL_HERE = {
    "STATIC_ROOT": "a path; only collectstatic writes there",
    "DATABASE_TEST_NAME": "a database name, quoted by Django; only pytest reads it",
    "ALLOWED_HOSTS": "missing or blank is refused in tests/academy/test_settings.py",
    "VIDEO_WORKER_HOLD_SECONDS": "only the stand-in job reads it; manage.py video_worker "
    "refuses a bad value (tests/video/test_video_worker_command.py)",
}


def test_every_setting_has_a_row() -> None:
    covered = {row.name for row in TABLE.values()}
    assert sorted(settings_env_names() - covered) == []
    assert sorted(covered - settings_env_names()) == []


def test_a_name_without_a_refusing_row_says_why() -> None:
    refused = {row.name for row in TABLE.values() if row.code != 0}
    assert sorted(settings_env_names() - refused) == sorted(NO_REFUSAL_HERE)


@pytest.mark.parametrize("row", [pytest.param(row, id=case) for case, row in TABLE.items()])
def test_bad_input(row: Row, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("not a directory")

    result = manage_run(row.argv, row.env(tmp_path), tmp_path)

    assert (result.returncode, result.stderr) == (row.code, row.stderr.format(tmp=tmp_path))
    if row.code == 2:
        assert result.stdout == ""
    elif row.code == 0:
        assert result.stdout == row.stdout.format(tmp=tmp_path)
