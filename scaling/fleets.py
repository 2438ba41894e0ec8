"""The worker fleets one publisher serves (DESIGN.md "Adopting it": several fleets).

What a fleet is and how SCALING_FLEETS is read: ``scaling.fleet_config``. This
module is what the rest of scaling asks: every valid fleet, one by name, the
default one. With no SCALING_FLEETS there is exactly one fleet, ``video``, from
the ``SCALING_*`` settings.
"""

from __future__ import annotations

from scaling.conf import ScalingSettings, scaling_settings
from scaling.fleet_config import (
    DEFAULT_FLEET,
    Fleet,
    FleetPolicy,
    FleetProblem,
    fleets_parse,
    namespace_problem,
)

__all__ = [
    "DEFAULT_FLEET",
    "Fleet",
    "FleetPolicy",
    "FleetProblem",
    "UnknownFleet",
    "fleet_default",
    "fleet_get",
    "fleet_names",
    "fleet_problems",
    "fleet_with_leases",
    "fleets_get",
    "fleets_namespaces",
    "lease_fleet_conf",
    "namespace_problem",
]


class UnknownFleet(Exception):
    """A fleet name nobody configured: one sentence that lists the known ones."""


def fleets_get() -> list[Fleet]:
    """Every valid fleet, in configured order (the default fleet alone when none is set)."""
    return fleets_parse()[0]


def fleet_problems() -> list[FleetProblem]:
    return fleets_parse()[1]


def fleet_default() -> Fleet | None:
    """``video`` when configured, else the first fleet (what a surface shows without --fleet)."""
    fleets = fleets_get()
    return next((f for f in fleets if f.name == DEFAULT_FLEET), fleets[0] if fleets else None)


def fleet_get(name: str | None) -> Fleet:
    """The fleet called ``name`` (None: the default one), or UnknownFleet with a sentence."""
    fleets = fleets_get()
    if name is None:
        fleet = fleet_default()
        if fleet is None:
            raise UnknownFleet(
                "No valid fleet is configured: fix SCALING_FLEETS (manage.py check)."
            )
        return fleet
    for fleet in fleets:
        if fleet.name == name:
            return fleet
    known = ", ".join(f.name for f in fleets) or "none"
    raise UnknownFleet(f"Unknown fleet {name!r}: configured fleets are {known}.")


def fleet_names() -> list[str]:
    return [f.name for f in fleets_get()]


def fleets_namespaces() -> list[str]:
    """The namespaces the publisher writes to (IAM's PutMetricData condition), in order."""
    return list(dict.fromkeys(f.namespace for f in fleets_get()))


def fleet_with_leases() -> Fleet | None:
    """The fleet whose workers hold the port's leases (the first such), or None.
    Protection at claim acts on its group: a lease names an instance, not a fleet."""
    return next((f for f in fleets_get() if f.leases), None)


def lease_fleet_conf(base: ScalingSettings | None = None) -> ScalingSettings:
    """The settings of the fleet with leases, or the base settings when none has them."""
    fleet = fleet_with_leases()
    base = base or scaling_settings()
    return fleet.conf(base) if fleet else base
