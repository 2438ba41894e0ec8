"""export_scaling_stack: the installer's own requests as CloudFormation and Terraform.

Every combination the installer accepts is linted by cfn-lint (AWS's resource
schemas and rules, the closest check to real AWS without an account) in one
process; planted mistakes show the lint is not vacuous; each resource is held
equal to the request install_scaling_policy --dry-run sends on moto.
"""

from __future__ import annotations

import copy
import itertools
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.api import ConfigMixIn, Runner, decode_str
from django.core.management import CommandError, call_command

from devstack.localaws import local_aws_bootstrap
from scaling.export.cloudformation import CFN_PROPERTY_NAMES, CFN_TYPES, GROUP_PARAMETER
from scaling.export.run import export_build
from scaling.export.terraform import GROUP_VARIABLE, TF_TYPES
from scaling.models import MetricPublication
from scaling.policy.options import PolicyError
from tests.deploy.test_iam_documents import Call, calls_held_to_the_configured_fleets

# The installer reads the fleet's scale-in pause (scaling_pause) from the database.
pytestmark = pytest.mark.django_db

VIDEO_ASG = "academy-video-worker-asg"
AI_ASG = "academy-ai-worker-asg"
TOPIC = "arn:aws:sns:ap-northeast-2:123456789012:academy-ops"
ACCOUNT = "123456789012"  # moto's account: the group ARN the installer reads
REGION = "ap-northeast-2"
QUEUE = "https://sqs.ap-northeast-2.amazonaws.com/123456789012/ai-jobs"
# What the template cannot carry: the group's own metrics collection (its notes say so).
NOT_IN_TEMPLATE = {"EnableMetricsCollection", "CreateOrUpdateTags"}


def _fleets(queue_url: str = QUEUE) -> list[dict[str, Any]]:
    return [
        {"name": "video", "asg_name": VIDEO_ASG, "source": "port"},
        {
            "name": "ai",
            "asg_name": AI_ASG,
            "source": "sqs",
            "queue_url": queue_url,
            "namespace": "Academy/Workers",
            "dimensions": {"WorkerType": "AI"},
            "policy": {"acceptable_wait": 300, "processing_time": 30},
        },
    ]


def _export(**flags: Any) -> Any:
    return export_build({"format": "cloudformation", **flags})


def _flags(mode: str, alarm_wait: bool, topic: bool) -> dict[str, Any]:
    flags: dict[str, Any] = {"mode": mode}
    if mode == "total":
        flags["target_value"] = "20"
    if alarm_wait:
        flags["alarm_wait"] = "900"
    if topic:
        flags["alarm_topic"] = TOPIC
    return flags


_RUNNER: list[Runner] = []


def _problems(template: str) -> list[str]:
    """cfn-lint's errors and warnings (its informational matches are
    advice, not faults). One Runner for the session: building one loads the rules
    (about 0.3 s), validating a template with it takes about 0.1 s."""
    if not _RUNNER:
        regions = [REGION, "us-east-1"]  # the stack's region and cfn-lint's primary
        _RUNNER.append(Runner(ConfigMixIn(regions=regions, include_experimental=True)))
    decoded, errors = decode_str(template)
    assert errors == []
    assert decoded is not None
    found = _RUNNER[0].validate_template(decoded)
    return [f"{m.rule.id} {m.message}" for m in found if m.rule.id[0] in "EW"]


# Every combination: cfn-lint finds nothing -------------------------------------------


def test_every_combination_the_installer_accepts_lints_clean(settings: Any) -> None:
    """per-instance/total x alarm wait given or not x topic or not x the video fleet
    (leases: the drain hook) or the ai fleet (SQS: no hook) x 10/30/60 s; and without
    --fleet (the settings' own metric)."""
    settings.SCALING_FLEETS = _fleets()
    templates: dict[str, str] = {}
    for period in (10, 30, 60):
        settings.SCALING_PUBLISH_INTERVAL_SECONDS = period
        combinations = [
            *itertools.product(
                ("video", "ai"), ("per-instance", "total"), (False, True), (False, True)
            ),
            *((None, mode, False, True) for mode in ("per-instance", "total")),
        ]
        for fleet, mode, wait, topic in combinations:
            export = _export(fleet=fleet, yaml=fleet == "ai", **_flags(mode, wait, topic))
            hook = any(r.kind == "lifecycle-hook" for r in export.stack.resources)
            assert hook == (fleet != "ai")
            assert len(export.stack.resources) == (10 if hook else 9)
            templates[f"{period}s {fleet} {mode} wait={wait} topic={topic}"] = export.text
    started = time.monotonic()
    found = {name: _problems(text) for name, text in templates.items()}
    elapsed = time.monotonic() - started
    assert {name: p for name, p in found.items() if p} == {}
    assert len(templates) == 54
    print(f"cfn-lint: {len(templates)} templates in {elapsed:.1f} s")


# Planted mistakes are caught ----------------------------------------------------------


def _template(**flags: Any) -> dict[str, Any]:
    return copy.deepcopy(_export(**flags).document)


def test_a_metric_query_id_with_a_capital_first_letter_is_caught() -> None:
    template = _template()
    assert _problems(json.dumps(template)) == []
    queries = template["Resources"]["StarvedAlarm"]["Properties"]["Metrics"]
    queries[0]["Id"] = "M1"
    queries[3]["Expression"] = queries[3]["Expression"].replace("m1", "M1")
    problems = _problems(json.dumps(template))
    assert problems
    assert any("M1" in p and "^([a-z])" in p for p in problems), problems


def _with_group(template: dict[str, Any], *, min_size: int, max_size: int) -> str:
    """The template with the group planted in it (cfn-lint's E3712 looks only at a group
    defined in the same template) and the policy pointed at it."""
    template["Resources"]["PlantedGroup"] = {
        "Type": "AWS::AutoScaling::AutoScalingGroup",
        "Properties": {
            "MinSize": str(min_size),
            "MaxSize": str(max_size),
            "AvailabilityZones": {"Fn::GetAZs": ""},
            "LaunchTemplate": {"LaunchTemplateName": "workers", "Version": "1"},
        },
    }
    properties = template["Resources"]["TargetTrackingPolicy"]["Properties"]
    properties["AutoScalingGroupName"] = {"Ref": "PlantedGroup"}
    return json.dumps(template)


def test_max_size_equal_to_min_size_under_target_tracking_is_caught() -> None:
    assert _problems(_with_group(_template(), min_size=1, max_size=4)) == []
    problems = _problems(_with_group(_template(), min_size=2, max_size=2))
    assert [p.split()[0] for p in problems] == ["E3712"], problems
    # The group referenced by parameter (the export's own shape) is out of the rule's
    # reach: that is why the planted copy holds the group.
    assert "Parameters" in _template()
    assert GROUP_PARAMETER in _template()["Parameters"]


# One source of truth: each resource is the installer's request --------------------------


def _resolve(value: Any, names: dict[str, str]) -> Any:
    """A template value with Ref / Fn::Sub / ${...} interpolations resolved."""
    if isinstance(value, list):
        return [_resolve(item, names) for item in value]
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            return names[value["Ref"]]
        if set(value) == {"Fn::Sub"}:
            text = re.sub(r"\$\{([^!}][^}]*)\}", lambda m: names[m.group(1)], value["Fn::Sub"])
            return text.replace("${!", "${")
        return {key: _resolve(item, names) for key, item in value.items()}
    if isinstance(value, str) and "${" in value:
        text = re.sub(r"(?<!\$)\$\{([^}]*)\}", lambda m: names[m.group(1)], value)
        return text.replace("$${", "${").replace("%%{", "%{")
    return value


def _leaves(value: Any, key: str = "") -> list[str]:
    """Every scalar, sorted; an alarm's dimensions map (Terraform) gives its keys too, as
    the API's Name/Value list does."""
    if isinstance(value, dict):
        if key == "dimensions":
            return sorted(repr(part) for pair in value.items() for part in pair)
        return sorted(leaf for k, item in value.items() for leaf in _leaves(item, k))
    if isinstance(value, list):
        return sorted(leaf for item in value for leaf in _leaves(item))
    return [repr(value)]


@pytest.fixture
def two_groups(aws: dict[str, str], settings: Any) -> Iterator[list[Call]]:
    ai = local_aws_bootstrap(aws["endpoint"], asg_name=AI_ASG, queue_name="ai-jobs")
    settings.SCALING_FLEETS = _fleets(ai["queue_url"])
    with calls_held_to_the_configured_fleets() as calls:
        yield calls


def _dry_run(*args: str) -> list[dict[str, Any]]:
    out = StringIO()
    call_command("install_scaling_policy", *args, "--dry-run", "--json", stdout=out)
    result = json.loads(out.getvalue())
    (run,) = result.get("fleets", [result])
    return list(run["requests"])


@pytest.mark.parametrize(
    ("fleet", "args"),
    [
        pytest.param("video", ["--alarm-topic", TOPIC], id="video-per-instance-topic"),
        pytest.param("video", ["--mode", "total", "--target-value", "20"], id="video-total"),
        pytest.param("ai", ["--alarm-wait", "900", "--warmup", "120"], id="ai-per-instance"),
    ],
)
def test_each_resource_is_the_request_the_installer_sends(
    two_groups: list[Call], settings: Any, fleet: str, args: list[str]
) -> None:
    settings.SCALING_PUBLISH_INTERVAL_SECONDS = 10
    sent = _dry_run("--fleet", fleet, *args)
    flags = dict(zip([a[2:].replace("-", "_") for a in args[::2]], args[1::2], strict=True))
    asg = {"video": VIDEO_ASG, "ai": AI_ASG}[fleet]
    cfn = export_build({"format": "cloudformation", "fleet": fleet, **flags})
    tf = export_build({"format": "terraform", "fleet": fleet, **flags})
    wake = next(r for r in sent if r["params"].get("PolicyName", "").endswith("zero"))
    wake_arn = f"<PolicyARN returned for {wake['params']['PolicyName']}>"
    cfn_names = {
        GROUP_PARAMETER: asg,
        "WakePolicy": wake_arn,
        "AWS::AccountId": ACCOUNT,
        "AWS::Partition": "aws",
        "AWS::Region": REGION,
    }
    tf_names = {
        f"var.{GROUP_VARIABLE}": asg,
        "aws_autoscaling_policy.wake_policy.arn": wake_arn,
        "data.aws_caller_identity.current.account_id": ACCOUNT,
        "data.aws_partition.current.partition": "aws",
        "data.aws_region.current.name": REGION,
    }
    in_template = [r for r in sent if r["operation"] not in NOT_IN_TEMPLATE]
    assert {r["operation"] for r in sent} - {r["operation"] for r in in_template} == (
        NOT_IN_TEMPLATE
    )
    resources = cfn.stack.resources
    assert len(in_template) == len(resources)
    tf_resources = tf.document["resource"]
    for request, resource in zip(in_template, resources, strict=True):
        operation = request["operation"]
        assert resource.request.operation == operation
        expected = {
            CFN_PROPERTY_NAMES.get(key, key): value
            for key, value in request["params"].items()
            if CFN_PROPERTY_NAMES.get(key, key) is not None
        }
        block = cfn.document["Resources"][resource.logical_id]
        assert block["Type"] == CFN_TYPES[operation]
        assert _resolve(block["Properties"], cfn_names) == expected, resource.logical_id
        tf_name = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", resource.logical_id).lower()
        attributes = _resolve(tf_resources[TF_TYPES[operation]][tf_name], tf_names)
        assert _leaves(attributes) == _leaves(request["params"]), resource.logical_id


# The command ----------------------------------------------------------------------------


def _command(*args: str) -> str:
    out = StringIO()
    call_command("export_scaling_stack", *args, stdout=out)
    return out.getvalue()


def test_the_command_writes_each_format(tmp_path: Path) -> None:
    as_json = json.loads(_command("--format", "cloudformation"))
    assert as_json["Parameters"][GROUP_PARAMETER]["Default"] == VIDEO_ASG
    assert not any(
        body["Type"] == "AWS::AutoScaling::AutoScalingGroup"
        for body in as_json["Resources"].values()
    )
    target = tmp_path / "scaling.yaml"
    lines = _command("--format", "cloudformation", "--output", str(target)).splitlines()
    assert lines[0].startswith(f"Wrote {target}: CloudFormation (YAML), 10 resources")
    assert yaml.safe_load(target.read_text()) == as_json
    tf_file = tmp_path / "scaling.tf.json"
    summary = json.loads(_command("--format", "terraform", "--output", str(tf_file), "--json"))
    assert summary["format"] == "terraform"
    assert [r["type"] for r in summary["resources"]].count("aws_cloudwatch_metric_alarm") == 6
    document = json.loads(tf_file.read_text())
    assert document["variable"][GROUP_VARIABLE]["default"] == VIDEO_ASG
    assert set(document["resource"]) == set(TF_TYPES.values())


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--format", "cloudformation", "--warmup", "abc"], "--warmup must be a whole number"),
        (["--format", "cloudformation", "--fleet", "nope"], "Unknown fleet 'nope'"),
        (["--format", "terraform", "--output", "x.json"], "must end .tf.json"),
        (["--format", "terraform", "--yaml"], "--yaml is for --format cloudformation"),
        (["--format", "cloudformation", "--asg-name", "a b"], "letters, digits, - and _"),
        (["--format", "cloudformation", "--alarm-topic", "x"], "--alarm-topic must be"),
        (["--format", "cloudformation", "--mode", "total", "--acceptable-wait", "60"], "needs"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args: list[str], sentence: str) -> None:
    with pytest.raises(CommandError) as raised:
        _command(*args)
    assert raised.value.returncode == 2
    assert sentence in str(raised.value)
    assert "\n" not in str(raised.value)


# The warm pool and the predictive policy ----------------------------------------------

CAPACITY_FLAGS = {
    "warm_pool": True,
    "warm_pool_min_size": "1",
    "warm_pool_max_prepared": "6",
    "warm_pool_state": "Hibernated",
    "predictive": "forecast-only",
    "predictive_buffer": "600",
}


@pytest.mark.parametrize(
    ("extra", "yaml"),
    [
        ({}, False),
        (
            {
                "warm_pool_reuse": "off",
                "predictive": "forecast-and-scale",
                "predictive_max_capacity": "increase",
                "predictive_max_buffer": "10",
            },
            True,
        ),
    ],
)
def test_warm_pool_and_predictive_policy_lint_clean(extra: dict[str, Any], yaml: bool) -> None:
    export = _export(yaml=yaml, **{**CAPACITY_FLAGS, **extra})

    resources = export.document["Resources"]
    assert resources["WarmPool"] == {
        "Type": "AWS::AutoScaling::WarmPool",
        "Properties": {
            "AutoScalingGroupName": {"Ref": GROUP_PARAMETER},
            "MinSize": 1,
            "PoolState": "Hibernated",
            "InstanceReusePolicy": {"ReuseOnScaleIn": "warm_pool_reuse" not in extra},
            "MaxGroupPreparedCapacity": 6,
        },
    }
    predictive = resources["PredictivePolicy"]
    assert predictive["Type"] == "AWS::AutoScaling::ScalingPolicy"
    assert predictive["Properties"]["PolicyType"] == "PredictiveScaling"
    config = predictive["Properties"]["PredictiveScalingConfiguration"]
    assert config["Mode"] == ("ForecastAndScale" if extra else "ForecastOnly")
    [spec] = config["MetricSpecifications"]
    [load] = spec["CustomizedLoadMetricSpecification"]["MetricDataQueries"]
    assert load["MetricStat"]["Metric"]["Dimensions"][-1]["Value"] == {"Ref": GROUP_PARAMETER}
    assert _problems(export.text) == []


def test_terraform_refuses_a_warm_pool_with_one_sentence() -> None:
    with pytest.raises(PolicyError) as caught:
        export_build({"format": "terraform", "warm_pool": True})

    assert str(caught.value) == (
        "--warm-pool has no Terraform resource of its own: add a warm_pool block to the "
        "group's aws_autoscaling_group (which this export references, not owns), or export "
        "--format cloudformation (AWS::AutoScaling::WarmPool)."
    )


# Terraform: the predictive policy ------------------------------------------------------

# The attribute and block names aws_autoscaling_policy takes for predictive scaling, as
# the provider's schema declares them: hashicorp/terraform-provider-aws
# internal/service/autoscaling/policy.go at commit
# 007ce0a8dd1d97df0e44eeaa5d467b8f1443f4d1 (resourcePolicy's SchemaFunc and
# customizedMetricDataQuerySchema). scheduling_buffer_time and max_capacity_buffer are
# nullable.TypeNullableInt, which is schema.TypeString (internal/types/nullable/int.go).
TF_PREDICTIVE_SCHEMA: dict[str, Any] = {
    "autoscaling_group_name": None,
    "name": None,
    "policy_type": None,
    "predictive_scaling_configuration": {
        "max_capacity_breach_behavior": None,
        "max_capacity_buffer": None,
        "mode": None,
        "scheduling_buffer_time": None,
        "metric_specification": {
            "target_value": None,
            **{
                f"customized_{kind}_metric_specification": {
                    "metric_data_queries": {
                        "expression": None,
                        "id": None,
                        "label": None,
                        "return_data": None,
                        "metric_stat": {
                            "stat": None,
                            "unit": None,
                            "metric": {
                                "metric_name": None,
                                "namespace": None,
                                "dimensions": {"name": None, "value": None},
                            },
                        },
                    }
                }
                for kind in ("capacity", "load", "scaling")
            },
        },
    },
}


def _names_outside(value: Any, schema: dict[str, Any], path: str = "") -> list[str]:
    """Every key of a Terraform value the schema does not name (blocks as an object or a
    list of objects, as Terraform's JSON syntax takes them)."""
    items = value if isinstance(value, list) else [value]
    found: list[str] = []
    for item in items:
        for key, inner in item.items():
            if key not in schema:
                found.append(f"{path}{key}")
            elif schema[key] is not None:
                found += _names_outside(inner, schema[key], f"{path}{key}.")
    return found


def _tf_query(query: dict[str, Any]) -> dict[str, Any]:
    """One MetricDataQuery of the request as the provider's metric_data_queries block."""
    block: dict[str, Any] = {"id": query["Id"], "label": query["Label"]}
    if "Expression" in query:
        block["expression"] = query["Expression"]
    if "MetricStat" in query:
        stat = query["MetricStat"]
        metric = stat["Metric"]
        block["metric_stat"] = {
            "metric": {
                "namespace": metric["Namespace"],
                "metric_name": metric["MetricName"],
                "dimensions": [
                    {"name": d["Name"], "value": d["Value"]} for d in metric["Dimensions"]
                ],
            },
            "stat": stat["Stat"],
            **({"unit": stat["Unit"]} if "Unit" in stat else {}),
        }
    block["return_data"] = query["ReturnData"]
    return block


def _published_day(fleet: str = "video", asg: str = VIDEO_ASG) -> None:
    """25 hours of published audit rows an hour apart (the installer's 24 h rule), as
    tests/scaling/test_install_predictive.py makes them."""
    newest = datetime.now(UTC).replace(second=0, microsecond=0)
    for hours in range(26):
        MetricPublication.objects.create(
            fleet=fleet,
            slot_start=newest - timedelta(hours=hours),
            interval_seconds=60,
            value=3,
            source="db",
            status="published",
            duration_ms=1.0,
            asg_name=asg,
        )


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["--predictive", "forecast-only"], id="forecast-only"),
        pytest.param(
            [
                "--target-value", "4",
                "--predictive", "forecast-and-scale",
                "--predictive-buffer", "600",
                "--predictive-max-capacity", "increase",
                "--predictive-max-buffer", "10",
            ],
            id="forecast-and-scale-increase",
        ),
    ],
)  # fmt: skip
def test_terraform_predictive_policy_is_the_installer_request_in_the_provider_names(
    aws: dict[str, str], args: list[str]
) -> None:
    _published_day()
    [sent] = [
        r["params"] for r in _dry_run(*args) if r["params"].get("PolicyType") == "PredictiveScaling"
    ]
    flags = dict(zip([a[2:].replace("-", "_") for a in args[::2]], args[1::2], strict=True))

    export = export_build({"format": "terraform", **flags})

    policies = export.document["resource"]["aws_autoscaling_policy"]
    names = {f"var.{GROUP_VARIABLE}": VIDEO_ASG}
    block = _resolve(policies["predictive_policy"], names)
    config = sent["PredictiveScalingConfiguration"]
    [spec] = config["MetricSpecifications"]
    expected_config: dict[str, Any] = {
        "metric_specification": [
            {
                "target_value": spec["TargetValue"],
                "customized_scaling_metric_specification": {
                    "metric_data_queries": [
                        _tf_query(q)
                        for q in spec["CustomizedScalingMetricSpecification"]["MetricDataQueries"]
                    ]
                },
                "customized_load_metric_specification": {
                    "metric_data_queries": [
                        _tf_query(q)
                        for q in spec["CustomizedLoadMetricSpecification"]["MetricDataQueries"]
                    ]
                },
            }
        ],
        "mode": config["Mode"],
        "scheduling_buffer_time": str(config["SchedulingBufferTime"]),
        "max_capacity_breach_behavior": config["MaxCapacityBreachBehavior"],
    }
    if "MaxCapacityBuffer" in config:
        expected_config["max_capacity_buffer"] = str(config["MaxCapacityBuffer"])
    assert block == {
        "autoscaling_group_name": sent["AutoScalingGroupName"],
        "name": sent["PolicyName"],
        "policy_type": "PredictiveScaling",
        "predictive_scaling_configuration": expected_config,
    }
    assert _names_outside(block, TF_PREDICTIVE_SCHEMA) == []
    assert set(sent) == {
        "AutoScalingGroupName",
        "PolicyName",
        "PolicyType",
        "PredictiveScalingConfiguration",
    }
    # The three queries of the scaling metric and the one of the load metric, each field
    # of the request carried (a dropped or renamed field fails the equality above).
    queries = block["predictive_scaling_configuration"]["metric_specification"][0]
    scaling = queries["customized_scaling_metric_specification"]["metric_data_queries"]
    assert [(q["id"], q["return_data"]) for q in scaling] == [
        ("m1", False),
        ("m2", False),
        ("e1", True),
    ]
    if "--predictive-max-buffer" in args:
        assert (expected_config["mode"], expected_config["max_capacity_buffer"]) == (
            "ForecastAndScale",
            "10",
        )
    assert any("24 hours" in note for note in export.document["//"])


def test_a_planted_name_outside_the_provider_schema_is_caught() -> None:
    export = export_build({"format": "terraform", "predictive": "forecast-only"})
    block = copy.deepcopy(export.document["resource"]["aws_autoscaling_policy"])
    policy = block["predictive_policy"]
    assert _names_outside(policy, TF_PREDICTIVE_SCHEMA) == []
    configuration = policy["predictive_scaling_configuration"]
    configuration["metric_specifications"] = configuration.pop("metric_specification")
    assert _names_outside(policy, TF_PREDICTIVE_SCHEMA) == [
        "predictive_scaling_configuration.metric_specifications"
    ]
