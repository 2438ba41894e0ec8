"""The warm pool (``install_scaling_policy --warm-pool``): its request, read-back, plan.

A warm pool keeps instances that have already booted (and run their launch
scripts) beside the group, Stopped, Running or Hibernated, so a scale-out takes
one of them instead of launching from nothing. The flags are checked in
``scaling.policy.capacity_options``; ``scaling.policy.install`` sends what the plan
here says.

What AWS documents and this module relies on:

- PutWarmPool replaces the whole configuration (MinSize defaults to 0, PoolState to
  Stopped); MaxGroupPreparedCapacity unset means "the group's MaxSize", and "to remove
  a value that you previously set, include the property but specify -1"
  (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_PutWarmPool.html);
  so the request leaves it out unless a value held before must be cleared.
- InstanceReusePolicy.ReuseOnScaleIn returns instances to the pool on scale-in instead
  of terminating them; Hibernated needs instances that support hibernation
  (https://docs.aws.amazon.com/autoscaling/ec2/userguide/ec2-auto-scaling-warm-pools.html).
- DescribeWarmPool answers without WarmPoolConfiguration when the group has none, and
  with ``Status: PendingDelete`` while a deletion is under way; DeleteWarmPool without
  ForceDelete waits for the pool's instances to terminate, and deletes them
  (https://docs.aws.amazon.com/autoscaling/ec2/APIReference/API_DeleteWarmPool.html).

Absent flags leave a pool as it is (a deploy pipeline's plain install must not drop
it); a pool this command created carries the group tag ``WARM_POOL_TAG_KEY``, and
only such a pool is removed by ``--no-warm-pool`` or ``--uninstall``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scaling.policy.capacity_options import WarmPoolOptions
from scaling.policy.diff import ItemResult, config_diff
from scaling.policy.options import PolicyError
from scaling.policy.requests import ApiRequest, group_tag_delete_request_build

WARM_POOL_TAG_KEY = "academy:scaling:warm-pool"
WARM_POOL_TAG_VALUE = "installed by install_scaling_policy"
WARM_POOL_KIND = "warm-pool"
PENDING_DELETE = "PendingDelete"
# What DescribeWarmPool leaves out, at the API's defaults (PutWarmPool's documentation).
_DEFAULTS: dict[str, Any] = {
    "MinSize": 0,
    "PoolState": "Stopped",
    "InstanceReusePolicy": {"ReuseOnScaleIn": False},
}
DELETE_NOTE = "AWS terminates the pool's instances"
NOT_OURS = "not installed by this command"

Planned = tuple[ItemResult | None, list[ApiRequest]]


def warm_pool_request_build(
    *, asg_name: str, pool: WarmPoolOptions, clear_max: bool = False
) -> ApiRequest:
    """PutWarmPool; ``clear_max``: the pool holds a MaxGroupPreparedCapacity that the
    options leave unset (sent as -1, AWS's way to remove it)."""
    params: dict[str, Any] = {
        "AutoScalingGroupName": asg_name,
        "MinSize": pool.min_size,
        "PoolState": pool.state,
        "InstanceReusePolicy": {"ReuseOnScaleIn": pool.reuse_on_scale_in},
    }
    if pool.max_prepared is not None:
        params["MaxGroupPreparedCapacity"] = pool.max_prepared
    elif clear_max:
        params["MaxGroupPreparedCapacity"] = -1
    return ApiRequest("autoscaling", "PutWarmPool", params)


def warm_pool_wanted(pool: WarmPoolOptions) -> dict[str, Any]:
    """The configuration the options ask for, as DescribeWarmPool would hold it."""
    params = warm_pool_request_build(asg_name="", pool=pool).params
    return {key: value for key, value in params.items() if key != "AutoScalingGroupName"}


def warm_pool_delete_request_build(*, asg_name: str) -> ApiRequest:
    # ForceDelete false: AWS terminates the instances through their lifecycle (the drain
    # hook included) rather than at once.
    return ApiRequest(
        "autoscaling", "DeleteWarmPool", {"AutoScalingGroupName": asg_name, "ForceDelete": False}
    )


def warm_pool_tag_request_build(*, asg_name: str) -> ApiRequest:
    return ApiRequest(
        "autoscaling",
        "CreateOrUpdateTags",
        {
            "Tags": [
                {
                    "ResourceId": asg_name,
                    "ResourceType": "auto-scaling-group",
                    "Key": WARM_POOL_TAG_KEY,
                    "Value": WARM_POOL_TAG_VALUE,
                    "PropagateAtLaunch": False,
                }
            ]
        },
    )


def warm_pool_tag_delete_request_build(*, asg_name: str) -> ApiRequest:
    return group_tag_delete_request_build(asg_name=asg_name, key=WARM_POOL_TAG_KEY)


def warm_pool_describe(autoscaling: Any, asg_name: str) -> dict[str, Any] | None:
    """The group's WarmPoolConfiguration as AWS holds it (Status included), or None."""
    answer = autoscaling.describe_warm_pool(AutoScalingGroupName=asg_name)
    config = answer.get("WarmPoolConfiguration")
    return dict(config) if config else None


def warm_pool_installed(config: Mapping[str, Any]) -> dict[str, Any]:
    """A WarmPoolConfiguration cut to the fields the command sets, AWS's defaults filled
    in and an unset MaxGroupPreparedCapacity (absent or -1) left out."""
    held = {key: config.get(key, default) for key, default in _DEFAULTS.items()}
    maximum = config.get("MaxGroupPreparedCapacity")
    if maximum is not None and maximum >= 0:
        held["MaxGroupPreparedCapacity"] = maximum
    return held


def warm_pool_tagged(group: Mapping[str, Any]) -> bool:
    return any(tag.get("Key") == WARM_POOL_TAG_KEY for tag in group.get("Tags", []))


def warm_pool_plan(
    *,
    asg_name: str,
    group: Mapping[str, Any],
    held: Mapping[str, Any] | None,
    pool: WarmPoolOptions | None,
    off: bool,
) -> Planned:
    """What an install does to the pool: (its item, or None when nothing is asked and
    nothing is there; the writes it needs)."""
    if off:
        return warm_pool_removal(asg_name=asg_name, group=group, held=held, asked=True)
    if pool is None:
        if held is None:
            return None, []
        note = "--no-warm-pool removes it" if warm_pool_tagged(group) else NOT_OURS
        return ItemResult(WARM_POOL_KIND, asg_name, "kept", note=note), []
    if held is not None and held.get("Status") == PENDING_DELETE:
        raise PolicyError(
            f"The warm pool of {asg_name} is being deleted (PendingDelete): run again once "
            "its instances are gone and DescribeWarmPool shows no pool."
        )
    installed = None if held is None else warm_pool_installed(held)
    clear = installed is not None and "MaxGroupPreparedCapacity" in installed
    request = warm_pool_request_build(asg_name=asg_name, pool=pool, clear_max=clear)
    if installed is None:
        tag = warm_pool_tag_request_build(asg_name=asg_name)
        return ItemResult(WARM_POOL_KIND, asg_name, "created"), [request, tag]
    changes = config_diff(desired=warm_pool_wanted(pool), actual=installed)
    note = "" if warm_pool_tagged(group) else f"{NOT_OURS}: --uninstall keeps it"
    item = ItemResult(WARM_POOL_KIND, asg_name, "updated" if changes else "unchanged", changes)
    item.note = note
    return item, [request] if changes else []


def warm_pool_removal(
    *, asg_name: str, group: Mapping[str, Any], held: Mapping[str, Any] | None, asked: bool
) -> Planned:
    """--no-warm-pool (``asked``) or --uninstall: the pool goes only when this command
    created it; with nothing there, --uninstall says nothing and --no-warm-pool "absent"."""
    if held is None:
        # A tag whose pool went some other way: the tag goes too.
        stale = [warm_pool_tag_delete_request_build(asg_name=asg_name)]
        writes = stale if warm_pool_tagged(group) else []
        return (ItemResult(WARM_POOL_KIND, asg_name, "absent") if asked or writes else None), writes
    if not warm_pool_tagged(group):
        return ItemResult(WARM_POOL_KIND, asg_name, "kept", note=NOT_OURS), []
    untag = warm_pool_tag_delete_request_build(asg_name=asg_name)
    if held.get("Status") == PENDING_DELETE:
        item = ItemResult(WARM_POOL_KIND, asg_name, "removed", note="already being deleted")
        return item, [untag]
    delete = warm_pool_delete_request_build(asg_name=asg_name)
    return ItemResult(WARM_POOL_KIND, asg_name, "removed", note=DELETE_NOTE), [delete, untag]
