"""The fleet's marks in the claims store: the same behaviour in Redis and in a
directory, one environment's marks invisible to another, and an unreachable
store that costs protection nothing but the grace."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from scaling.fleet.marks import BUSY, DRAINING, PROTECTED
from scaling.fleet.protection import instance_draining
from scaling.state import (
    FileStateStore,
    RedisStateStore,
    StateStore,
    StateUnavailable,
    state_store_get,
)
from tests.factories import video_leased
from tests.scaling.fleet_support import group_resize, protected_ids, reconcile


@pytest.fixture(params=["file", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "file":
        return FileStateStore(tmp_path / "environments" / "one")
    url = request.getfixturevalue("redis_url")
    return RedisStateStore(url, FileStateStore(tmp_path / "spool"), environment="one")


def test_marks_are_set_read_and_cleared(store: StateStore) -> None:
    store.marks_set(BUSY, {"i-0abc00000000000a1": 10.5, "i-0abc00000000000b2": 20.0})
    store.marks_set(BUSY, {"i-0abc00000000000a1": 30.25})
    store.marks_set(PROTECTED, {"i-0abc00000000000a1": 1.0})
    store.marks_clear(BUSY, ["i-0abc00000000000b2", "i-not-there"])

    assert store.marks_get(BUSY) == {"i-0abc00000000000a1": 30.25}
    assert store.marks_get(PROTECTED) == {"i-0abc00000000000a1": 1.0}
    assert store.marks_get(DRAINING) == {}


def test_one_environments_marks_are_not_anothers(redis_url: str, tmp_path: Path) -> None:
    spool = FileStateStore(tmp_path / "spool")
    staging = RedisStateStore(redis_url, spool, environment="staging")
    production = RedisStateStore(redis_url, spool, environment="production")

    staging.marks_set(DRAINING, {"i-0abc00000000000a1": 5.0})

    assert (staging.marks_get(DRAINING), production.marks_get(DRAINING)) == (
        {"i-0abc00000000000a1": 5.0},
        {},
    )


def test_an_unreachable_redis_says_so() -> None:
    store = RedisStateStore(
        "redis://127.0.0.1:9/0", FileStateStore(Path("/nonexistent")), environment="x"
    )

    with pytest.raises(StateUnavailable):
        store.marks_get(BUSY)
    with pytest.raises(StateUnavailable):
        store.marks_set(BUSY, {"i-0abc00000000000a1": 1.0})


@pytest.mark.django_db
def test_the_reconciler_works_on_redis_too(
    aws: dict[str, str], redis_url: str, settings: Any
) -> None:
    settings.SCALING_STATE_URL = redis_url
    [instance] = group_resize(aws, 1)
    video_leased(instance_id=instance)

    outcome = reconcile()

    assert (outcome.protected_now, protected_ids(aws)) == ([instance], {instance})
    assert set(state_store_get().marks_get(BUSY)) == {instance}
    assert set(state_store_get().marks_get(PROTECTED)) == {instance}


@pytest.mark.django_db
def test_without_the_store_busy_instances_are_protected_and_none_cleared(
    aws: dict[str, str], settings: Any
) -> None:
    settings.SCALING_STATE_URL = "redis://127.0.0.1:9/0"  # nobody listens
    busy, idle = sorted(group_resize(aws, 2))
    video_leased(instance_id=busy)
    from devstack.localaws import local_client

    local_client("autoscaling", aws["endpoint"], aws["region"]).set_instance_protection(
        AutoScalingGroupName="academy-video-worker-asg",
        InstanceIds=[idle],
        ProtectedFromScaleIn=True,
    )

    outcome = reconcile(now=time.time() + 3600)  # however long it has been

    # No marks: no grace can be counted, so nothing is cleared; the busy one is protected.
    assert (outcome.protected_now, outcome.unprotected) == ([busy], [])
    assert protected_ids(aws) == {busy, idle}
    assert instance_draining(busy) is False
