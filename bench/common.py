"""What the benchmarks and the soak share: their database, its videos, their figures.

Each benchmark works in a PostgreSQL database of its own on the server that
``BENCH_DATABASE_URL`` names (default postgres://postgres@127.0.0.1:5432/postgres):
``database_recreate`` makes it afresh and gives its URL, ``database_drop``
removes it; ``bench_stack`` does both around moto's server. Never imports ``tests``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from devstack.localaws import LOCAL_CREDENTIALS, local_aws_bootstrap, moto_server

BASE_DIR = Path(__file__).resolve().parent.parent
DEFAULT_SERVER_URL = "postgres://postgres@127.0.0.1:5432/postgres"
SERVER_URL = os.environ.get("BENCH_DATABASE_URL", DEFAULT_SERVER_URL)


def database_url(name: str, *, server_url: str = SERVER_URL) -> str:
    """The URL of database ``name`` on the server of ``server_url`` (same user, same options)."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def database_drop(name: str, *, server_url: str = SERVER_URL) -> None:
    """Drop ``name`` if it exists, whoever is still connected to it."""
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def database_recreate(name: str, *, server_url: str = SERVER_URL) -> str:
    """Drop ``name`` if it exists, create it empty; its URL."""
    database_drop(name, server_url=server_url)
    with psycopg.connect(server_url, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url(name, server_url=server_url)


def database_migrate(env: dict[str, str]) -> None:
    """``manage.py migrate`` in a process of its own, with ``env`` as its environment."""
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=BASE_DIR,
        env=env,
        check=True,
    )


def videos_fill(db_url: str, *, rows: int, waiting: int) -> None:
    """``rows`` videos, ``waiting`` of them UPLOADED and spread evenly, the rest READY."""
    step = max(1, rows // max(1, waiting))
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO video_video (title, status, created_at, updated_at, status_changed_at)
            SELECT 'Lecture ' || g,
                   CASE WHEN g %% %(step)s = 0 AND g / %(step)s <= %(waiting)s
                        THEN 'UPLOADED' ELSE 'READY' END,
                   now(), now(), now() - (g || ' seconds')::interval
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"rows": rows, "step": step, "waiting": waiting},
        )
        conn.execute("VACUUM ANALYZE video_video")


@contextmanager
def bench_stack(
    name: str, tmp: Path, *, rows: int, waiting: int, env: Mapping[str, str]
) -> Iterator[dict[str, str]]:
    """Database ``name`` made afresh, migrated and filled (``videos_fill``), and
    moto's server with the queue and the group: yields the app's environment for
    both (``env`` on top, logs at WARNING, its var dir in ``tmp``). The database
    is dropped at the end.
    """
    db_url = database_recreate(name)
    try:
        with moto_server() as endpoint:
            created = local_aws_bootstrap(endpoint)
            stack_env = {
                **os.environ,
                **LOCAL_CREDENTIALS,
                "DATABASE_URL": db_url,
                "AWS_ENDPOINT_URL": endpoint,
                "AWS_REGION": created["region"],
                "SCALING_SQS_QUEUE_URL": created["queue_url"],
                "ACADEMY_VAR_DIR": str(tmp / "var"),
                "LOG_LEVEL": "WARNING",
                **env,
            }
            database_migrate(stack_env)
            videos_fill(db_url, rows=rows, waiting=waiting)
            yield stack_env
    finally:
        database_drop(name)


def fill_args_parse(
    argv: list[str] | None,
    doc: str | None,
    count: str,
    *,
    default: int,
    least: int,
    waiting_least: int,
) -> argparse.Namespace:
    """``count`` (e.g. --runs), --rows, --waiting and --json, checked against each other.

    The description is the first line of ``doc`` (the module's docstring).
    """
    parser = argparse.ArgumentParser(description=(doc or "").split("\n")[0])
    parser.add_argument(count, type=int, default=default)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--waiting", type=int, default=1_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if (
        getattr(args, count.lstrip("-").replace("-", "_")) < least
        or args.rows < args.waiting
        or args.waiting < waiting_least
    ):
        parser.error(
            f"{count} must be {least} or more and --rows at least --waiting "
            f"({waiting_least} or more)"
        )
    return args


def verdict_table(title: str, rows: list[tuple[str, object]], *, ok: bool) -> str:
    """``title``, one aligned ``name  value`` line per row, then the verdict (the soaks')."""
    width = max(len(name) for name, _ in [*rows, ("verdict", "")])
    lines = [title, *(f"  {name:<{width}}  {value}" for name, value in rows)]
    lines.append(f"  {'verdict':<{width}}  {'PASS' if ok else 'FAIL'}")
    return "\n".join(lines)


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 to 1) of ``values``; 0.0 when there are none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_cpu_ms(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far, from ``/proc`` (10 ms steps)."""
    # Fields after the ")" of the command name: utime and stime are fields 14 and 15.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1000 / CLOCK_TICKS


def proc_children(pid: int) -> list[int]:
    """The child processes of ``pid`` (e.g. a pre-forking server's workers)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []
