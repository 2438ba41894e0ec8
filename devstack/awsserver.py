"""`make run`'s "aws" process: moto's server, without its request log.

``python -m devstack.awsserver --port 5000`` runs moto's own ``main`` (what the
``moto_server`` script runs) on 127.0.0.1. werkzeug logs every request at INFO, and
the control plane, the fleet and the tick call it several times a second: that
log would bury every other process's lines. Warnings and errors still show.

One fix to moto's Auto Scaling, where it differs from AWS in a way two fleets
meet (``policies_per_group``): moto 5 keeps scaling policies by name alone, so a
second group's ``academy-backlog-target-tracking`` replaced the first group's.
AWS names a policy within its group; so does this server. The test suite's and the
benchmarks' moto (``devstack.localaws.moto_server``) is this server too.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any


def policies_per_group() -> None:
    """Scaling policies keyed by (group, name), as AWS keys them; idempotent.

    PutScalingPolicy stores under both; DeletePolicy and ExecutePolicy take the group
    (``AutoScalingGroupName``) with the name, or the policy's ARN, as AWS does.
    """
    from moto.autoscaling.models import AutoScalingBackend
    from moto.autoscaling.responses import AutoScalingResponse
    from moto.core.responses import EmptyResult

    if getattr(AutoScalingBackend.put_scaling_policy, "per_group", False):
        return
    put = AutoScalingBackend.put_scaling_policy

    def put_scaling_policy(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
        policy = put(self, name, *args, **kwargs)
        if self.policies.get(name) is policy:  # moto's own key: the name alone
            del self.policies[name]
        self.policies[f"{policy.auto_scaling_group_name}\x00{name}"] = policy
        return policy

    def matching(backend: Any, group: str | None, name: str) -> list[str]:
        return [
            key
            for key, policy in backend.policies.items()
            if name in (policy.name, policy.arn)
            and (not group or policy.auto_scaling_group_name == group)
        ]

    def delete_policy(self: Any) -> Any:
        backend = self.autoscaling_backend
        group, name = self._get_param("AutoScalingGroupName"), self._get_param("PolicyName")
        for key in matching(backend, group, name):
            del backend.policies[key]
        return EmptyResult()

    def execute_policy(self: Any) -> Any:
        backend = self.autoscaling_backend
        group, name = self._get_param("AutoScalingGroupName"), self._get_param("PolicyName")
        for key in matching(backend, group, name)[:1]:
            backend.policies[key].execute()
        return EmptyResult()

    put_scaling_policy.per_group = True  # type: ignore[attr-defined]
    AutoScalingBackend.put_scaling_policy = put_scaling_policy  # type: ignore[method-assign]
    AutoScalingResponse.delete_policy = delete_policy  # type: ignore[method-assign]
    AutoScalingResponse.execute_policy = execute_policy  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.awsserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # werkzeug sets INFO only on a logger whose level is unset.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    policies_per_group()

    print(
        f"moto server on http://{args.host}:{args.port} (SQS, Auto Scaling, CloudWatch, EC2; "
        "request log off)",
        flush=True,
    )
    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
