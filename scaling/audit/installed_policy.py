"""The installed policy on the group's bounds, for pages: what the admin shows and aims with.

One short AWS attempt, remembered for a minute (answer or error), so an admin
page never waits on AWS more than once a minute. The policy is read back by
``scaling.policy.installed``, the parser ``make run``'s control plane uses too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from django.core.cache import cache

from scaling.audit.aws_errors import error_sentence
from scaling.audit.aws_reads import group_describe, group_of, policies_describe
from scaling.audit.part import AWS_ERRORS, ERROR_LIMIT
from scaling.aws import autoscaling_client
from scaling.conf import scaling_settings
from scaling.policy.aim import capacity_aim
from scaling.policy.installed import InstalledPolicy, PolicyNotInstalled, installed_policy_parse
from scaling.policy.requests import TARGET_POLICY_NAME

INSTALLED_POLICY_CACHE_SECONDS = 60


@dataclass(frozen=True)
class PolicyOnGroup:
    """The installed target tracking policy and the group's MinSize and MaxSize."""

    policy: InstalledPolicy
    min_size: int
    max_size: int

    def aim(self, backlog: int) -> int:
        return capacity_aim(
            backlog=backlog,
            target=self.policy.target,
            mode=self.policy.mode,
            min_size=self.min_size,
            max_size=self.max_size,
        )


def installed_policy_get(*, asg_name: str | None = None) -> PolicyOnGroup | str:
    """The installed target tracking policy and the group's bounds, or why they are unknown."""
    name = asg_name or scaling_settings().asg_name
    key = f"scaling:installed-policy:{name}"
    cached = cache.get(key)
    if cached is not None:
        return cast("PolicyOnGroup | str", cached)
    result: PolicyOnGroup | str
    try:
        autoscaling = autoscaling_client(role="status", for_page=True)
        group = group_of(group_describe(autoscaling, name))
        policy = installed_policy_parse(policies_describe(autoscaling, name), asg_name=name)
        result = PolicyOnGroup(policy=policy, min_size=group.min, max_size=group.max)
    except PolicyNotInstalled:
        result = f"no {TARGET_POLICY_NAME} policy on {name}: run manage.py install_scaling_policy"
    except (*AWS_ERRORS, LookupError) as exc:
        result = f"Installed policy unknown: {error_sentence(exc, limit=ERROR_LIMIT)}"
    cache.set(key, result, INSTALLED_POLICY_CACHE_SECONDS)
    return result
