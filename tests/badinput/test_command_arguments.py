"""Bad arguments for the commands whose arguments had no table yet.

install_scaling_policy and simulate_scaling have their tables in
tests/scaling/ (test_install_scaling_policy.py, test_simulator.py), as do
check_internal_api's URLs (test_check_internal_api.py). Here: publish_backlog,
scaling_status and check_internal_api's --timeout. Each bad argument gives its
exact message in-process, and from the shell a non-zero exit without a
traceback (DESIGN.md: "clear one-line errors on stderr, never a traceback").
"""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from tests.badinput.manage_run import manage_run

PARSE_ERRORS = [
    pytest.param("publish_backlog", ["--bogus"], "unrecognized arguments: --bogus", id="pb-flag"),
    pytest.param("publish_backlog", ["yes"], "unrecognized arguments: yes", id="pb-positional"),
    pytest.param(
        "publish_backlog",
        ["--json=1"],
        "argument --json: ignored explicit argument '1'",
        id="pb-json-value",
    ),
    pytest.param(
        "publish_backlog",
        ["--dry-run=false"],
        "argument --dry-run: ignored explicit argument 'false'",
        id="pb-dry-run-value",
    ),
    pytest.param(
        "scaling_status",
        ["--asg-name"],
        "argument --asg-name: expected one argument",
        id="st-asg-name-no-value",
    ),
    pytest.param("scaling_status", ["extra"], "unrecognized arguments: extra", id="st-positional"),
    pytest.param(
        "scaling_status",
        ["--json=yes"],
        "argument --json: ignored explicit argument 'yes'",
        id="st-json-value",
    ),
    pytest.param(
        "check_internal_api",
        [],
        "the following arguments are required: URL",
        id="ci-no-url",
    ),
    pytest.param(
        "check_internal_api",
        ["http://127.0.0.1:1", "--timeout", "x"],
        "argument --timeout: invalid float value: 'x'",
        id="ci-timeout-word",
    ),
]


@pytest.mark.parametrize(("command", "argv", "message"), PARSE_ERRORS)
def test_parse_error_in_process(command: str, argv: list[str], message: str) -> None:
    with pytest.raises(CommandError) as raised:
        call_command(command, *argv, stdout=StringIO(), stderr=StringIO())

    assert str(raised.value) == f"{message}."


@pytest.mark.parametrize(("command", "argv", "message"), PARSE_ERRORS)
def test_parse_error_from_the_shell(
    command: str, argv: list[str], message: str, tmp_path: Path
) -> None:
    done = manage_run([command, *argv], {}, tmp_path)

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == f"CommandError: {message}.\n"
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("command", ["publish_backlog", "scaling_status", "check_internal_api"])
def test_parse_error_from_the_shell_is_one_line(command: str, tmp_path: Path) -> None:
    done = manage_run([command, "--bogus"], {}, tmp_path)

    assert done.stderr.count("\n") == 1


# --- check_internal_api --timeout ------------------------------------------------------


@pytest.mark.parametrize("timeout", ["0", "-1", "-0.5", "-inf"])
def test_timeout_not_positive(timeout: str, settings: Any) -> None:
    settings.INTERNAL_API_KEYS = ["k"]

    with pytest.raises(CommandError) as raised:
        call_command("check_internal_api", "http://127.0.0.1:1", f"--timeout={timeout}")

    assert str(raised.value) == "--timeout must be a positive number of seconds."


@pytest.mark.parametrize("timeout", ["nan", "inf"])
def test_timeout_not_finite(timeout: str, settings: Any) -> None:
    settings.INTERNAL_API_KEYS = ["k"]

    with pytest.raises(CommandError) as raised:
        call_command("check_internal_api", "http://127.0.0.1:1", f"--timeout={timeout}")

    assert str(raised.value) == "--timeout must be a positive number of seconds."


# --- edge values that are accepted ------------------------------------------------------


@pytest.mark.django_db
def test_publish_backlog_takes_an_abbreviated_flag(aws: dict[str, str]) -> None:
    # argparse's prefix matching: --dry means --dry-run, so it never publishes.
    out = StringIO()
    call_command("publish_backlog", "--dry", "--json", stdout=out)

    result = json.loads(out.getvalue())
    assert (result["status"], result["published"], result["audit"]) == ("dry-run", False, "none")


@pytest.mark.django_db
def test_scaling_status_unknown_group_says_so_and_exits_0(aws: dict[str, str]) -> None:
    out = StringIO()
    call_command("scaling_status", "--asg-name=no-such-asg", stdout=out)

    assert out.getvalue().splitlines() == [
        "Group no-such-asg (ap-northeast-2)",
        "Backlog in the database now: 0 (uploaded 0, processing 0).",
        "Last 12 slots: nothing recorded.",
        "Published versus database: not compared (nothing published yet).",
        "Capacity: unavailable (group no-such-asg does not exist in region ap-northeast-2: "
        "check SCALING_ASG_NAME / AWS_REGION).",
        "Policies: none installed.",
        "Predictive scaling: none (no predictive scaling policy on no-such-asg: "
        "install_scaling_policy --predictive forecast-only installs academy-backlog-predictive).",
        "Warm pool: unavailable (group no-such-asg does not exist in region ap-northeast-2: "
        "check SCALING_ASG_NAME / AWS_REGION).",
        "Alarms: none.",
        "Target tracking aim: unknown (needs the group and its policies).",
        "Videos being processed: none.",
        "Last recoveries: none.",
        "Fleet: unavailable (group no-such-asg does not exist in region ap-northeast-2: "
        "check SCALING_ASG_NAME / AWS_REGION).",
        "Lifecycle hook academy-drain-on-terminate: not installed (install_scaling_policy "
        "installs it).",
    ]


@pytest.mark.django_db
def test_scaling_status_empty_group_name_is_refused(aws: dict[str, str]) -> None:
    with pytest.raises(CommandError) as raised:
        call_command("scaling_status", "--asg-name=", stdout=StringIO())

    assert str(raised.value) == "--asg-name must be 1 to 255 characters."
