"""The fleet reconciler, once per slot from the tick (DESIGN.md invariant 8).

One ``DescribeAutoScalingGroups`` for the group, then only the changes:

- an instance of the group that holds a live lease is protected from scale-in;
- a protected instance that has held no live lease for a whole slot is not (the
  grace, counted from ``marks.BUSY``, keeps a worker that takes its next video
  within seconds from flapping protection off and on);
- an instance waiting in ``Terminating:Wait`` under our hook gets a lifecycle
  heartbeat while it holds a live lease and CONTINUE once it holds none; it is
  marked draining so that its worker's renewals answer ``drain: true``;
- warm pool (``scaling.fleet.pool``): when the group has one, one ``DescribeWarmPool``
  too. An instance returning to the pool on scale-in waits in ``Warmed:Pending:Wait``
  under the same hook and is drained the same way; every pool instance is marked
  draining (a ``Warmed:Running`` one's worker takes no new video) and is never
  protected (AWS refuses protection for pool instances). A lease its worker held
  when the instance was stopped into the pool expires and is recovered like a
  terminated instance's (``publishing/recovery.py``). A pool that cannot be read is
  a note (``pool_note``); the group's own work still runs.

Protection changes go in batches of at most 50 ids, each naming the group, and
only for ids the group's own description listed: nothing outside the group is
ever touched. The first AWS error (throttling included) ends this slot's run:
no retry loop, one log line, the next slot tries again. Every call is bounded
by the client's timeouts (one attempt) and by ``timeout_seconds`` as a whole.

Right after a database outage every lease looks expired while the workers are
still busy: until the database has answered for a whole lease (the wait lease
recovery keeps, ``publishing/recovery.py``) an expired lease still counts as busy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from django.db import DatabaseError

from scaling.aws import fleet_client
from scaling.conf import ScalingSettings, scaling_settings
from scaling.database import connection_drop
from scaling.deadline import DeadlineExceeded, deadline
from scaling.errors import error_one_line
from scaling.fleet.hook import LIFECYCLE_HOOK_NAME
from scaling.fleet.marks import (
    BACKOFF,
    BACKOFF_NAME,
    BUSY,
    DRAINING,
    PROTECTED,
    marks_drop,
    marks_read,
    marks_write,
)
from scaling.fleet.pool import POOL_WAIT, in_pool, warm_pool_describe
from scaling.fleet.protection import aws_error_code
from scaling.port import LeaseHooks, lease_hooks
from scaling.state import StateStore

logger = logging.getLogger("scaling.fleet")

BATCH_LIMIT = 50  # SetInstanceProtection takes at most 50 ids a call
LIFECYCLE_LIMIT = 50  # lifecycle calls in one run (each names one instance)
TERMINATING_WAIT = "Terminating:Wait"
# Where protection means something; warm pools and leaving instances are left alone.
PROTECTABLE_STATES = frozenset({"Pending", "Pending:Wait", "Pending:Proceed", "InService"})


def fleet_timeout_seconds(interval: int) -> float:
    """The reconciler's share of a tick: the metric must still go out in its slot."""
    return min(3.0, interval * 0.2)


@dataclass
class FleetOutcome:
    ran: bool = False  # the group was read: the four counts below are measured
    busy: int | None = None  # instances of the group holding a live lease
    protected: int | None = None  # instances of the group protected after this run
    in_service: int | None = None  # instances of the group in LifecycleState InService
    desired: int | None = None  # the group's DesiredCapacity, as read
    protected_now: list[str] = field(default_factory=list)
    unprotected: list[str] = field(default_factory=list)
    heartbeats: list[str] = field(default_factory=list)
    completed: list[str] = field(default_factory=list)
    note: str = ""  # why the run stopped short; empty when it did all it meant to
    pool: int | None = None  # instances in the warm pool (None: no pool, or not read)
    pool_note: str = ""  # why the pool was not read (or read in part)


def instances_busy(hooks: LeaseHooks, *, expired_too: bool) -> set[str]:
    """Instances holding a live lease (``expired_too``: or any in-progress item)."""
    return {
        row.instance_id
        for row in hooks.leases_by_instance()
        if row.instance_id and (row.live > 0 or (expired_too and row.processing > 0))
    }


def fleet_reconcile(
    *,
    store: StateStore,
    database_answered: bool,
    now: float,
    timeout_seconds: float,
    conf: ScalingSettings | None = None,
) -> FleetOutcome:
    """Bring the group's protection and lifecycle actions in line with the leases
    (``conf``: the fleet's settings, scaling.fleets.Fleet.conf; default the video fleet's)."""
    hooks = lease_hooks()
    if hooks is None:
        return FleetOutcome()  # no leases, no busy instances: protection and drain are off
    if not database_answered:
        return FleetOutcome(note="fleet skipped: the database did not answer")
    run = _Run(store=store, now=now, hooks=hooks, conf=conf)
    try:
        with deadline(timeout_seconds, "the fleet reconciler"):
            run.go()
    except (DatabaseError, DeadlineExceeded) as exc:
        connection_drop()
        run.stop(error_one_line(exc))
    outcome = run.outcome
    changes = outcome.protected_now or outcome.unprotected or outcome.heartbeats
    fields = (
        outcome.busy,
        outcome.protected,
        ",".join(outcome.protected_now) or "-",
        ",".join(outcome.unprotected) or "-",
        ",".join(outcome.heartbeats) or "-",
        ",".join(outcome.completed) or "-",
    )
    counts = "busy=%s protected=%s protect=%s unprotect=%s heartbeat=%s complete=%s"
    if outcome.note:
        logger.warning("Fleet reconcile stopped | " + counts + " reason=%s", *fields, outcome.note)
    elif changes or outcome.completed:
        logger.info("Fleet reconciled | " + counts, *fields)
    return outcome


class _Run:
    def __init__(
        self, *, store: StateStore, now: float, hooks: LeaseHooks, conf: ScalingSettings | None
    ) -> None:
        self.store = store
        self.hooks = hooks
        self.now = now
        self.conf = conf or scaling_settings()
        self.outcome = FleetOutcome()
        self.stopped = False
        self.expired_too = True
        self.client: Any = None

    def stop(self, reason: str) -> None:
        self.stopped = True
        self.outcome.note = self.outcome.note or f"fleet: {reason}"[:600]

    def go(self) -> None:
        up_since = self.store.database_up_since(healthy=None, now=self.now)
        self.expired_too = up_since is None or self.now - up_since < self.hooks.lease_seconds()
        # Read before the leases: a claim that protects its instance after this moment
        # leaves a PROTECTED mark newer than it (scaling.fleet.protection).
        read_at = time.time()
        busy_anywhere = instances_busy(self.hooks, expired_too=self.expired_too)
        self.client = fleet_client()
        asg = self.conf.asg_name
        described = self._call(
            "DescribeAutoScalingGroups",
            self.client.describe_auto_scaling_groups,
            AutoScalingGroupNames=[asg],
        )
        if described is None:
            return
        groups = described.get("AutoScalingGroups", [])
        if not groups:
            self.stop(f"no Auto Scaling group {asg}")
            return
        marks_drop(self.store, BACKOFF, [BACKOFF_NAME])  # AWS answers: claims may call again
        states = {
            i["InstanceId"]: (i.get("LifecycleState", ""), bool(i.get("ProtectedFromScaleIn")))
            for i in groups[0].get("Instances", [])
        }
        if groups[0].get("WarmPoolConfiguration"):
            for i, state in self._pool_read(asg).items():
                states.setdefault(i, (state, False))
        pool = {i for i, (state, _) in states.items() if in_pool(state)}
        busy_all = busy_anywhere & states.keys()
        busy = busy_all - pool  # a pool instance is never protected, nor counted busy
        protected = {i for i, (_, on) in states.items() if on}
        protectable = {i for i, (state, _) in states.items() if state in PROTECTABLE_STATES}
        # Leaving the group: terminating, or in the pool (drained alike).
        terminating = pool | {
            i for i, (state, _) in states.items() if state.startswith("Terminating")
        }
        waiting = sorted(
            i for i, (state, _) in states.items() if state in (TERMINATING_WAIT, POOL_WAIT)
        )
        self.outcome.ran = True
        self.outcome.busy = len(busy)
        if pool or (
            groups[0].get("WarmPoolConfiguration") and "not read" not in self.outcome.pool_note
        ):
            self.outcome.pool = len(pool)
        self.outcome.in_service = sum(1 for state, _ in states.values() if state == "InService")
        desired = groups[0].get("DesiredCapacity")
        self.outcome.desired = desired if isinstance(desired, int) else None
        self.outcome.protected = len(protected)

        last_busy = self._marks_tidy(
            states, busy=busy, protected=protected, terminating=terminating
        )
        idle_protected = sorted((protected & protectable) - busy)
        # Protected and idle, never seen busy (set by hand, or the marks were lost):
        # the grace starts now rather than clearing at once.
        marks_write(self.store, BUSY, {i: self.now for i in idle_protected if i not in last_busy})
        to_unprotect = [
            i
            for i in idle_protected
            if i in last_busy and self.now - last_busy[i] >= self.conf.interval
        ]

        # A claim that protected its instance while the group was being read: AWS holds
        # that protection already (the Describe may not show it); no second call.
        claimed = {i for i, at in marks_read(self.store, PROTECTED).items() if at >= read_at}
        protected |= claimed & states.keys()
        self._protection(sorted((busy & protectable) - protected), on=True, protected=protected)
        for instance_id in waiting[:LIFECYCLE_LIMIT]:
            self._lifecycle(instance_id, busy=instance_id in busy_all)
        if to_unprotect and not self.stopped:
            # Claims from now on call AWS themselves instead of trusting the mark.
            marks_drop(self.store, PROTECTED, to_unprotect)
            self._protection(to_unprotect, on=False, protected=protected)
            # A claim that landed between the read and the call: protect it again.
            again = instances_busy(self.hooks, expired_too=self.expired_too) & set(
                self.outcome.unprotected
            )
            self._protection(sorted(again), on=True, protected=protected)
        self.outcome.protected = len(protected)
        marks_write(self.store, PROTECTED, {i: self.now for i in protected})

    def _pool_read(self, asg: str) -> dict[str, str]:
        """{instance id: Warmed:* state} of the group's warm pool; {} when it cannot be
        read (``pool_note`` says why; the run goes on with the group's own instances)."""
        try:
            answer = warm_pool_describe(self.client, asg)
        except (BotoCoreError, ClientError) as exc:
            code = aws_error_code(exc)
            if code in ("AccessDenied", "AccessDeniedException"):
                reason = (
                    "the publisher role lacks autoscaling:DescribeWarmPool: attach "
                    "deploy/iam/publisher.json; until then instances returning to the pool "
                    "are not drained"
                )
            else:
                reason = f"DescribeWarmPool failed ({error_one_line(exc)})"
            self.outcome.pool_note = f"warm pool not read: {reason}"[:600]
            logger.warning("Fleet: %s", self.outcome.pool_note)
            return {}
        if not answer.complete:
            self.outcome.pool_note = "warm pool read in part: more than 200 instances"
        return {
            str(i["InstanceId"]): str(i.get("LifecycleState", ""))
            for i in answer.instances
            if in_pool(str(i.get("LifecycleState", "")))
        }

    def _marks_tidy(
        self,
        states: dict[str, tuple[str, bool]],
        *,
        busy: set[str],
        protected: set[str],
        terminating: set[str],
    ) -> dict[str, float]:
        """This run's marks written, marks of instances that left the group dropped;
        answers the busy marks as they were before this run."""
        last_busy = marks_read(self.store, BUSY)
        # A lease live now may last until just before the next run: busy until the next
        # slot starts, so the grace counts from the job's end, not from this sighting.
        interval = self.conf.interval
        busy_until = self.now - self.now % interval + interval
        marks_write(self.store, BUSY, {i: busy_until for i in busy})
        marks_write(self.store, DRAINING, {i: self.now for i in terminating})
        for kind, keep in ((BUSY, states.keys()), (PROTECTED, protected), (DRAINING, terminating)):
            known = last_busy if kind == BUSY else marks_read(self.store, kind)
            marks_drop(self.store, kind, [name for name in known if name not in keep])
        return last_busy

    def _protection(self, ids: list[str], *, on: bool, protected: set[str]) -> None:
        for start in range(0, len(ids), BATCH_LIMIT):
            batch = ids[start : start + BATCH_LIMIT]
            answered = self._call(
                "SetInstanceProtection",
                self.client.set_instance_protection,
                AutoScalingGroupName=self.conf.asg_name,
                InstanceIds=batch,
                ProtectedFromScaleIn=on,
            )
            if answered is None:
                return
            if on:
                protected.update(batch)
                self.outcome.protected_now += batch
            else:
                protected.difference_update(batch)
                self.outcome.unprotected += batch

    def _lifecycle(self, instance_id: str, *, busy: bool) -> None:
        params = {
            "LifecycleHookName": LIFECYCLE_HOOK_NAME,
            "AutoScalingGroupName": self.conf.asg_name,
            "InstanceId": instance_id,
        }
        if busy:
            call = self.client.record_lifecycle_action_heartbeat
            if (
                self._call("RecordLifecycleActionHeartbeat", call, per_instance=True, **params)
                is not None
            ):
                self.outcome.heartbeats.append(instance_id)
        else:
            call = self.client.complete_lifecycle_action
            params["LifecycleActionResult"] = "CONTINUE"
            if self._call("CompleteLifecycleAction", call, per_instance=True, **params) is not None:
                self.outcome.completed.append(instance_id)

    def _call(
        self,
        operation: str,
        call: Callable[..., Any],
        *,
        per_instance: bool = False,
        **params: Any,
    ) -> dict[str, Any] | None:
        """The call's answer; None when it failed (the run stops, save for an instance
        that waits under another hook: AWS refuses that one alone, ValidationError)."""
        if self.stopped:
            return None
        try:
            return dict(call(**params))
        except (BotoCoreError, ClientError) as exc:
            code = aws_error_code(exc)
            if per_instance and code == "ValidationError":
                logger.info(
                    "Fleet: %s refused for one instance | instance_id=%s error=%s",
                    operation,
                    params.get("InstanceId"),
                    error_one_line(exc),
                )
                return None
            waits = "throttled" if "Throttl" in code or "LimitExceeded" in code else "failed"
            self.stop(f"{operation} {waits} ({error_one_line(exc)}); the rest waits a slot")
            return None
