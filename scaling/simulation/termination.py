"""Which instances go when the group holds more instances than its desired capacity.

Two rules, chosen by ``--protection`` (docs/simulator.md, "Scale-in and protection"):

- ``on`` (the API protects an instance from scale-in when it claims a video, and
  the reconciler clears protection once the instance has held no lease for a whole
  slot): only unprotected instances go, those still booting first, then idle ones,
  the newest first. A protected instance is never picked; with every instance
  protected the desired capacity drops and nothing is terminated until one goes
  idle (EC2 Auto Scaling: "When every instance is protected, a scale-in lowers the
  desired capacity and terminates nothing until protection is cleared").
- ``off`` (EC2's default termination policy, which does not look at work in
  progress): with one Availability Zone and one launch template, which the
  simulator assumes, the default policy's criteria (balance across zones, oldest
  launch template, allocation strategy) do not tell instances apart and it picks
  at random. The simulator picks uniformly among every live instance, booting,
  idle and busy alike, with a ``random.Random`` seeded from ``--seed``, so a run
  is repeatable. A busy instance's video starts over: its processing so far is
  the rework.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar


class Candidate(Protocol):
    launched_at: float
    ready_at: float  # InService and taking videos
    busy_until: float  # when its current (or last) video ends; -inf before the first


C = TypeVar("C", bound=Candidate)


def protected(instance: Candidate, *, now: float, grace: float) -> bool:
    """Busy, or idle for less than ``grace`` (a slot: the reconciler has not cleared it)."""
    return instance.busy_until > now - grace


def termination_pick(
    live: Sequence[C],
    *,
    surplus: int,
    now: float,
    protection: bool,
    grace: float,
    rng: random.Random,
) -> list[C]:
    """Up to ``surplus`` instances to terminate now (fewer when protection holds some)."""
    if surplus <= 0:
        return []
    if not protection:
        return rng.sample(list(live), min(surplus, len(live)))

    def order(instance: C) -> tuple[int, float]:
        booting = instance.ready_at > now
        return (0 if booting else 1, -instance.launched_at)

    free = [i for i in live if not protected(i, now=now, grace=grace)]
    return sorted(free, key=order)[:surplus]
