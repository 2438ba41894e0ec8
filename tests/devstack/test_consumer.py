"""make run's second fleet: the stand-in consumer, the fleets the launcher configures, the
env file that carries them, and moto's policies named per group (devstack.awsserver)."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest

from devstack import launcher, localfleets
from devstack.consumer import Consumer, ConsumerError, hold_seconds_get, jobs_send
from devstack.demo import env_file_read
from devstack.localaws import local_aws_bootstrap, local_client
from scaling.fleets import fleets_parse


def depth(sqs: Any, queue_url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@pytest.fixture
def ai_queue(aws: dict[str, str]) -> tuple[Any, str]:
    sqs = local_client("sqs", aws["endpoint"], aws["region"])
    url = sqs.create_queue(QueueName="academy-ai-jobs")["QueueUrl"]
    return sqs, url


def test_a_consumer_receives_holds_and_deletes_each_job_once(ai_queue: tuple[Any, str]) -> None:
    sqs, url = ai_queue
    bodies = jobs_send(sqs, url, 12, prefix="t")
    assert bodies[0] == '{"job": "t-1"}'
    assert len(set(bodies)) == 12
    consumer = Consumer(
        sqs, queue_url=url, instance_id="i-1", hold_seconds=0, stopping=threading.Event()
    )
    while consumer.step():
        pass
    assert consumer.consumed == 12
    assert depth(sqs, url) == 0


def test_stopping_mid_job_gives_the_message_back(ai_queue: tuple[Any, str]) -> None:
    sqs, url = ai_queue
    jobs_send(sqs, url, 1, prefix="t")
    stopping = threading.Event()
    consumer = Consumer(sqs, queue_url=url, instance_id="i-1", hold_seconds=60, stopping=stopping)
    threading.Timer(0.5, stopping.set).start()
    assert consumer.step() is False
    assert consumer.consumed == 0
    # Visible again at once: another consumer takes it.
    again = Consumer(
        sqs, queue_url=url, instance_id="i-2", hold_seconds=0, stopping=threading.Event()
    )
    assert again.step() is True
    assert depth(sqs, url) == 0


@pytest.mark.parametrize(("raw", "expected"), [(None, 15), ("", 15), (" 8 ", 8), ("0", 0)])
def test_the_hold_is_read(raw: str | None, expected: int) -> None:
    assert hold_seconds_get(raw) == expected


@pytest.mark.parametrize("raw", ["-1", "1.5", "soon", "3601", "²"])
def test_a_bad_hold_is_one_sentence(raw: str) -> None:
    with pytest.raises(ConsumerError, match="DEVSTACK_CONSUMER_HOLD_SECONDS must be a whole"):
        hold_seconds_get(raw)


# --- what the launcher configures -----------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, ("video", "ai")),
        ("", ("video", "ai")),
        ("video", ("video",)),
        ("ai, video", ("video", "ai")),
    ],
)
def test_the_local_fleets_are_read(raw: str | None, expected: tuple[str, ...]) -> None:
    env = {} if raw is None else {"DEVSTACK_FLEETS": raw}
    assert localfleets.devstack_fleets_get(env) == expected


@pytest.mark.parametrize("raw", ["ai", "video,messaging", ","])
def test_bad_local_fleets_are_refused(raw: str) -> None:
    with pytest.raises(localfleets.FleetsError, match="DEVSTACK_FLEETS must be video or video,ai"):
        localfleets.devstack_fleets_get({"DEVSTACK_FLEETS": raw})


def test_the_two_local_fleets_are_valid_configuration(settings: Any) -> None:
    env = {"VIDEO_WORKER_HOLD_SECONDS": "20", "DEVSTACK_CONSUMER_HOLD_SECONDS": "15"}
    base = "http://127.0.0.1:5000/123456789012/"
    queues = {"video": base + "academy-video-jobs", "ai": base + "academy-ai-jobs"}
    settings.SCALING_FLEETS = json.dumps(launcher.local_fleets(env, queues=queues, boot_seconds=10))
    fleets, problems = fleets_parse()
    assert problems == []
    video, ai = fleets
    assert (video.name, video.source, video.queue_url) == ("video", "port", queues["video"])
    assert (video.policy.acceptable_wait, video.policy.processing_time) == (60, 20)
    assert (ai.asg_name, ai.source, ai.namespace, ai.leases) == (
        "academy-ai-worker-asg",
        "sqs",
        "Academy/Workers",
        False,
    )
    assert dict(ai.dimensions) == {"WorkerType": "AI"}
    assert (ai.policy.acceptable_wait, ai.policy.processing_time, ai.policy.warmup) == (60, 15, 20)


def test_the_env_file_carries_the_fleets_json_to_the_shell_and_the_demo(tmp_path: Path) -> None:
    value = json.dumps([{"name": "ai", "dimensions": {"WorkerType": "A I's"}}])
    path = tmp_path / "devstack.env"
    path.write_text(
        f"SCALING_FLEETS={launcher._shell_value(value)}\n"
        f"AWS_REGION={launcher._shell_value('ap-northeast-2')}\n"
    )
    assert env_file_read(path) == {"SCALING_FLEETS": value, "AWS_REGION": "ap-northeast-2"}
    shell = subprocess.run(
        ["sh", "-c", f'set -a; . "{path}"; set +a; printf %s "$SCALING_FLEETS"'],
        capture_output=True,
        text=True,
        check=True,
    )
    assert shell.stdout == value


def test_the_ai_burst_line_is_shown_with_two_fleets() -> None:
    lines = launcher.where_to_look(
        local=True, password_file=Path("/v/p"), fleets=localfleets.LOCAL_FLEETS
    )
    assert any("make burst FLEET=ai COUNT=20" in line for line in lines)


# --- moto, as the dev stack runs it ---------------------------------------------------


def test_two_groups_keep_their_own_policy_of_the_same_name(aws: dict[str, str]) -> None:
    local_aws_bootstrap(aws["endpoint"], region=aws["region"], asg_name="academy-ai-worker-asg")
    autoscaling = local_client("autoscaling", aws["endpoint"], aws["region"])
    for group, target in (("academy-video-worker-asg", 3.0), ("academy-ai-worker-asg", 4.0)):
        autoscaling.put_scaling_policy(
            AutoScalingGroupName=group,
            PolicyName="academy-backlog-target-tracking",
            PolicyType="TargetTrackingScaling",
            TargetTrackingConfiguration={
                "PredefinedMetricSpecification": {
                    "PredefinedMetricType": "ASGAverageCPUUtilization"
                },
                "TargetValue": target,
            },
        )

    def targets() -> dict[str, float]:
        policies = autoscaling.describe_policies()["ScalingPolicies"]
        return {
            p["AutoScalingGroupName"]: p["TargetTrackingConfiguration"]["TargetValue"]
            for p in policies
        }

    assert targets() == {"academy-video-worker-asg": 3.0, "academy-ai-worker-asg": 4.0}
    autoscaling.delete_policy(
        AutoScalingGroupName="academy-ai-worker-asg", PolicyName="academy-backlog-target-tracking"
    )
    assert targets() == {"academy-video-worker-asg": 3.0}
