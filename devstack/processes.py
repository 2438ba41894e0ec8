"""`make run`'s processes, run by honcho (a Procfile runner) with each line named.

honcho's ``Manager`` is used as a library rather than ``honcho start`` on a
Procfile, for two things a Procfile cannot say:

- one process starts before the others: ``aws`` (moto's server) must answer
  before the launcher creates the queue and the group, migrates and installs the
  policy; ``start_early`` starts it alone, the rest start in ``loop()``;
- the order of the stop. On Ctrl-C (SIGINT) or SIGTERM, honcho's own ``terminate``
  sends SIGTERM to every process group at once (each process runs in a session of
  its own, so the terminal's Ctrl-C reaches none of them directly), and SIGKILL to
  the groups left 5 s (``honcho.manager.KILL_WAIT``) after the first process exited.
  Stopped all at once, the web server would be gone before the fleet's video
  workers release their videos through it (they do so on SIGTERM), and a group
  signal reaches the Celery worker's pool child behind its parent's back (the
  parent then logs an error and hangs past its warm shutdown). ``StackManager``
  stops in waves instead, each process's SIGTERM to the process itself (it stops
  its own children: the fleet its workers, Celery its pool): ``first`` (the
  fleet), waited for up to ``FIRST_WAVE_SECONDS``; then everything else (web,
  worker, beat, control); then ``last`` (aws, which the others call while they
  stop), each of those up to ``LATER_WAVE_SECONDS``. honcho's SIGKILL to the
  whole group waits until the waves are done, then takes whatever is left.

Each line reads ``HH:MM:SS name | text``; honcho's own lines are named ``system``.
"""

from __future__ import annotations

import contextlib
import datetime
import multiprocessing
import os
import queue
import shlex
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from honcho.manager import SYSTEM_PRINTER_NAME, Manager
from honcho.printer import Message

from academy.celery import beat_argv, worker_argv

WEB_HOST = "127.0.0.1"
WEB_PORT = 8000
AWS_HOST = "127.0.0.1"
AWS_PORT = 5000
# The fleet's workers get SIGTERM with it and it waits for them (devstack.fleet's grace is
# 6 s): the web server stays up until then, or this long at most.
FIRST_WAVE_SECONDS = 15.0
# Each wave after the first: the Celery worker's warm shutdown waits for a running tick.
LATER_WAVE_SECONDS = 10.0
STOP_FIRST = ("fleet",)
STOP_LAST = ("aws",)


@dataclass(frozen=True)
class StackProcess:
    name: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        # honcho runs a command line through the shell; exec leaves the process alone in
        # its group, so a signal to the group reaches it and nothing between.
        return "exec " + shlex.join(self.argv)


def stack_processes(*, local: bool, python: str) -> list[StackProcess]:
    """What `make run` starts, in order. aws, control and fleet only on the local endpoint:
    the control plane and the fleet would otherwise scale a real group."""
    processes = []
    if local:
        argv = (python, "-m", "devstack.awsserver", "--host", AWS_HOST, "--port", str(AWS_PORT))
        processes.append(StackProcess("aws", argv))
    processes += [
        StackProcess(
            "web",
            (python, "manage.py", "runserver", f"{WEB_HOST}:{WEB_PORT}", "--noreload"),
        ),
        StackProcess("worker", (python, *worker_argv("devstack-worker"))),
        StackProcess("beat", (python, *beat_argv())),
    ]
    if local:
        processes += [
            StackProcess("control", (python, "-m", "devstack.controlplane")),
            StackProcess("fleet", (python, "-m", "devstack.fleet")),
        ]
    return processes


def group_alive(pid: int) -> bool:
    """Whether any process is left in the process group ``pid`` leads."""
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StackManager(Manager):
    """honcho's Manager, with one process started early and the stop in waves."""

    _terminating: bool  # honcho's: set once terminate() ran

    def __init__(
        self,
        *,
        first: Sequence[str] = STOP_FIRST,
        last: Sequence[str] = STOP_LAST,
        wave_seconds: float = FIRST_WAVE_SECONDS,
        printer: Any = None,
    ) -> None:
        super().__init__(printer=printer)
        self._first = tuple(first)
        self._last = tuple(last)
        self._wave_seconds = wave_seconds
        self._stopping: threading.Thread | None = None

    def add(self, process: StackProcess, *, env: dict[str, str], cwd: str) -> None:
        self.add_process(process.name, process.command, env=env, cwd=cwd)

    def start_early(self, name: str, *, timeout: float = 10.0) -> int:
        """Start ``name`` now, alone; ``loop()`` starts the others. Its pid."""
        entry = self._processes[name]
        self._process_start(name, entry)
        try:
            # A lone process's first event is its start (sent right after Popen).
            message = self.events.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{name} did not start within {timeout:g} s") from None
        entry["pid"] = message.data["pid"]
        self._system_print(f"{name} started (pid={entry['pid']})\n")
        return int(entry["pid"])

    def say(self, text: str) -> None:
        """A ``system`` line, printed in turn with the processes' lines (any thread)."""
        self.events.put(
            Message(
                type="line",
                data=text if text.endswith("\n") else text + "\n",
                time=datetime.datetime.now(),
                name=SYSTEM_PRINTER_NAME,
                colour=None,
            )
        )

    def stop_waves(self) -> list[list[str]]:
        names = list(self._processes)
        first = [n for n in self._first if n in names]
        last = [n for n in self._last if n in names]
        middle = [n for n in names if n not in first and n not in last]
        return [wave for wave in (first, middle, last) if wave]

    def terminate(self) -> None:
        """Called by ``loop()`` on SIGINT / SIGTERM, or once a process exited by itself."""
        if self._terminating:
            return
        self._terminating = True
        # A thread, so that loop() keeps printing the lines of what is stopping.
        self._stopping = threading.Thread(target=self._stop_in_waves, name="stack-stop")
        self._stopping.daemon = True
        self._stopping.start()

    def kill(self) -> None:
        """honcho's loop calls this 5 s after the first exit, then at each turn: SIGKILL to
        every group left. Held back while the waves, each with its own limit, still run."""
        if self._stopping is not None and self._stopping.is_alive():
            return
        super().kill()

    def note(self, text: str) -> None:
        """A ``system`` line printed now (before ``loop()``, from the main thread)."""
        self._system_print(text if text.endswith("\n") else text + "\n")

    def abort(self, *, timeout: float = 5.0) -> None:
        """Before ``loop()``: stop what ``start_early`` started and print its lines."""
        pids = [e["pid"] for e in self._processes.values() if e.get("pid") is not None]
        for pid in pids:
            self._procmgr.terminate(pid)
        deadline = time.monotonic() + timeout
        while any(group_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            self._procmgr.kill(pid)
        for entry in self._processes.values():
            if "process" in entry:
                entry["process"].join(timeout=timeout)
        while True:
            try:
                message = self.events.get(timeout=0.2)
            except queue.Empty:
                break
            if message.type == "line":
                self._printer.write(message)

    def _stop_in_waves(self) -> None:
        for wave in self.stop_waves():
            seconds = self._wave_seconds if wave[0] in self._first else LATER_WAVE_SECONDS
            deadline = time.monotonic() + seconds
            signalled: dict[str, int] = {}
            while time.monotonic() < deadline:
                for name in wave:
                    pid = self._processes[name].get("pid")
                    if name not in signalled and pid is not None and group_alive(pid):
                        self.say(f"sending SIGTERM to {name} (pid {pid})")
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGTERM)
                        signalled[name] = pid
                started = all(self._processes[n].get("pid") is not None for n in wave)
                if started and not any(group_alive(pid) for pid in signalled.values()):
                    break
                time.sleep(0.1)

    def _start(self) -> None:
        for name, entry in self._processes.items():
            if "process" not in entry:
                self._process_start(name, entry)

    def _process_start(self, name: str, entry: dict[str, Any]) -> None:
        entry["process"] = multiprocessing.Process(
            name=name, target=entry["obj"].run, args=(self.events, True)
        )
        entry["process"].start()
