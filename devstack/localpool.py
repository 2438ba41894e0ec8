"""The local group's warm pool, played by the simulator's own ledger (moto keeps none).

moto's server stores a warm pool (``install_scaling_policy --warm-pool``: PutWarmPool)
and answers its configuration, but never holds an instance in it: every local
instance boots cold. The control plane (``devstack.controlplane``) plays the pool
here, per group, with ``scaling.simulation.levers_run.PoolLedger``, the very ledger
``simulate_scaling`` runs (and its rules, ``scaling.simulation.warm_pool``):

- each period it reads ``DescribeWarmPool``; a pool that appears or changes (its
  configuration or the group's MaxSize) gets a new ledger, full and initialised, as
  the model starts; so does every control plane start: a restart begins with a full
  pool, whatever the one before had drawn;
- a scale-out sets the desired capacity, reads the instances moto launched (the ids
  not in the group before), asks the ledger how many of them come from the pool and
  tags those (``WARM_BOOT_TAG``, value: the warm boot in seconds), so that
  ``devstack.localgroup`` counts them booted after the warm boot, in the control
  plane and in the fleet alike; the others boot in ``DEVSTACK_BOOT_SECONDS``;
- a scale-in tells the ledger about each instance that left (ReuseOnScaleIn returns
  it to the pool while the pool is below its size); moto terminates it all the same;
- every period the ledger refills (each new pool instance is ready after a cold boot)
  or trims the pool to its size for the desired capacity.

Not played: the pool's instances do not exist on the endpoint (DescribeWarmPool keeps
answering ``Instances: []``), so Stopped, Running and Hibernated differ in nothing here,
neither in cost nor in speed; a PendingDelete pool counts as none.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from devstack.localgroup import (
    BOOT_SECONDS_MAX,
    WARM_BOOT_TAG,
    LocalGroup,
    group_read,
)
from scaling.policy.warm_pool import PENDING_DELETE, warm_pool_describe, warm_pool_installed
from scaling.simulation.levers_run import PoolLedger
from scaling.simulation.policy import SimPolicy
from scaling.simulation.tracking import TrackingRules
from scaling.simulation.warm_pool import DEFAULT_WARM_BOOT_SECONDS, WarmPoolSpec

log = logging.getLogger("devstack.controlplane")


class WarmBootSecondsError(ValueError):
    pass


def warm_boot_default(boot_seconds: int) -> int:
    """The simulator's 30 s, but never more than half the local cold boot (its defaults,
    60 s cold and 30 s warm, keep that ratio): with make run's 10 s boot, 5 s."""
    return min(DEFAULT_WARM_BOOT_SECONDS, boot_seconds // 2)


def warm_boot_seconds_get(environ: dict[str, str] | None = None, *, boot_seconds: int) -> int:
    """DEVSTACK_WARM_BOOT_SECONDS: how long an instance from the warm pool boots
    [``warm_boot_default``]; from 0 to DEVSTACK_BOOT_SECONDS (a warm boot is not slower)."""
    raw = (environ if environ is not None else os.environ).get("DEVSTACK_WARM_BOOT_SECONDS", "")
    if not raw.strip():
        return warm_boot_default(boot_seconds)
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > boot_seconds:
        raise WarmBootSecondsError(
            f"DEVSTACK_WARM_BOOT_SECONDS must be a whole number of seconds from 0 to "
            f"DEVSTACK_BOOT_SECONDS ({boot_seconds}), got {raw!r}: unset it for "
            f"{warm_boot_default(boot_seconds)}"
        )
    return int(value)


def warm_pool_spec(config: dict[str, Any], *, warm_boot_seconds: int) -> WarmPoolSpec:
    """DescribeWarmPool's WarmPoolConfiguration as the simulator's WarmPoolSpec."""
    held = warm_pool_installed(config)
    return WarmPoolSpec(
        min_size=int(held["MinSize"]),
        max_prepared=held.get("MaxGroupPreparedCapacity"),
        state=str(held["PoolState"]),
        reuse_on_scale_in=bool(held["InstanceReusePolicy"].get("ReuseOnScaleIn", False)),
        warm_boot_seconds=warm_boot_seconds,
    )


class LocalPool:
    """One group's warm pool on the local endpoint; without one, only SetDesiredCapacity."""

    def __init__(
        self,
        *,
        autoscaling: Any,
        ec2: Any,
        asg_name: str,
        boot_seconds: int,
        warm_boot_seconds: int | None = None,
        tag: str = "",
    ) -> None:
        self.autoscaling, self.ec2, self.asg_name = autoscaling, ec2, asg_name
        self.boot = boot_seconds
        self.warm_boot = (
            warm_boot_default(boot_seconds) if warm_boot_seconds is None else warm_boot_seconds
        )
        if not 0 <= self.warm_boot <= min(boot_seconds, BOOT_SECONDS_MAX):
            raise WarmBootSecondsError(
                f"the warm boot must be from 0 to the boot ({boot_seconds} s), got {self.warm_boot}"
            )
        self.tag = tag  # " [fleet]" with several groups
        self.ledger: PoolLedger | None = None
        self._made_for: tuple[WarmPoolSpec, int] | None = None

    @property
    def size(self) -> int:
        """Instances in the pool, those still initialising included (0: no pool)."""
        return 0 if self.ledger is None else len(self.ledger.entries)

    def read(self, *, rules: TrackingRules, desired: int, now: float) -> None:
        """The pool the endpoint holds (DescribeWarmPool); a new or changed one starts full."""
        config = warm_pool_describe(self.autoscaling, self.asg_name)
        if config is None or config.get("Status") == PENDING_DELETE:
            if self.ledger is not None:
                log.info("control plane: warm pool of %s gone%s", self.asg_name, self.tag)
            self.ledger, self._made_for = None, None
            return
        spec = warm_pool_spec(config, warm_boot_seconds=self.warm_boot)
        if self._made_for == (spec, rules.max_size):
            return
        self._made_for = (spec, rules.max_size)
        policy = SimPolicy(rules=rules, boot_seconds=self.boot, warm_pool=spec)
        self.ledger = PoolLedger(policy=policy, desired=desired, measure_from=now)
        log.info(
            "control plane: warm pool of %s played locally: %d instance(s) ready (%s, "
            "min %d, max prepared %s, reuse on scale-in %s), warm boot %d s, cold %d s%s",
            self.asg_name,
            self.size,
            spec.state,
            spec.min_size,
            "MaxSize" if spec.max_prepared is None else spec.max_prepared,
            "yes" if spec.reuse_on_scale_in else "no",
            self.warm_boot,
            self.boot,
            self.tag,
        )

    def capacity_set(self, group: LocalGroup, desired: int, *, now: float) -> int:
        """SetDesiredCapacity; with a pool, the launched instances drawn from it are tagged
        and the ones scale-in removed are told to it. Answers how many came from the pool."""
        self.autoscaling.set_desired_capacity(
            AutoScalingGroupName=self.asg_name, DesiredCapacity=desired, HonorCooldown=False
        )
        ledger = self.ledger
        if ledger is None:
            return 0
        known = {i.instance_id for i in group.instances}
        was_running = {i.instance_id for i in group.running()}
        running = {
            i.instance_id for i in group_read(self.autoscaling, self.ec2, self.asg_name).running()
        }
        for _ in was_running - running:
            ledger.scale_in(desired=desired, now=now)
        new = sorted(running - known)
        if not new:
            return 0
        held = len(ledger.entries)
        ledger.draw(len(new), now=now)
        taken = held - len(ledger.entries)  # draw removes exactly what it takes
        if taken:
            self.ec2.create_tags(
                Resources=new[:taken], Tags=[{"Key": WARM_BOOT_TAG, "Value": str(self.warm_boot)}]
            )
        log.info(
            "control plane: %d new instance(s) of %s: %d from the warm pool (boot %d s), "
            "%d cold (boot %d s); %d left in the pool%s",
            len(new),
            self.asg_name,
            taken,
            self.warm_boot,
            len(new) - taken,
            self.boot,
            self.size,
            self.tag,
        )
        return taken

    def refill(self, *, desired: int, now: float) -> int:
        """The period's refill (or trim) to the pool's size; answers that size."""
        if self.ledger is not None:
            self.ledger.refill(desired=desired, now=now)
        return self.size
