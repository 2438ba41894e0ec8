"""Shared fixtures.

Tests that need a real server ask for it through a fixture here. Without the
server they are skipped with the reason; with ACADEMY_REQUIRE_SERVICES=1 (set
by .ci/run) a missing server fails the run instead.
"""

from __future__ import annotations

import contextlib
import os
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings as django_settings

from devstack.localaws import LOCAL_CREDENTIALS, local_aws_bootstrap, moto_server

REQUIRE_SERVICES = os.environ.get("ACADEMY_REQUIRE_SERVICES") == "1"

# Without credentials boto3 would ask the EC2 instance metadata service, an
# address off this machine. Tests (and the processes they start, which inherit
# the environment) stay on loopback.
os.environ["AWS_EC2_METADATA_DISABLED"] = "true"


# Under pytest-xdist (make pytest), the order the workers take tests in: the
# multi-minute scenarios first, then pytest-django's order (make pytest passes
# --no-loadscope-reorder so this order holds). The run's wall time is then about its
# longest chain, not the longest test started last. The two scenarios that load the
# CPU (the local loop's ten workers, the soak's endpoint load) share one worker
# (xdist_group "cpu_heavy_scenarios"), one after the other, so the timing-sensitive
# tests never run beside both. Serial runs keep pytest-django's order.
_START_FIRST = ("slow",)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return

    def rank(item: pytest.Item) -> int:
        for position, mark in enumerate(_START_FIRST):
            if item.get_closest_marker(mark) is not None:
                return position
        return len(_START_FIRST)

    items.sort(key=rank)  # stable: pytest-django's order within each rank


def service_missing(reason: str) -> None:
    if REQUIRE_SERVICES:
        pytest.fail(f"{reason} (ACADEMY_REQUIRE_SERVICES=1: real services are required)")
    pytest.skip(reason)


def is_postgres() -> bool:
    return bool(django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql")


@pytest.fixture
def postgres() -> None:
    """Marks a test that needs the real PostgreSQL given by DATABASE_URL."""
    if not is_postgres():
        service_missing("needs PostgreSQL: set DATABASE_URL=postgres://...")


def redis_base_url() -> str | None:
    broker = str(django_settings.CELERY_BROKER_URL)
    if broker.startswith(("redis://", "rediss://")):
        return broker
    return os.environ.get("TEST_REDIS_URL")


@pytest.fixture
def redis_databases() -> Iterator[list[str]]:
    """Two empty Redis databases this test holds (2..13 on the broker's server), emptied after.

    Held, not fixed: engineers who share a machine share its Redis, and with fixed
    numbers one run's flush wipes another run's slot claims (tests/support/stack.py).
    """
    from tests.support.stack import redis_databases_held

    base = redis_base_url()
    if not base:
        service_missing("needs Redis: set CELERY_BROKER_URL=redis://...")
        raise AssertionError  # unreachable
    with contextlib.ExitStack() as held:
        try:
            urls = held.enter_context(redis_databases_held(base, 2))
        except redis.RedisError as exc:
            service_missing(f"Redis at {base} is unreachable: {exc}")
        yield urls


@pytest.fixture
def redis_url(redis_databases: list[str]) -> str:
    """The publisher's state (slot claims, spool, database up-since) for this test."""
    return redis_databases[0]


def moto_warm(endpoint: str, region: str = "ap-northeast-2") -> None:
    """One patient call per service the tests use, so moto builds its backends now.

    moto builds a region's backends on their first request (EC2's default VPC and
    catalogues take seconds of CPU) and again after every reset. The dev stack's own
    clients give a call 5 s (devstack.localaws.local_client); with parallel workers
    on 2 cores a cold backend can take longer, so the wait is taken here, once.
    """
    import boto3
    from botocore.config import Config

    patient = Config(connect_timeout=5, read_timeout=120, retries={"total_max_attempts": 3})
    session = boto3.session.Session(
        aws_access_key_id=LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LOCAL_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=LOCAL_CREDENTIALS["AWS_SESSION_TOKEN"],
    )
    for service, call in (
        ("sqs", "list_queues"),
        ("ec2", "describe_launch_templates"),
        ("autoscaling", "describe_auto_scaling_groups"),
        ("cloudwatch", "list_metrics"),
    ):
        client = session.client(
            service,  # type: ignore[call-overload]
            region_name=region,
            endpoint_url=endpoint,
            config=patient,
        )
        getattr(client, call)()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A real local AWS endpoint (moto's server) on a free loopback port."""
    with moto_server() as url:
        moto_warm(url)
        yield url


@pytest.fixture(autouse=True)
def _cache_cleared() -> Iterator[None]:
    """Nothing a test caches (an installed policy read from AWS, say) leaks into the next."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _isolated_state(tmp_path: Path, settings: Any) -> None:
    """Slot claims and the audit spool in a directory of this test's own."""
    settings.SCALING_STATE_URL = f"file://{tmp_path / 'state'}"
    settings.VAR_DIR = tmp_path / "var"


@pytest.fixture
def aws(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, settings: Any) -> dict[str, str]:
    """The app pointed at a freshly reset moto server holding the group and the queue."""
    reset = f"{moto_endpoint}/moto-api/reset"  # a loopback http URL of our own
    # A patient reset and warm-up: parallel workers share 2 cores (moto_warm).
    urllib.request.urlopen(urllib.request.Request(reset, method="POST"), timeout=120).close()  # noqa: S310
    moto_warm(moto_endpoint)
    for key, value in LOCAL_CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    settings.AWS_ENDPOINT_URL = moto_endpoint
    settings.AWS_REGION = "ap-northeast-2"
    created = local_aws_bootstrap(moto_endpoint, region="ap-northeast-2")
    settings.SCALING_SQS_QUEUE_URL = created["queue_url"]
    return {"endpoint": moto_endpoint, **created}


@pytest.fixture(scope="session", autouse=True)
def aws_calls_held_to_iam() -> Iterator[list[Any]]:
    """Every AWS call the app makes in this session, held against deploy/iam/<role>.json.

    A successful call that its role's document does not allow fails the run (reported
    at the teardown of the last test). tests/deploy/test_iam_documents.py drives every
    role's code path itself and also checks the calls that were answered with an error.
    """
    from django.conf import settings

    from scaling.aws import aws_call_observers
    from scaling.conf import scaling_settings
    from scaling.policy.iam import ROLES, iam_document_build
    from tests.deploy.test_iam_documents import MOTO_ACCOUNT, REGION, iam_violations

    calls: list[Any] = []
    # A call made while a test configured other fleets (SCALING_FLEETS) is held to the
    # documents rendered for those fleets (scaling.policy.iam), as a deployment of
    # them would use; deploy/iam/ is the default fleet's. Rendered when first seen:
    # the documents read the test's settings (the job queue too), gone by teardown.
    other_fleets: dict[str, dict[str, Any]] = {}

    def observe(role: str, service: str, operation: str, params: Any, status: int) -> None:
        configured = getattr(settings, "SCALING_FLEETS", "")
        key = "" if not configured else repr((configured, scaling_settings().sqs_queue_url))
        if key and key not in other_fleets:
            try:
                other_fleets[key] = {
                    r: iam_document_build(r, region=REGION, account=MOTO_ACCOUNT) for r in ROLES
                }
            except Exception:  # a bad SCALING_FLEETS renders nothing: deploy/iam/ holds them
                other_fleets[key] = {}
        calls.append((key, (role, service, operation, dict(params), status)))

    aws_call_observers.append(observe)
    yield calls
    aws_call_observers.remove(observe)

    problems = iam_violations([c for key, c in calls if not key], successful_only=True)
    for key, documents in other_fleets.items():
        held = [c for k, c in calls if k == key]
        problems += iam_violations(held, successful_only=True, documents=documents)
    if problems:
        pytest.fail(
            "AWS calls that deploy/iam/ does not allow:\n" + "\n".join(problems[:30]),
            pytrace=False,
        )
