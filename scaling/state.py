"""State that must outlive a database outage: slot claims, the audit spool and the
fleet's marks (scaling.fleet: when an instance was last busy, known protected, draining).

Redis in production (the broker's own server); a directory on embedded
defaults. If Redis itself is unreachable the spool falls back to a local
directory, so an audit record is never dropped because a store was down.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlparse

import redis
from django.conf import settings

from scaling.conf import environment_key, scaling_settings

CLAIM_PREFIX = "academy:scaling:slot:"
SPOOL_PREFIX = "academy:scaling:audit-spool:"
UP_SINCE_PREFIX = "academy:scaling:database-up-since:"
MARKS_PREFIX = "academy:scaling:fleet:"
MARKS_KEEP_SECONDS = 24 * 3600  # a kind of mark nobody wrote for a day is dropped (Redis)


class StateUnavailable(Exception):
    """The claim store could not be reached."""


class StateStore(Protocol):
    def slot_claim(self, slot_key: str, ttl_seconds: int) -> bool: ...

    def spool_push(self, record: dict[str, Any]) -> None: ...

    def spool_push_local(self, record: dict[str, Any]) -> None: ...

    def spool_drain(self, write: Callable[[dict[str, Any]], None], limit: int) -> int: ...

    def spool_drain_local(self, write: Callable[[dict[str, Any]], None], limit: int) -> int:
        """Only this host's local files (what was spooled while Redis was down as well)."""
        ...

    def spool_size(self) -> int: ...

    def database_up_since(self, *, healthy: bool | None, now: float) -> float | None:
        """Since when the database has answered every tick (None: not known to be up).
        ``healthy`` True/False records this tick's finding; None only reads."""
        ...

    # Marks: per environment, ``kind`` -> {name: a number}, e.g. "busy" -> {instance id:
    # when it was last seen holding a live lease}. Each raises StateUnavailable.
    def marks_get(self, kind: str) -> dict[str, float]: ...

    def marks_set(self, kind: str, values: Mapping[str, float]) -> None: ...

    def marks_clear(self, kind: str, names: Iterable[str]) -> None: ...


class FileStateStore:
    def __init__(self, root: Path) -> None:
        self.claims = root / "claims"
        self.spool = root / "spool"

    def _dirs(self) -> None:
        self.claims.mkdir(parents=True, exist_ok=True)
        self.spool.mkdir(parents=True, exist_ok=True)

    def slot_claim(self, slot_key: str, ttl_seconds: int) -> bool:
        try:
            self._dirs()
            path = self.claims / slot_key
            try:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                return False
            os.close(fd)
            self._claims_expire(ttl_seconds)
            return True
        except OSError as exc:
            raise StateUnavailable(f"claim directory {self.claims}: {exc}") from exc

    def _claims_expire(self, ttl_seconds: int) -> None:
        cutoff = time.time() - ttl_seconds
        for path in self.claims.iterdir():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()

    def spool_push(self, record: dict[str, Any]) -> None:
        self._dirs()
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        tmp = self.spool / f".{name}"
        tmp.write_text(json.dumps(record))
        tmp.rename(self.spool / name)  # atomic: a reader never sees half a record

    def spool_push_local(self, record: dict[str, Any]) -> None:
        self.spool_push(record)

    def _spooled(self) -> Iterator[Path]:
        if not self.spool.exists():
            return iter(())
        return iter(sorted(p for p in self.spool.iterdir() if p.name.endswith(".json")))

    def spool_drain(self, write: Callable[[dict[str, Any]], None], limit: int) -> int:
        written = 0
        for path in self._spooled():
            if written >= limit:
                break
            try:
                record = json.loads(path.read_text())
            except FileNotFoundError:
                continue  # another process on this host drained it first
            write(record)
            # Only after the write: a crash between the two re-writes, not loses
            # (writes are idempotent per slot).
            path.unlink(missing_ok=True)
            written += 1
        return written

    def spool_drain_local(self, write: Callable[[dict[str, Any]], None], limit: int) -> int:
        return self.spool_drain(write, limit)

    def spool_size(self) -> int:
        return sum(1 for _ in self._spooled())

    def database_up_since(self, *, healthy: bool | None, now: float) -> float | None:
        path = self.claims.parent / "database-up-since"
        try:
            if healthy is False:
                path.unlink(missing_ok=True)
                return None
            if healthy:
                self._dirs()
                with contextlib.suppress(FileExistsError):
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
                    os.write(fd, repr(now).encode())
                    os.close(fd)
            return float(path.read_text())
        except (OSError, ValueError):
            return None

    def _marks_dir(self, kind: str) -> Path:
        return self.claims.parent / "fleet" / quote(kind, safe="")

    def marks_get(self, kind: str) -> dict[str, float]:
        folder = self._marks_dir(kind)
        marks: dict[str, float] = {}
        try:
            paths = list(folder.iterdir()) if folder.exists() else []
            for path in paths:
                if path.name.startswith("."):
                    continue
                with contextlib.suppress(OSError, ValueError):  # removed meanwhile, half written
                    marks[unquote(path.name)] = float(path.read_text())
        except OSError as exc:
            raise StateUnavailable(f"marks directory {folder}: {exc}") from exc
        return marks

    def marks_set(self, kind: str, values: Mapping[str, float]) -> None:
        folder = self._marks_dir(kind)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            for name, value in values.items():
                tmp = folder / f".{uuid.uuid4().hex}"
                tmp.write_text(repr(float(value)))
                tmp.rename(folder / quote(name, safe=""))  # atomic, as the spool
        except OSError as exc:
            raise StateUnavailable(f"marks directory {folder}: {exc}") from exc

    def marks_clear(self, kind: str, names: Iterable[str]) -> None:
        folder = self._marks_dir(kind)
        try:
            for name in names:
                (folder / quote(name, safe="")).unlink(missing_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"marks directory {folder}: {exc}") from exc


class RedisStateStore:
    def __init__(self, url: str, fallback: FileStateStore, *, environment: str) -> None:
        # Short timeouts: a slow Redis must cost a tick a second, not its slot.
        self.client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.7)
        self.fallback = fallback
        # Each environment drains only its own spool into its own database.
        self.spool_key = SPOOL_PREFIX + environment
        self.up_since_key = UP_SINCE_PREFIX + environment
        self.environment = environment

    def slot_claim(self, slot_key: str, ttl_seconds: int) -> bool:
        try:
            return bool(self.client.set(CLAIM_PREFIX + slot_key, "1", nx=True, ex=ttl_seconds))
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis: {exc}") from exc

    def spool_push(self, record: dict[str, Any]) -> None:
        try:
            self.client.rpush(self.spool_key, json.dumps(record))
        except redis.RedisError:
            self.fallback.spool_push(record)

    def spool_push_local(self, record: dict[str, Any]) -> None:
        self.fallback.spool_push(record)

    def spool_drain_local(self, write: Callable[[dict[str, Any]], None], limit: int) -> int:
        return self.fallback.spool_drain(write, limit)

    def spool_drain(self, write: Callable[[dict[str, Any]], None], limit: int) -> int:
        written = self.fallback.spool_drain(write, limit)
        with contextlib.suppress(redis.RedisError):
            while written < limit:
                raw = self.client.lindex(self.spool_key, 0)
                if raw is None:
                    break
                write(json.loads(raw))
                # Remove only after the write; writes are idempotent per slot.
                self.client.lpop(self.spool_key)
                written += 1
        return written

    def database_up_since(self, *, healthy: bool | None, now: float) -> float | None:
        try:
            if healthy is False:
                self.client.delete(self.up_since_key)
                return None
            if healthy:
                self.client.set(self.up_since_key, repr(now), nx=True)
            raw = self.client.get(self.up_since_key)
            return float(raw) if raw is not None else None
        except (redis.RedisError, ValueError):
            return None

    def _marks_key(self, kind: str) -> str:
        return f"{MARKS_PREFIX}{kind}:{self.environment}"

    def marks_get(self, kind: str) -> dict[str, float]:
        try:
            raw = self.client.hgetall(self._marks_key(kind))
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis: {exc}") from exc
        marks: dict[str, float] = {}
        for name, value in raw.items():
            with contextlib.suppress(ValueError):
                marks[name.decode() if isinstance(name, bytes) else str(name)] = float(value)
        return marks

    def marks_set(self, kind: str, values: Mapping[str, float]) -> None:
        if not values:
            return
        key = self._marks_key(kind)
        try:
            pipe = self.client.pipeline()
            pipe.hset(key, mapping={name: repr(float(v)) for name, v in values.items()})
            pipe.expire(key, MARKS_KEEP_SECONDS)
            pipe.execute()
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis: {exc}") from exc

    def marks_clear(self, kind: str, names: Iterable[str]) -> None:
        names = list(names)
        if not names:
            return
        try:
            self.client.hdel(self._marks_key(kind), *names)
        except redis.RedisError as exc:
            raise StateUnavailable(f"Redis: {exc}") from exc

    def spool_size(self) -> int:
        size = self.fallback.spool_size()
        with contextlib.suppress(redis.RedisError):
            size += int(self.client.llen(self.spool_key))
        return size


# One store per process and configuration: a tick asks twice (claim, then
# record), and a Redis client with its connection pool is not worth building twice.
_stores: dict[tuple[str, str, str], StateStore] = {}


def state_store_get() -> StateStore:
    conf = scaling_settings()
    url = conf.state_url
    var_dir = str(settings.VAR_DIR)
    # Two environments may share one Redis or one var/ directory (staging and
    # production with the same group name in two accounts): the spool is theirs alone.
    environment = environment_key(conf)
    store = _stores.get((url, var_dir, environment))
    if store is None:
        if url.startswith("file://"):
            store = FileStateStore(Path(urlparse(url).path) / "environments" / environment)
        else:
            local = FileStateStore(Path(var_dir) / "scaling-spool" / environment)
            store = RedisStateStore(url, fallback=local, environment=environment)
        _stores[(url, var_dir, environment)] = store
    return store
