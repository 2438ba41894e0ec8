"""Fleets as configuration (scaling.fleets, scaling.fleet_config): the default single
fleet, both forms of SCALING_FLEETS, and a check with an id and a sentence for every
bad entry."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.checks import Error
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from scaling.checks import scaling_fleets_check
from scaling.conf import scaling_settings
from scaling.fleets import UnknownFleet, fleet_get, fleets_get, fleets_namespaces
from scaling.metric_spec import metric_spec_get
from scaling.publishing.slots import slot_claim_key

QUEUE = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/{}"
VIDEO = {"name": "video", "asg_name": "academy-video-worker-asg", "source": "port"}
AI = {
    "name": "ai",
    "asg_name": "academy-ai-worker-asg",
    "source": "sqs",
    "queue_url": QUEUE.format("ai-jobs"),
    "namespace": "Academy/Workers",
    "dimensions": {"WorkerType": "AI"},
    "policy": {"acceptable_wait": 300, "processing_time": 30, "max_size": 4},
}


# A fleet's policy.warm_pool / policy.predictive, wrong: (key, value, the sentence's words).
LEVER_MISTAKES = [
    ("warm_pool", True, "'ai': policy.warm_pool must be an object, got bool."),
    ("warm_pool", {"size": 1}, "unknown policy.warm_pool key 'size' (known: min_size, "),
    ("warm_pool", {"min_size": -1}, "policy.warm_pool.min_size must be a whole number from 0"),
    ("warm_pool", {"min_size": 1.5}, "policy.warm_pool.min_size must be a whole number"),
    ("warm_pool", {"max_prepared": "6"}, "policy.warm_pool.max_prepared must be a whole"),
    ("warm_pool", {"min_size": 3, "max_prepared": 2}, "min_size 3 is above max_prepared 2"),
    ("warm_pool", {"state": "stopped"}, "policy.warm_pool.state must be 'Stopped' or"),
    ("warm_pool", {"reuse": "on"}, "policy.warm_pool.reuse must be true"),
    ("predictive", "forecast-only", "policy.predictive must be an object, got str."),
    ("predictive", {}, "policy.predictive needs mode 'forecast-only' or 'forecast-and-scale'"),
    ("predictive", {"mode": "ForecastOnly"}, "policy.predictive.mode must be 'forecast-only'"),
    ("predictive", {"mode": "forecast-only", "buffer": 3600}, "buffer must be a whole number"),
    ("predictive", {"mode": "forecast-only", "max_capacity": "raise"}, "'honor' or 'increase'"),
    (
        "predictive",
        {"mode": "forecast-only", "max_capacity": "increase"},
        "max_capacity 'increase' needs max_buffer",
    ),
    ("predictive", {"mode": "forecast-only", "max_buffer": 10}, "max_buffer needs max_capacity"),
    ("predictive", {"mode": "forecast-only", "horizon": 48}, "unknown policy.predictive key"),
]


def _errors(settings: Any, fleets: object) -> list[tuple[str, str]]:
    settings.SCALING_FLEETS = fleets
    found = scaling_fleets_check()
    assert all(isinstance(e, Error) for e in found)
    return [(e.id or "", e.msg) for e in found]


def test_no_setting_means_one_video_fleet_with_every_name_unchanged(settings: Any) -> None:
    settings.SCALING_FLEETS = ""
    (fleet,) = fleets_get()
    assert (fleet.name, fleet.asg_name, fleet.source, fleet.leases) == (
        "video",
        "academy-video-worker-asg",
        "port",
        True,  # the video app's backlog source has lease hooks
    )
    conf = scaling_settings()
    spec = metric_spec_get(conf=fleet.conf(conf))
    assert spec == metric_spec_get(conf=conf)  # the metric, as before fleets
    assert spec.dimensions == (
        ("WorkerType", "Video"),
        ("AutoScalingGroupName", "academy-video-worker-asg"),
    )
    slot = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    # The claim key too: two versions of the publisher during a deploy still claim one slot.
    assert slot_claim_key(fleet.conf(conf), slot) == slot_claim_key(conf, slot)
    assert scaling_fleets_check() == []


def test_the_settings_list_and_the_environments_json_give_the_same_fleets(settings: Any) -> None:
    settings.SCALING_FLEETS = [VIDEO, AI]
    from_list = fleets_get()
    settings.SCALING_FLEETS = json.dumps([VIDEO, AI])
    assert fleets_get() == from_list
    video, ai = from_list
    assert (ai.source, ai.queue_url, ai.leases, ai.worker_type) == (
        "sqs",
        QUEUE.format("ai-jobs"),
        False,
        "AI",
    )
    assert (ai.policy.acceptable_wait, ai.policy.processing_time, ai.policy.max_size) == (
        300.0,
        30.0,
        4,
    )
    assert video.namespace == "Academy/VideoProcessing"  # SCALING_NAMESPACE by default
    assert fleets_namespaces() == ["Academy/VideoProcessing", "Academy/Workers"]
    assert metric_spec_get(conf=ai.conf()).dimensions_api() == [
        {"Name": "WorkerType", "Value": "AI"},
        {"Name": "AutoScalingGroupName", "Value": "academy-ai-worker-asg"},
    ]
    assert fleet_get(None).name == "video"
    assert fleet_get("ai") == ai


def test_an_unknown_fleet_is_one_sentence_naming_the_known_ones(settings: Any) -> None:
    settings.SCALING_FLEETS = [VIDEO, AI]
    with pytest.raises(UnknownFleet) as caught:
        fleet_get("messaging")
    assert str(caught.value) == "Unknown fleet 'messaging': configured fleets are video, ai."


def test_a_fleet_list_without_video_defaults_to_its_first(settings: Any) -> None:
    settings.SCALING_FLEETS = [AI]
    assert fleet_get(None).name == "ai"


@pytest.mark.parametrize(
    ("fleets", "check_id", "sentence"),
    [
        ("[{", "scaling.E010", "SCALING_FLEETS is not valid JSON"),
        ({"name": "video"}, "scaling.E010", "must be a non-empty list of fleets, got dict"),
        ([VIDEO, {**AI, "name": "video"}], "scaling.E012", "names fleet 'video' twice"),
        (
            [VIDEO, {**AI, "asg_name": "academy-video-worker-asg"}],
            "scaling.E012",
            "puts fleets 'video' and 'ai' on one Auto Scaling group 'academy-video-worker-asg'",
        ),
        ([{**AI, "source": "redis"}], "scaling.E013", "unknown source 'redis'"),
        ([{**AI, "namespace": "AWS/EC2"}], "scaling.E014", "reserves for AWS"),
        ([{**AI, "namespace": "Academy*Workers"}], "scaling.E014", "must be 1-255 letters"),
        ([{**AI, "namespace": ""}], "scaling.E014", "must be 1-255 letters"),
        ([{**AI, "queue": "x"}], "scaling.E011", "unknown key 'queue'"),
        ([{**AI, "name": "AI"}], "scaling.E011", "name must be 1-32 lower-case"),
        ([{**AI, "queue_url": ""}], "scaling.E011", "source 'sqs' needs queue_url"),
        ([{**AI, "queue_url": "not-a-url"}], "scaling.E011", "is not an SQS queue URL"),
        ([{**AI, "leases": True}], "scaling.E011", "leases need source 'port'"),
        ([{**AI, "asg_name": ""}], "scaling.E011", "asg_name must be"),
        (
            [{**AI, "dimensions": {"AutoScalingGroupName": "x"}}],
            "scaling.E011",
            "AutoScalingGroupName is added by itself",
        ),
        (
            [{**AI, "policy": {"target_value": 3, "acceptable_wait": 60}}],
            "scaling.E011",
            "not both",
        ),
        ([{**AI, "policy": {"max_size": 0}}], "scaling.E011", "policy.max_size 0 must be"),
        ([{**AI, "policy": {"warmup": -1}}], "scaling.E011", "policy.warmup must be"),
        ([{**AI, "policy": {"speed": 1}}], "scaling.E011", "unknown policy key 'speed'"),
        (["ai"], "scaling.E011", "SCALING_FLEETS[0] must be an object"),
        *(
            ([{**AI, "policy": {key: value}}], "scaling.E011", sentence)
            for key, value, sentence in LEVER_MISTAKES
        ),
    ],
)
def test_bad_fleet_configuration_is_a_check_with_an_id_and_a_sentence(
    settings: Any, fleets: object, check_id: str, sentence: str
) -> None:
    (error,) = _errors(settings, fleets)
    assert error[0] == check_id
    assert sentence in error[1]
    assert "\n" not in error[1]


def test_a_bad_entry_is_left_out_and_the_good_ones_still_publish(settings: Any) -> None:
    settings.SCALING_FLEETS = [VIDEO, {**AI, "source": "redis"}, {**AI, "name": "messaging"}]
    assert [f.name for f in fleets_get()] == ["video", "messaging"]


def test_manage_py_check_stops_on_a_bad_fleet(settings: Any) -> None:
    settings.SCALING_FLEETS = [VIDEO, {**AI, "asg_name": VIDEO["asg_name"]}]
    with pytest.raises(SystemCheckError) as caught:
        call_command("check")
    assert "scaling.E012" in str(caught.value)


def test_a_fleets_warm_pool_and_predictive_keys_are_read_as_the_flags_they_stand_for(
    settings: Any,
) -> None:
    pool = {"min_size": 1, "max_prepared": 6, "state": "Hibernated", "reuse": False}
    predictive = {"mode": "forecast-and-scale", "buffer": 600, "max_capacity": "increase"}
    ai = {**AI, "policy": {"warm_pool": pool, "predictive": {**predictive, "max_buffer": 10}}}
    settings.SCALING_FLEETS = json.dumps([VIDEO, ai])

    video, parsed = fleets_get()

    assert (video.policy.warm_pool, video.policy.predictive) == (None, None)
    assert parsed.policy.warm_pool is not None
    assert parsed.policy.predictive is not None
    assert parsed.policy.warm_pool.flags() == {
        "warm_pool": True,
        "warm_pool_min_size": "1",
        "warm_pool_max_prepared": "6",
        "warm_pool_state": "Hibernated",
        "warm_pool_reuse": "off",
    }
    assert parsed.policy.predictive.flags() == {
        "predictive": "forecast-and-scale",
        "predictive_buffer": "600",
        "predictive_max_capacity": "increase",
        "predictive_max_buffer": "10",
    }
    assert scaling_fleets_check() == []
