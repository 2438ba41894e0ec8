"""Two deployments that share one Redis (or one var/ directory) and one group name,
but publish to different CloudWatch series, must not take each other's slots or
drain each other's audit spool."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from scaling.conf import environment_key, scaling_settings
from scaling.publishing.outcome import TickStatus
from scaling.publishing.slots import slot_claim_key, slot_start_get
from scaling.publishing.tick import backlog_tick
from scaling.state import state_store_get
from tests.factories import videos_create

pytestmark = pytest.mark.django_db

GROUP = "academy-video-worker-asg"


def _values(aws: dict[str, str], *, region: str, namespace: str) -> list[float]:
    cloudwatch = boto3.client("cloudwatch", region_name=region, endpoint_url=aws["endpoint"])
    now = datetime.now(UTC)
    answer = cloudwatch.get_metric_statistics(
        Namespace=namespace,
        MetricName="BacklogCount",
        Dimensions=[
            {"Name": "WorkerType", "Value": "Video"},
            {"Name": "AutoScalingGroupName", "Value": GROUP},
        ],
        StartTime=now - timedelta(hours=1),
        EndTime=now + timedelta(minutes=5),
        Period=60,
        Statistics=["Maximum"],
    )
    return [point["Maximum"] for point in answer["Datapoints"]]


def test_two_environments_sharing_redis_both_publish_the_same_slot(
    aws: dict[str, str], redis_url: str, settings: Any
) -> None:
    # Same Redis, same group name, another region (staging and production in two
    # accounts). A namespace of its own is covered by the key test below: the
    # publisher's IAM document allows only the production namespace.
    second_region, second_namespace = "us-east-1", "Academy/VideoProcessing"
    videos_create(UPLOADED=2)
    settings.SCALING_STATE_URL = redis_url
    settings.SCALING_ASG_NAME = GROUP
    slot = slot_start_get(at=datetime.now(UTC), interval=60)

    first = backlog_tick(slot_start=slot, now=slot + timedelta(seconds=1))
    settings.AWS_REGION = second_region
    settings.SCALING_NAMESPACE = second_namespace
    second = backlog_tick(slot_start=slot, now=slot + timedelta(seconds=1))
    # The same environment again: its slot is taken, by itself.
    again = backlog_tick(slot_start=slot, now=slot + timedelta(seconds=2))

    assert (first.status, second.status, again.status) == (
        TickStatus.PUBLISHED,
        TickStatus.PUBLISHED,
        TickStatus.ALREADY_CLAIMED,
    )
    assert _values(aws, region="ap-northeast-2", namespace="Academy/VideoProcessing") == [2.0]
    assert _values(aws, region=second_region, namespace=second_namespace) == [2.0]


def test_claim_key_names_region_namespace_group_interval_and_slot(settings: Any) -> None:
    settings.AWS_REGION = "eu-west-1"
    settings.SCALING_NAMESPACE = "Academy/Video Processing"
    settings.SCALING_ASG_NAME = "prod-asg"
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = "30"
    slot = datetime(2026, 11, 26, 10, 0, 30, tzinfo=UTC)

    key = slot_claim_key(scaling_settings(), slot)

    assert key == "publish:eu-west-1:Academy%2FVideo%20Processing:prod-asg:30:1795687230"


def test_spool_of_one_environment_is_not_drained_by_another(redis_url: str, settings: Any) -> None:
    settings.SCALING_STATE_URL = redis_url
    staging = state_store_get()
    staging.spool_push({"slot_start": "2026-11-26T10:00:00+00:00"})
    settings.AWS_REGION = "us-east-1"
    production = state_store_get()

    drained: list[dict[str, Any]] = []
    production.spool_drain(drained.append, 10)

    assert (drained, staging.spool_size(), production.spool_size()) == ([], 1, 0)
    assert environment_key(scaling_settings()) == (
        "us-east-1:Academy%2FVideoProcessing:academy-video-worker-asg"
    )
