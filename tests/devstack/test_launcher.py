"""`make run`: the processes honcho runs, the policy installed before them, the stop order."""

from __future__ import annotations

import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from devstack import launcher
from devstack.processes import StackManager, StackProcess, stack_processes
from scaling.policy.options import policy_options_parse

BASE_DIR = Path(__file__).resolve().parents[2]
PY = "/venv/bin/python"


def test_the_local_stack_runs_six_named_processes() -> None:
    processes = stack_processes(local=True, python=PY)
    assert [p.name for p in processes] == ["aws", "web", "worker", "beat", "control", "fleet"]
    by_name = {p.name: p.argv for p in processes}
    assert by_name["aws"] == (
        PY,
        "-m",
        "devstack.awsserver",
        "--host",
        "127.0.0.1",
        "--port",
        "5000",
    )
    assert by_name["web"] == (PY, "manage.py", "runserver", "127.0.0.1:8000", "--noreload")
    assert by_name["control"] == (PY, "-m", "devstack.controlplane")
    assert by_name["fleet"] == (PY, "-m", "devstack.fleet")
    assert by_name["worker"][:5] == (PY, "-m", "celery", "-A", "academy")
    assert "worker" in by_name["worker"]
    assert "beat" in by_name["beat"]


def test_against_real_aws_there_is_no_endpoint_control_plane_or_fleet() -> None:
    assert [p.name for p in stack_processes(local=False, python=PY)] == ["web", "worker", "beat"]


def test_a_command_line_is_the_exec_of_its_quoted_argv() -> None:
    process = StackProcess("web", ("/a dir/python", "manage.py", "runserver"))
    assert process.command == "exec '/a dir/python' manage.py runserver"
    assert shlex.split(process.command)[1:] == list(process.argv)


def test_the_fleet_stops_first_and_the_endpoint_last() -> None:
    manager = StackManager()
    for process in stack_processes(local=True, python=PY):
        manager.add(process, env={}, cwd=str(BASE_DIR))
    assert manager.stop_waves() == [["fleet"], ["web", "worker", "beat", "control"], ["aws"]]


def test_without_the_fleet_there_are_no_empty_waves() -> None:
    manager = StackManager()
    for process in stack_processes(local=False, python=PY):
        manager.add(process, env={}, cwd=str(BASE_DIR))
    assert manager.stop_waves() == [["web", "worker", "beat"]]


# --- The policy installed before the processes start --------------------------


def test_the_local_policy_fits_the_ten_second_slots() -> None:
    env = {"SCALING_PUBLISH_INTERVAL_SECONDS": "10", "VIDEO_WORKER_HOLD_SECONDS": "20"}
    argv = launcher.policy_argv(env, boot_seconds=10)
    assert argv == [
        "manage.py",
        "install_scaling_policy",
        "--warmup",
        "20",
        "--acceptable-wait",
        "60",
        "--processing-time",
        "20",
    ]
    flags = dict(zip(argv[2::2], argv[3::2], strict=True))
    options = policy_options_parse(
        asg_name=None,
        mode=None,
        target_value=None,
        acceptable_wait=flags["--acceptable-wait"],
        processing_time=flags["--processing-time"],
        warmup=flags["--warmup"],
    )
    assert (options.mode, options.target_value, options.warmup_seconds) == ("per-instance", 3, 20)


@pytest.mark.parametrize(
    ("env", "boot", "expected_tail"),
    [
        pytest.param(
            {"SCALING_PUBLISH_INTERVAL_SECONDS": "30", "VIDEO_WORKER_HOLD_SECONDS": "5"},
            4,
            ["--warmup", "34", "--acceptable-wait", "60", "--processing-time", "5"],
            id="thirty-second-slots",
        ),
        pytest.param(
            {"VIDEO_WORKER_HOLD_SECONDS": "0"},
            10,
            ["--warmup", "20", "--target-value", "3"],
            id="no-hold-no-division",
        ),
        pytest.param({}, 0, ["--warmup", "10", "--target-value", "3"], id="nothing-set"),
    ],
)
def test_the_warmup_is_the_boot_delay_plus_one_slot(
    env: dict[str, str], boot: int, expected_tail: list[str]
) -> None:
    assert launcher.policy_argv(env, boot_seconds=boot)[2:] == expected_tail


def _completed(returncode: int, stdout: str = "", stderr: str = "") -> Any:
    return subprocess.CompletedProcess([], returncode, stdout=stdout, stderr=stderr)


def test_an_installed_policy_is_summed_up_by_its_first_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[list[str]] = []

    def run(args: list[str], **kwargs: Any) -> Any:
        seen.append(args)
        assert kwargs["env"]["AWS_ENDPOINT_URL"] == "http://127.0.0.1:5000"
        return _completed(0, "Group g (r), mode per-instance: target 3\nDone: 11 created.\n")

    monkeypatch.setattr(launcher.subprocess, "run", run)
    env = {"AWS_ENDPOINT_URL": "http://127.0.0.1:5000", "VIDEO_WORKER_HOLD_SECONDS": "20"}
    assert launcher.policy_install(env, boot_seconds=10) == (
        "Group g (r), mode per-instance: target 3"
    )
    assert seen[0][:3] == [sys.executable, "manage.py", "install_scaling_policy"]


def test_a_failed_install_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    said = "CommandError: Auto Scaling group 'academy-video-worker-asg' not found.\n"
    monkeypatch.setattr(launcher.subprocess, "run", lambda *a, **k: _completed(1, "", said))
    with pytest.raises(launcher.SetupError) as caught:
        launcher.policy_install({}, boot_seconds=10)
    assert str(caught.value) == (
        "installing the scaling policy on the local group failed (exit 1): "
        "CommandError: Auto Scaling group 'academy-video-worker-asg' not found."
    )


def test_a_failed_setup_stops_make_run_with_one_line_and_exit_1(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    aborted = []

    def fail(manager: StackManager, env: dict[str, str], *, aws: Any) -> list[str]:
        raise launcher.SetupError("installing the scaling policy on the local group failed")

    monkeypatch.setattr(launcher, "_aws_configured", lambda: False)
    monkeypatch.setattr(launcher, "_setup", fail)
    monkeypatch.setattr(StackManager, "abort", lambda self: aborted.append(True))
    monkeypatch.setattr(StackManager, "loop", lambda self: pytest.fail("started anyway"))

    assert launcher.main() == 1
    assert capsys.readouterr().err == (
        "make run: installing the scaling policy on the local group failed\n"
    )
    assert aborted == [True]


def test_a_port_in_use_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(launcher.SetupError) as caught:
            launcher._port_check("127.0.0.1", port, "the web server")
    assert str(caught.value) == (
        f"127.0.0.1:{port} is in use, and the web server needs it: is another `make run` "
        "still running? Stop it first."
    )


def test_the_last_lines_say_where_to_look(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ACADEMY_VAR_DIR", raising=False)
    lines = launcher.where_to_look(local=True, password_file=Path("/v/admin-password.txt"))
    text = "\n".join(lines)
    assert lines[0] == (
        "Ready. Admin: http://127.0.0.1:8000/admin/  login: admin, password in "
        "/v/admin-password.txt"
    )
    for command in ("make status", "make burst COUNT=30", "make demo"):
        assert f"  {command} " in text
    assert "make demo" not in "\n".join(
        launcher.where_to_look(local=False, password_file=Path("/v/p"))
    )


# --- The stop, with real processes ------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import signal, sys, time
    name, log, linger = sys.argv[1], sys.argv[2], float(sys.argv[3])
    def write(text):
        with open(log, "a") as f:
            f.write(text + "\\n")
    def stop(signum, frame):
        write(name + " TERM")
        time.sleep(linger)
        write(name + " exit")
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    print(name + " up", flush=True)
    while True:
        time.sleep(0.05)
    """
)

_RUNNER = textwrap.dedent(
    """
    import sys
    from devstack.processes import StackManager, StackProcess
    child, log = sys.argv[1], sys.argv[2]
    manager = StackManager()
    def add(name, linger):
        argv = (sys.executable, "-c", child, name, log, str(linger))
        manager.add(StackProcess(name, argv), env=None, cwd=None)
    add("aws", 0)
    manager.start_early("aws")
    add("web", 0)
    add("fleet", 0.7)
    manager.loop()
    sys.exit(manager.returncode)
    """
)


def test_ctrl_c_stops_the_fleet_before_web_and_the_endpoint_last(tmp_path: Path) -> None:
    log = tmp_path / "stops.log"
    runner = subprocess.Popen(
        [sys.executable, "-c", _RUNNER, _CHILD, str(log)],
        cwd=BASE_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert runner.stdout is not None
        up: set[str] = set()
        deadline = time.monotonic() + 30
        while up != {"aws", "web", "fleet"} and time.monotonic() < deadline:
            line = runner.stdout.readline()
            if line.rstrip().endswith(" up"):
                up.add(line.split("|", 1)[1].split()[0])
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=30)
    finally:
        if runner.poll() is None:
            runner.kill()
    assert log.read_text().splitlines() == [
        "fleet TERM",
        "fleet exit",
        "web TERM",
        "web exit",
        "aws TERM",
        "aws exit",
    ]
    assert runner.returncode == 130
    assert "system | SIGINT received" in output
    assert "sending SIGKILL" not in output
