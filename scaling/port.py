"""The backlog port: what ``scaling`` needs from the host's work, and how it finds it.

``scaling`` imports no app of the host. The host names its implementation in
``SCALING_BACKLOG_SOURCE`` (a dotted path to a class, made with no arguments,
or to an object) and ``scaling`` asks it through the shapes below:

- every host: ``backlog_get()`` → :class:`Backlog` (waiting, in progress, the
  oldest waiting item's age). That is all publishing, the policy, the alarms and
  the audit need.
- hosts whose workers hold leases (:class:`LeaseHooks`): the lease period,
  recovering expired leases, the busy instances and what they hold, the last
  recoveries. With them come lease recovery, scale-in protection and the drain
  hook; without them those parts say plainly that they are off.
- optionally ``processing_seconds_recent(since=, limit=)``: how long recent
  items took, for ``simulate_scaling --from-history``.

``scaling.checks`` reports a missing, unimportable or wrongly shaped source at
start-up (scaling.E009); the functions here never raise for it after that.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable

from django.conf import settings
from django.utils.module_loading import import_string

SETTING = "SCALING_BACKLOG_SOURCE"
BACKLOG_METHODS = ("backlog_get",)
LEASE_METHODS = (
    "lease_seconds",
    "leases_recover_expired",
    "leases_by_instance",
    "work_in_progress",
    "recoveries_recent",
)
HISTORY_METHOD = "processing_seconds_recent"


@dataclass(frozen=True)
class Backlog:
    """The host's work that counts as backlog, measured at one moment."""

    waiting: int  # no worker has it yet
    in_progress: int  # a worker has it
    oldest_waiting_at: datetime | None  # when the longest-waiting item started waiting
    measured_at: datetime

    @property
    def total(self) -> int:
        return self.waiting + self.in_progress

    @property
    def oldest_waiting_seconds(self) -> float | None:
        if self.oldest_waiting_at is None:
            return None
        return max(0.0, (self.measured_at - self.oldest_waiting_at).total_seconds())


@dataclass(frozen=True)
class InstanceLeases:
    """The in-progress items one instance holds."""

    instance_id: str  # "" for items whose lease names no instance
    processing: int
    live: int  # of those, how many hold a lease that has not run out
    lease_expires_at: datetime | None  # the latest expiry among them


@dataclass(frozen=True)
class WorkInProgress:
    """One in-progress item: the instance that holds its lease and how long it has run."""

    video_id: int  # the host's id of the item (the name is the contract's JSON key)
    instance_id: str  # "" when no lease names one
    seconds: int | None  # since processing started (None: unknown)


@dataclass(frozen=True)
class Recovery:
    """One recovery: an item whose lease ran out, put back or given up."""

    video_id: int
    status: str
    attempts: int
    instance_id: str  # the instance that held the lost lease ("" if none was known)
    worker_id: str
    recovered_at: datetime


@runtime_checkable
class BacklogSource(Protocol):
    def backlog_get(self) -> Backlog: ...


@runtime_checkable
class LeaseHooks(Protocol):
    def lease_seconds(self) -> int: ...

    def leases_recover_expired(self) -> int:
        """Recover every expired lease now; the number of items recovered."""
        ...

    def leases_by_instance(self) -> list[InstanceLeases]: ...

    def work_in_progress(self, *, limit: int) -> list[WorkInProgress]: ...

    def recoveries_recent(self, *, limit: int) -> list[Recovery]: ...


class BacklogSourceError(Exception):
    """SCALING_BACKLOG_SOURCE is missing, not importable or of the wrong shape."""


def _missing(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not callable(getattr(obj, name, None))]


def _calls(names: list[str]) -> str:
    return ", ".join(f"{name}()" for name in names)


def _load(path: str) -> Any:
    if not path:
        raise BacklogSourceError(
            f"{SETTING} is not set: name the host's implementation of "
            "scaling.port.BacklogSource (a dotted path, e.g. 'myapp.backlog.Source')."
        )
    try:
        found = import_string(path)
    except ImportError as exc:
        raise BacklogSourceError(f"{SETTING} {path!r} cannot be imported ({exc}).") from exc
    try:
        source = found() if inspect.isclass(found) else found
    except Exception as exc:
        raise BacklogSourceError(f"{SETTING} {path!r} could not be made: {exc}") from exc
    missing = _missing(source, BACKLOG_METHODS)
    if missing:
        raise BacklogSourceError(
            f"{SETTING} {path!r} has no {_calls(missing)}: it must implement "
            "scaling.port.BacklogSource."
        )
    partial = _missing(source, LEASE_METHODS)
    if partial and len(partial) < len(LEASE_METHODS):
        raise BacklogSourceError(
            f"{SETTING} {path!r} has some lease hooks but not {_calls(partial)}: "
            "implement all of scaling.port.LeaseHooks, or none."
        )
    return source


def source_path() -> str:
    return str(getattr(settings, SETTING, "") or "").strip()


@lru_cache(maxsize=4)
def _source_for(path: str) -> Any:
    return _load(path)


def backlog_source_problem() -> str | None:
    """The sentence the system check shows, or None when the source is usable."""
    try:
        _source_for(source_path())
    except BacklogSourceError as exc:
        return str(exc)
    return None


def backlog_source() -> BacklogSource:
    source: BacklogSource = _source_for(source_path())
    return source


def lease_hooks() -> LeaseHooks | None:
    """The host's lease hooks, or None when its workers hold no leases."""
    source = _source_for(source_path())
    return None if _missing(source, LEASE_METHODS) else source


def processing_history(*, since: datetime, limit: int) -> list[float] | None:
    """Recent processing durations in seconds, or None when the host offers none."""
    source = _source_for(source_path())
    if not callable(getattr(source, HISTORY_METHOD, None)):
        return None
    history: list[float] = getattr(source, HISTORY_METHOD)(since=since, limit=limit)
    return history


LEASES_OFF = (
    f"off: the backlog source ({SETTING}) has no lease hooks, so its workers hold no "
    "leases to recover, protect or drain"
)
