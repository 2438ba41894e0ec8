from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from devstack.faultproxy import TcpProxy
from scaling.publishing.schedule import schedule_ensure
from tests.support.stack import Stack, database_url, stack_env

INTERVAL = 10


@pytest.fixture
def pg_proxy(postgres: None) -> Iterator[TcpProxy]:
    s = connection.settings_dict
    with TcpProxy(s.get("HOST") or "127.0.0.1", int(s.get("PORT") or 5432)) as proxy:
        yield proxy


@pytest.fixture
def aws_proxy(aws: dict[str, str]) -> Iterator[TcpProxy]:
    port = int(aws["endpoint"].rsplit(":", 1)[1])
    with TcpProxy("127.0.0.1", port) as proxy:
        yield proxy


@pytest.fixture
def broker_url(redis_databases: list[str]) -> str:
    """The celery broker, a database of this test's own: no other run's beat feeds ours."""
    return redis_databases[1]


@pytest.fixture
def stack(
    transactional_db: None,
    postgres: None,
    pg_proxy: TcpProxy,
    redis_url: str,
    broker_url: str,
    aws: dict[str, str],
    settings: Any,
    tmp_path: Path,
) -> Iterator[Stack]:
    """Processes talk to PostgreSQL through `pg_proxy`; the test process talks to it directly."""
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = str(INTERVAL)
    settings.SCALING_STATE_URL = redis_url
    schedule_ensure()
    env = stack_env(
        tmp=tmp_path,
        db_url=database_url(port=pg_proxy.port),
        broker_url=broker_url,
        state_url=redis_url,
        aws=aws,
        interval=INTERVAL,
    )
    stack = Stack(tmp=tmp_path, env=env)
    try:
        yield stack
    finally:
        stack.stop_all()
        connection.close()
