"""`make run`'s local control plane: what EC2 Auto Scaling and CloudWatch would do.

moto's server stores the scaling policies and the metrics but evaluates neither
alarms nor target tracking, so on the local endpoint nothing ever changes the
desired capacity. ``python -m devstack.controlplane`` (started by the launcher
on a local endpoint only; it refuses any other) does, for every configured
fleet's group (SCALING_FLEETS; unset: the video group alone), each on its own
policy and its own metric, once per metric period, half a period after the slot
boundary (the tick publishes at the boundary):

1. reads what is installed on the endpoint (``DescribePolicies``: the target
   tracking policy, per instance or total, its target, warmup and the metric it
   names; the wake-from-zero step policy and its alarm's datapoints);
2. reads the datapoint published for this slot from the endpoint
   (``GetMetricData`` on the metric the policy names) and the group's instances
   (booted = in service: ``devstack.localgroup``);
3. applies target tracking's rules, ``scaling.simulation.tracking``, the very
   code ``simulate_scaling`` runs, and, when a predictive policy is installed in
   ForecastAndScale, holds the group at least at its forecast capacity
   (``devstack.predictive``, on the simulator's ``scaling.simulation.forecast``); then
   sets the desired capacity on the endpoint (``SetDesiredCapacity``; a warm pool is
   played by ``devstack.localpool``, on the simulator's ledger). moto then launches
   instances and, on a lower capacity, terminates only unprotected ones, as EC2 does;
   when instances protected at the scale-in are left over, the capacity is asked again
   each period, so they go once their protection is cleared (EC2 keeps trying too).

No policy, no datapoint, the endpoint down: one log line until it changes,
nothing done. ``DEVSTACK_TIMELINE_FILE`` (optional) gets one JSON line per
period and group: what was observed and decided, the group named (the loop
benchmark and test read it).
``DEVSTACK_SCALE_IN_DATAPOINTS`` (tests only; unset: AWS's 15) shortens the
scale-in alarm so the loop test is back at 0 sooner; everything else is as AWS does.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from devstack.localaws import local_client
from devstack.localgroup import (
    AWS_ERRORS,
    LineOnChange,
    LocalGroup,
    ScaleInDatapointsError,
    group_read,
    local_setup,
    one_line,
    scale_in_datapoints_get,
)
from devstack.localpool import LocalPool, WarmBootSecondsError, warm_boot_seconds_get
from devstack.predictive import HistoryCache, predictive_floor
from scaling.policy.aim import AimError
from scaling.policy.installed import InstalledPolicy, PolicyNotInstalled, installed_policy_parse
from scaling.simulation.tracking import (
    SCALE_IN_DATAPOINTS,
    Observation,
    TargetTracking,
    TrackingRules,
)

log = logging.getLogger("devstack.controlplane")


def installed_read(
    autoscaling: Any, cloudwatch: Any, asg_name: str, policies: list[Any] | None = None
) -> InstalledPolicy:
    """install_scaling_policy's policy on the endpoint (scaling.policy.installed reads it;
    ``policies``: DescribePolicies' answer when read already); PolicyNotInstalled, saying
    what to do, when it is missing or cannot be played here."""
    if policies is None:
        policies = autoscaling.describe_policies(AutoScalingGroupName=asg_name)["ScalingPolicies"]
    return installed_policy_parse(
        policies,
        asg_name=asg_name,
        alarms=cloudwatch.describe_alarms()["MetricAlarms"],
    )


def rules_of(
    installed: InstalledPolicy,
    group: LocalGroup,
    *,
    scale_in_datapoints: int = SCALE_IN_DATAPOINTS,
) -> TrackingRules:
    """What target tracking applies: the installed policy on the group's bounds."""
    wake = installed.wake_datapoints
    return TrackingRules(
        mode=installed.mode,
        target=installed.target,
        min_size=group.min_size,
        max_size=group.max_size,
        scale_in_datapoints=scale_in_datapoints,
        wake_datapoints=wake if wake is not None else 10**9,
        scale_in=installed.scale_in,
    )


def datapoint_read(
    cloudwatch: Any, installed: InstalledPolicy, *, slot: datetime, period: int
) -> int | None:
    """The value published for ``slot`` (the tick stamps it with the slot's start), or None."""
    reply = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "backlog",
                "MetricStat": {
                    "Metric": installed.metric,
                    "Period": period,
                    "Stat": installed.stat,
                },
                "ReturnData": True,
            }
        ],
        StartTime=slot - timedelta(seconds=period),
        EndTime=slot + timedelta(seconds=period),
    )
    for result in reply["MetricDataResults"]:
        for stamp, value in zip(result["Timestamps"], result["Values"], strict=True):
            if stamp == slot:
                return round(value)
    return None


@dataclass(frozen=True)
class Period:
    """One evaluation, as the timeline file keeps it."""

    at: float
    slot: str
    backlog: int | None
    in_service: int
    warm: int
    live: int
    desired: int
    set_to: int
    reason: str
    metric: float | None
    asg_name: str = ""  # the group evaluated (the timeline holds every group's periods)
    predictive: int = 0  # the forecast capacity held (0: none, forecast only, no forecast)
    pool: int = 0  # the warm pool's instances after the period (devstack.localpool; 0: none)


class ControlPlane:
    def __init__(
        self,
        *,
        autoscaling: Any,
        cloudwatch: Any,
        ec2: Any,
        asg_name: str,
        interval_seconds: int,
        boot_seconds: int,
        timeline: Path | None = None,
        scale_in_datapoints: int = SCALE_IN_DATAPOINTS,
        fleet: str = "",
        warm_boot_seconds: int | None = None,
    ) -> None:
        self.autoscaling, self.cloudwatch, self.ec2 = autoscaling, cloudwatch, ec2
        self.asg_name, self.interval, self.boot = asg_name, interval_seconds, boot_seconds
        self.timeline = timeline
        self.scale_in_datapoints = scale_in_datapoints
        self.tracking: TargetTracking | None = None
        # With several groups, every line ends with the fleet it is about.
        self._tag = f" [{fleet}]" if fleet else ""
        self._say, self._history = LineOnChange(log), HistoryCache()
        self.pool = LocalPool(
            autoscaling=autoscaling,
            ec2=ec2,
            asg_name=asg_name,
            boot_seconds=boot_seconds,
            warm_boot_seconds=warm_boot_seconds,
            tag=self._tag,
        )

    def step(self, now: float | None = None) -> Period | None:
        """One period; what it observed and set, or None when it could not look."""
        now = time.time() if now is None else now
        slot_start = now - now % self.interval
        slot = datetime.fromtimestamp(slot_start, tz=UTC)
        try:
            # One DescribePolicies a period: target tracking's and the predictive policy.
            policies = self.autoscaling.describe_policies(AutoScalingGroupName=self.asg_name)
            policies = policies["ScalingPolicies"]
            installed = installed_read(self.autoscaling, self.cloudwatch, self.asg_name, policies)
            group = group_read(self.autoscaling, self.ec2, self.asg_name)
            rules = rules_of(installed, group, scale_in_datapoints=self.scale_in_datapoints)
            backlog = datapoint_read(self.cloudwatch, installed, slot=slot, period=self.interval)
            self.pool.read(rules=rules, desired=group.desired, now=now)
        except PolicyNotInstalled as exc:
            self._say("look", f"control plane: {exc}; nothing done{self._tag}")
            return None
        except (*AWS_ERRORS, LookupError) as exc:
            self._say(
                "look",
                f"control plane: local AWS unreadable, nothing done ({one_line(exc)}){self._tag}",
            )
            return None
        except AimError as exc:
            self._say("look", f"control plane: cannot play the installed policy ({exc}){self._tag}")
            return None
        self._say.forget("look")
        if self.tracking is None or self.tracking.rules != rules:
            # A new or changed policy starts with fresh alarms, as a reinstall would.
            self.tracking = TargetTracking(rules)
            log.info(
                "control plane: playing %s on %s: %s target %g, warmup %d s, wake after %s, "
                "boot %d s, every %d s",
                installed.name,
                self.asg_name,
                installed.mode,
                installed.target,
                installed.warmup_seconds,
                f"{installed.wake_datapoints} datapoint(s)"
                if installed.wake_datapoints
                else "never",
                self.boot,
                self.interval,
            )
        running = group.running()
        booted = [i for i in running if i.booted(now, self.boot)]
        warm = [i for i in booted if now >= i.booted_at(self.boot) + installed.warmup_seconds]
        seen = Observation(
            backlog=backlog,
            in_service=len(booted),
            warm=len(warm),
            live=len(running),
            desired=group.desired,
        )
        decision = self.tracking.step(seen)
        floor = self._predictive(now, group, policies)
        if floor > decision.desired:
            # Predictive scaling and target tracking: the group takes the higher of the two.
            decision = replace(decision, desired=floor, reason="predictive forecast")
        if backlog is None:
            self._say("data", f"control plane: no datapoint for slot {slot:%H:%M:%S}{self._tag}")
        else:
            self._say.forget("data")
        try:
            if decision.desired != group.desired or len(running) > decision.desired:
                # Also when the count is right but protected instances outlived a scale-in.
                self.pool.capacity_set(group, decision.desired, now=now)
        except AWS_ERRORS as exc:
            self._say("set", f"control plane: cannot set the capacity ({one_line(exc)}){self._tag}")
            return None
        self._say.forget("set")
        pool = self.pool.refill(desired=decision.desired, now=now)
        if decision.reason:
            log.info(
                "control plane: %s: BacklogCount %s, metric %s, in service %d (warm %d) "
                "-> desired %d -> %d%s",
                decision.reason,
                backlog,
                "none" if decision.metric is None else f"{decision.metric:g}",
                seen.in_service,
                seen.warm,
                group.desired,
                decision.desired,
                self._tag,
            )
        period = Period(
            at=round(now, 3),
            slot=slot.isoformat(),
            backlog=backlog,
            in_service=seen.in_service,
            warm=seen.warm,
            live=seen.live,
            desired=group.desired,
            set_to=decision.desired,
            reason=decision.reason,
            metric=decision.metric,
            asg_name=self.asg_name,
            predictive=floor,
            pool=pool,
        )
        if self.timeline is not None:
            with self.timeline.open("a") as out:
                out.write(json.dumps(asdict(period)) + "\n")
        return period

    def _predictive(self, now: float, group: LocalGroup, policies: list[Any]) -> int:
        """The forecast capacity the installed predictive policy holds (0: none)."""
        try:
            floor, line = predictive_floor(
                policies,
                self.cloudwatch,
                history=self._history,
                now=now,
                min_size=group.min_size,
                max_size=group.max_size,
            )
        except (*AWS_ERRORS, AimError) as exc:
            self._say("predictive", f"control plane: predictive not played ({one_line(exc)})")
            return 0
        if line:
            self._say("predictive", f"control plane: {line}{self._tag}")
        else:
            self._say.forget("predictive")
        return min(floor, group.max_size)


def next_evaluation(now: float, interval: int) -> float:
    """Half a period after the next slot boundary: the tick has published by then."""
    at = now - now % interval + interval / 2
    return at if at > now else at + interval


def run(plane: ControlPlane | Sequence[ControlPlane], stopping: threading.Event) -> None:
    """Every period until ``stopping``: each group's plane in turn (they share the slots)."""
    planes = [plane] if isinstance(plane, ControlPlane) else list(plane)
    interval = planes[0].interval
    while not stopping.is_set():
        if stopping.wait(max(0.0, next_evaluation(time.time(), interval) - time.time())):
            return
        for each in planes:
            try:
                each.step()
            except Exception as exc:  # a supervisor loop: one line, then the next period
                log.error("control plane: step failed (%s)%s", one_line(exc), each._tag)


def main() -> int:
    setup = local_setup("devstack.controlplane", log)
    if setup is None:
        return 2
    try:
        scale_in_datapoints = scale_in_datapoints_get()
        warm_boot = warm_boot_seconds_get(boot_seconds=setup.boot_seconds)
    except (ScaleInDatapointsError, WarmBootSecondsError) as exc:
        log.error("%s", exc)
        return 2
    timeline = os.environ.get("DEVSTACK_TIMELINE_FILE") or None
    endpoint, region = setup.endpoint, setup.region
    autoscaling = local_client("autoscaling", endpoint, region)
    cloudwatch = local_client("cloudwatch", endpoint, region)
    ec2 = local_client("ec2", endpoint, region)
    several = len(setup.fleets) > 1
    planes = [
        ControlPlane(
            autoscaling=autoscaling,
            cloudwatch=cloudwatch,
            ec2=ec2,
            asg_name=group.asg_name,
            interval_seconds=setup.interval,
            boot_seconds=setup.boot_seconds,
            timeline=Path(timeline) if timeline else None,
            scale_in_datapoints=scale_in_datapoints,
            fleet=group.name if several else "",
            warm_boot_seconds=warm_boot,
        )
        for group in setup.fleets
    ]
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    log.info(
        "control plane on %s: %s, every %d s (target tracking's rules: "
        "scaling.simulation.tracking)%s",
        endpoint,
        ", ".join(f"group {g.asg_name} (fleet {g.name})" for g in setup.fleets),
        setup.interval,
        ""
        if scale_in_datapoints == SCALE_IN_DATAPOINTS
        else f"; scale-in after {scale_in_datapoints} datapoints (DEVSTACK_SCALE_IN_DATAPOINTS)",
    )
    run(planes, stopping)
    return 0


if __name__ == "__main__":
    sys.exit(main())
