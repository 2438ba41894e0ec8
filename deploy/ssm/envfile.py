"""Env files and SSM parameters, shared by ``env_to_ssm`` and ``ssm_to_env``.

These commands stand alone on purpose: ``ssm_to_env`` writes the very file
that ``academy/settings.py`` will read, so they run before the app has an
environment and cannot build their client through Django settings or
``scaling.aws.ssm_client()``. The one boto3 client here therefore takes its
region from ``--region`` / ``AWS_REGION`` / ``AWS_DEFAULT_REGION``, its
endpoint from ``AWS_ENDPOINT_URL`` (boto3 reads it itself), and its timeouts
and retry mode from ``scaling.aws.ADMIN_CONFIG`` so that they never drift.

Nothing here prints or logs a value: messages name parameters and line
numbers only, and any text that comes back from AWS is passed through
``redact`` before it is shown.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from scaling.aws import ADMIN_CONFIG

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PREFIX_RE = re.compile(r"^(/[A-Za-z0-9_.\-]+)+/?$")
# A standard-tier SSM parameter holds at most 4 KB.
MAX_VALUE_BYTES = 4096


class EnvFileError(ValueError):
    """A user mistake, told in one sentence that holds no value."""


def prefix_normalise(prefix: str) -> str:
    if not PREFIX_RE.match(prefix):
        raise EnvFileError(
            f"--prefix {prefix!r} is not a parameter path: use e.g. /academy/production"
        )
    return prefix.rstrip("/") + "/"


def _unquote(raw: str, line_no: int) -> str:
    value = raw.strip()
    if len(value) >= 2 and value[0] == value[-1] == "'":
        return value[1:-1]
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner, out, i = value[1:-1], [], 0
        while i < len(inner):
            char = inner[i]
            if char == "\\" and i + 1 < len(inner) and inner[i + 1] in '"\\$`':
                out.append(inner[i + 1])
                i += 2
                continue
            if char == '"':
                raise EnvFileError(f"line {line_no}: an unescaped double quote inside quotes")
            out.append(char)
            i += 1
        return "".join(out)
    if value[:1] in ("'", '"'):
        raise EnvFileError(f"line {line_no}: a quote is opened and never closed")
    return value


def env_parse(text: str) -> dict[str, str]:
    """NAME=value lines (systemd EnvironmentFile style); '#' comments and blank lines skipped."""
    values: dict[str, str] = {}
    first_seen: dict[str, int] = {}
    for line_no, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("export "):
            stripped = stripped[len("export ") :].lstrip()
        name, sep, raw = stripped.partition("=")
        name = name.strip()
        if not sep or not NAME_RE.match(name):
            raise EnvFileError(f"line {line_no}: expected NAME=value")
        if name in first_seen:
            raise EnvFileError(
                f"line {line_no}: {name} is set twice (first on line {first_seen[name]})"
            )
        value = _unquote(raw, line_no)
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise EnvFileError(f"line {line_no}: the value of {name} is longer than 4096 bytes")
        first_seen[name] = line_no
        values[name] = value
    return values


def _quote(value: str) -> str:
    # Double quotes with \\ \" \$ \` escaped: read back the same by systemd's
    # EnvironmentFile, by a POSIX shell's `. file`, and by env_parse above.
    for char in ("\\", '"', "$", "`"):
        value = value.replace(char, "\\" + char)
    return '"' + value + '"'


def env_render(values: Mapping[str, str], *, header: str) -> str:
    lines = [f"# {header}"]
    for name in sorted(values):
        value = values[name]
        if not NAME_RE.match(name):
            raise EnvFileError(f"{name!r} is not a usable environment variable name")
        if "\n" in value or "\r" in value or "\0" in value:
            raise EnvFileError(f"the value of {name} holds a line break, which an env file cannot")
        lines.append(f"{name}={_quote(value)}")
    return "\n".join(lines) + "\n"


def redact(text: str, secrets: Iterable[str]) -> str:
    for secret in sorted((s for s in secrets if len(s) >= 3), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def region_resolve(given: str | None) -> str:
    region = given or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not region:
        raise EnvFileError("no AWS region: pass --region or set AWS_REGION")
    return region


def ssm_client_build(*, region: str) -> SSMClient:
    return boto3.session.Session(region_name=region).client("ssm", config=ADMIN_CONFIG)


def ssm_values_get(client: SSMClient, *, prefix: str) -> dict[str, tuple[str, str]]:
    """{NAME: (value, type)} for the parameters directly under ``prefix``."""
    found: dict[str, tuple[str, str]] = {}
    paginator = client.get_paginator("get_parameters_by_path")
    for page in paginator.paginate(Path=prefix, Recursive=False, WithDecryption=True):
        for parameter in page["Parameters"]:
            name = parameter["Name"][len(prefix) :]
            found[name] = (parameter.get("Value", ""), parameter.get("Type", ""))
    return found


def ssm_error_line(exc: BotoCoreError | ClientError, secrets: Iterable[str]) -> str:
    """One line for an SSM failure, with every secret value blanked out."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        message = redact(str(error.get("Message", "")), secrets)
        return f"error: SSM refused: {error.get('Code', 'error')}: {message}"
    return f"error: cannot reach SSM: {redact(str(exc), secrets)}"


def command_run(body: Callable[[list[str]], int]) -> int:
    """Run a command's ``body``; a mistake or an SSM failure becomes one line on stderr, exit 1.

    ``body`` gets the list it adds every secret value to as soon as it knows
    one, so that an SSM error message shown afterwards has them blanked out.
    """
    secrets: list[str] = []
    try:
        return body(secrets)
    except EnvFileError as exc:
        print(f"error: {exc}.", file=sys.stderr)
        return 1
    except (BotoCoreError, ClientError) as exc:
        print(ssm_error_line(exc, secrets), file=sys.stderr)
        return 1
