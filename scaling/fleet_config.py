"""What a worker fleet is, and SCALING_FLEETS read into fleets (scaling.fleets asks).

A fleet is a name, its Auto Scaling group, its metric (namespace, name,
dimensions), where its backlog is measured (``port``: the host's backlog source,
``SCALING_BACKLOG_SOURCE``; ``sqs``: a queue's depth, visible + in flight, for
workers whose jobs live only in SQS), an optional SQS fallback queue, whether
its workers hold leases, and its policy defaults.

``SCALING_FLEETS`` holds the list: a list of dicts in the host's settings
module, or the same as a JSON string in the environment (``.env.example``).
With none set there is exactly one fleet, ``video``, built from the
``SCALING_*`` settings, so a single-fleet deployment keeps every name, metric
and key it had.

Parsing never raises: a bad entry is left out of ``fleets_get()`` and reported
by ``fleet_problems()`` as a system check (ids scaling.E010-E014) with one
sentence each.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any

from django.conf import settings

from scaling.conf import QUEUE_URL_RE, ScalingSettings, scaling_settings
from scaling.fleet_levers import FleetPredictive, FleetWarmPool, levers_parse

DEFAULT_FLEET = "video"
SOURCES = ("port", "sqs")
FLEET_NAME_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
# CloudWatch: a namespace is 1-255 of these characters (space included) and must not
# start with "AWS/".
NAMESPACE_RE = re.compile(r"^[0-9A-Za-z.\-_/#: ]{1,255}$")
_MAX_NAME = 255
_MAX_EXTRA_DIMENSIONS = 29  # 30 a datum, AutoScalingGroupName is always one of them
FLEET_KEYS = frozenset(
    {
        "name",
        "asg_name",
        "source",
        "queue_url",
        "namespace",
        "metric_name",
        "dimensions",
        "leases",
        "policy",
    }
)
POLICY_KEYS = frozenset(
    {"target_value", "acceptable_wait", "processing_time", "warmup", "min_size", "max_size"}
    | {"warm_pool", "predictive"}  # scaling.fleet_levers
)


@dataclass(frozen=True)
class FleetPolicy:
    """What ``install_scaling_policy`` and ``simulate_scaling`` take for this fleet when
    their flags do not say (None: the command's own default)."""

    target_value: float | None = None
    acceptable_wait: float | None = None
    processing_time: float | None = None
    warmup: int | None = None
    min_size: int = 0
    max_size: int = 10
    # The group's warm pool and predictive policy (scaling.fleet_levers; None: not asked).
    warm_pool: FleetWarmPool | None = None
    predictive: FleetPredictive | None = None


@dataclass(frozen=True)
class Fleet:
    name: str
    asg_name: str
    namespace: str
    metric_name: str
    # Without AutoScalingGroupName, which every datum carries last.
    dimensions: tuple[tuple[str, str], ...]
    source: str  # "port" | "sqs"
    # sqs: the queue measured; port: the fallback queue ("" for none).
    queue_url: str
    leases: bool
    policy: FleetPolicy = field(default_factory=FleetPolicy)

    @property
    def worker_type(self) -> str:
        return dict(self.dimensions).get("WorkerType", "")

    @property
    def fallback_queue_url(self) -> str:
        return self.queue_url if self.source == "port" else ""

    def conf(self, base: ScalingSettings | None = None) -> ScalingSettings:
        """The settings as this fleet sees them: every module that takes a
        ``ScalingSettings`` (the metric spec, the slot key, the audit record)
        works for the fleet through it."""
        return replace(
            base or scaling_settings(),
            namespace=self.namespace,
            metric_name=self.metric_name,
            worker_type=self.worker_type,
            asg_name=self.asg_name,
            sqs_queue_url=self.queue_url,
            dimensions=self.dimensions,
            fleet=self.name,
        )

    def describe(self) -> dict[str, Any]:
        """The fleet as JSON (scaling_status --json, the fleet list)."""
        return {
            "name": self.name,
            "asg_name": self.asg_name,
            "namespace": self.namespace,
            "metric_name": self.metric_name,
            "dimensions": dict(self.dimensions) | {"AutoScalingGroupName": self.asg_name},
            "source": self.source,
            "queue_url": self.queue_url,
            "leases": self.leases,
        }


@dataclass(frozen=True)
class FleetProblem:
    check_id: str
    message: str
    hint: str


def _port_has_leases() -> bool:
    from scaling.port import lease_hooks  # the port loads the host's code: only when asked

    try:
        return lease_hooks() is not None
    except Exception:  # a broken port is scaling.E009's to report
        return False


def _default_fleet(conf: ScalingSettings) -> Fleet:
    return Fleet(
        name=DEFAULT_FLEET,
        asg_name=conf.asg_name,
        namespace=conf.namespace,
        metric_name=conf.metric_name,
        dimensions=(("WorkerType", conf.worker_type),),
        source="port",
        queue_url=conf.sqs_queue_url,
        leases=_port_has_leases(),
    )


def _raw_fleets() -> tuple[list[Any] | None, FleetProblem | None]:
    raw = getattr(settings, "SCALING_FLEETS", None)
    if raw is None or raw == "" or raw == []:
        return None, None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            return [], FleetProblem(
                "scaling.E010",
                f"SCALING_FLEETS is not valid JSON ({exc}).",
                'Set SCALING_FLEETS to a JSON list such as [{"name": "video", "asg_name": '
                '"academy-video-worker-asg", "source": "port"}], or unset it for one fleet.',
            )
    if not isinstance(raw, list | tuple) or not raw:
        return [], FleetProblem(
            "scaling.E010",
            f"SCALING_FLEETS must be a non-empty list of fleets, got {type(raw).__name__}.",
            "Set SCALING_FLEETS to a list of objects with name, asg_name and source "
            "(see .env.example), or unset it for one fleet.",
        )
    return list(raw), None


def _number(policy: dict[str, Any], key: str, where: str, *, whole: bool = False) -> Any:
    value = policy.get(key)
    if value is None:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if whole:
        ok = ok and float(value).is_integer() and value >= 0
    elif ok:
        ok = value > 0
    if not ok:
        kind = "a whole number of 0 or more" if whole else "a number above 0"
        raise ValueError(f"{where}: policy.{key} must be {kind}, got {value!r}.")
    return int(value) if whole else float(value)


def _policy_parse(raw: Any, where: str) -> FleetPolicy:
    if raw is None:
        return FleetPolicy()
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: policy must be an object, got {type(raw).__name__}.")
    unknown = sorted(set(raw) - POLICY_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown policy key {unknown[0]!r} (known: {', '.join(sorted(POLICY_KEYS))})."
        )
    if raw.get("target_value") is not None and (
        raw.get("acceptable_wait") is not None or raw.get("processing_time") is not None
    ):
        raise ValueError(
            f"{where}: give policy.target_value or policy.acceptable_wait with "
            "policy.processing_time, not both."
        )
    if (raw.get("acceptable_wait") is None) != (raw.get("processing_time") is None):
        raise ValueError(
            f"{where}: policy.acceptable_wait and policy.processing_time go together "
            "(target = acceptable wait / processing time)."
        )
    min_size = _number(raw, "min_size", where, whole=True)
    max_size = _number(raw, "max_size", where, whole=True)
    warm_pool, predictive = levers_parse(raw, where)
    policy = FleetPolicy(
        target_value=_number(raw, "target_value", where),
        acceptable_wait=_number(raw, "acceptable_wait", where),
        processing_time=_number(raw, "processing_time", where),
        warmup=_number(raw, "warmup", where, whole=True),
        min_size=0 if min_size is None else min_size,
        max_size=10 if max_size is None else max_size,
        warm_pool=warm_pool,
        predictive=predictive,
    )
    if policy.max_size < max(policy.min_size, 1):
        raise ValueError(
            f"{where}: policy.max_size {policy.max_size} must be 1 or more and at least "
            f"policy.min_size {policy.min_size}."
        )
    return policy


def namespace_problem(namespace: str) -> str:
    """Why CloudWatch would refuse this namespace ("" when it would not)."""
    if not NAMESPACE_RE.match(namespace):
        return (
            f"namespace {namespace[:300]!r} must be 1-255 letters, digits, spaces or . - _ / # : "
            "(CloudWatch's rule)"
        )
    if namespace.startswith("AWS/"):
        return f"namespace {namespace!r} starts with 'AWS/', which CloudWatch reserves for AWS"
    return ""


def _fleet_parse(raw: Any, index: int, conf: ScalingSettings) -> Fleet:
    """One entry, or ValueError with the sentence (its check id in ``args[1]``)."""
    where = f"SCALING_FLEETS[{index}]"
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be an object, got {type(raw).__name__}.", "scaling.E011")
    name = raw.get("name")
    if isinstance(name, str):
        where = f"SCALING_FLEETS fleet {name!r}"
    unknown = sorted(set(raw) - FLEET_KEYS)
    if unknown:
        raise ValueError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(FLEET_KEYS))}).",
            "scaling.E011",
        )
    if not isinstance(name, str) or not FLEET_NAME_RE.match(name):
        raise ValueError(
            f"{where}: name must be 1-32 lower-case letters, digits, - or _, starting with a "
            f"letter, got {name!r}.",
            "scaling.E011",
        )
    asg_name = raw.get("asg_name")
    if not isinstance(asg_name, str) or not 1 <= len(asg_name.strip()) <= _MAX_NAME:
        raise ValueError(
            f"{where}: asg_name must be the Auto Scaling group's name (1-255 characters), "
            f"got {asg_name!r}.",
            "scaling.E011",
        )
    source = raw.get("source", "port")
    if source not in SOURCES:
        raise ValueError(
            f"{where}: unknown source {source!r}: use 'port' (the host's backlog source, "
            "SCALING_BACKLOG_SOURCE) or 'sqs' (the queue's depth).",
            "scaling.E013",
        )
    queue_url = raw.get("queue_url") or ""
    if not isinstance(queue_url, str) or (queue_url and not QUEUE_URL_RE.match(queue_url)):
        raise ValueError(
            f"{where}: queue_url {queue_url!r} is not an SQS queue URL "
            "(https://sqs.<region>.amazonaws.com/<account-id>/<queue-name>).",
            "scaling.E011",
        )
    if source == "sqs" and not queue_url:
        raise ValueError(
            f"{where}: source 'sqs' needs queue_url, the queue whose depth is the backlog.",
            "scaling.E011",
        )
    namespace = raw.get("namespace", conf.namespace)
    problem = namespace_problem(namespace) if isinstance(namespace, str) else "not a string"
    if problem:
        raise ValueError(f"{where}: {problem}.", "scaling.E014")
    metric_name = raw.get("metric_name", conf.metric_name)
    if not isinstance(metric_name, str) or not 1 <= len(metric_name) <= _MAX_NAME:
        raise ValueError(
            f"{where}: metric_name must be 1-255 characters, got {metric_name!r}.",
            "scaling.E011",
        )
    dims = raw.get("dimensions", {"WorkerType": name.replace("_", " ").title().replace(" ", "")})
    if (
        not isinstance(dims, dict)
        or len(dims) > _MAX_EXTRA_DIMENSIONS
        or "AutoScalingGroupName" in dims
        or not all(
            isinstance(k, str) and isinstance(v, str) and 1 <= len(k) <= 255 and 1 <= len(v) <= 255
            for k, v in dims.items()
        )
    ):
        raise ValueError(
            f"{where}: dimensions must be an object of up to {_MAX_EXTRA_DIMENSIONS} names "
            "to values (1-255 characters each; AutoScalingGroupName is added by itself), "
            f"got {dims!r}.",
            "scaling.E011",
        )
    leases = raw.get("leases")
    if leases is not None and not isinstance(leases, bool):
        raise ValueError(f"{where}: leases must be true or false, got {leases!r}.", "scaling.E011")
    if leases and source != "port":
        raise ValueError(
            f"{where}: leases need source 'port': only the host's backlog source knows "
            "which instances hold work.",
            "scaling.E011",
        )
    if leases is None:
        leases = source == "port" and _port_has_leases()
    return Fleet(
        name=name,
        asg_name=asg_name.strip(),
        namespace=namespace,
        metric_name=metric_name,
        dimensions=tuple((str(k), str(v)) for k, v in dims.items()),
        source=source,
        queue_url=queue_url,
        leases=leases,
        policy=_policy_parse(raw.get("policy"), where),
    )


def fleets_parse(conf: ScalingSettings | None = None) -> tuple[list[Fleet], list[FleetProblem]]:
    """The configured fleets that are valid, and a problem for each entry that is not."""
    conf = conf or scaling_settings()
    raw, problem = _raw_fleets()
    if raw is None:
        return [_default_fleet(conf)], []
    problems = [problem] if problem else []
    fleets: list[Fleet] = []
    for index, entry in enumerate(raw):
        try:
            fleet = _fleet_parse(entry, index, conf)
        except ValueError as exc:
            message = str(exc.args[0])
            check_id = exc.args[1] if len(exc.args) > 1 else "scaling.E011"
            problems.append(FleetProblem(check_id, message, _HINTS[check_id]))
            continue
        same_name = next((f for f in fleets if f.name == fleet.name), None)
        if same_name:
            problems.append(
                FleetProblem(
                    "scaling.E012",
                    f"SCALING_FLEETS names fleet {fleet.name!r} twice.",
                    "Give every fleet its own name.",
                )
            )
            continue
        same_group = next((f for f in fleets if f.asg_name == fleet.asg_name), None)
        if same_group:
            problems.append(
                FleetProblem(
                    "scaling.E012",
                    f"SCALING_FLEETS puts fleets {same_group.name!r} and {fleet.name!r} on one "
                    f"Auto Scaling group {fleet.asg_name!r}: two metrics would fight over it.",
                    "Give every fleet its own Auto Scaling group.",
                )
            )
            continue
        fleets.append(fleet)
    return fleets, problems


_HINTS = {
    "scaling.E011": "Fix the fleet's entry (keys: see .env.example, SCALING_FLEETS).",
    "scaling.E013": "Set the fleet's source to 'port' or 'sqs'.",
    "scaling.E014": "Set the fleet's namespace to one of your own, e.g. Academy/Workers.",
}
