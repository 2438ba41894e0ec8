"""export_scaling_stack's work: the flags read, the stack built, the text rendered.

The flags that shape the resources are install_scaling_policy's own, read by the
same parser (``policy_options_parse``; ``--fleet``: ``fleet_options``, the
fleet's policy defaults). Nothing is read from AWS: the group is referenced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from scaling.export.cloudformation import CFN_TYPES, cfn_render, cfn_template_build
from scaling.export.resources import Stack, stack_build
from scaling.export.terraform import TF_TYPES, tf_document_build, tf_render
from scaling.fleets import UnknownFleet, fleet_get
from scaling.policy.fleet_runs import OPTION_FLAGS, fleet_options
from scaling.policy.options import PolicyError, PolicyOptions, policy_options_parse

Format = Literal["cloudformation", "terraform"]
FORMATS: tuple[Format, ...] = ("cloudformation", "terraform")
_CFN_SUFFIXES = (".json", ".template", ".yaml", ".yml")


@dataclass(frozen=True)
class Export:
    format: Format
    yaml: bool
    stack: Stack
    document: dict[str, Any]
    text: str
    output: Path | None

    def as_json(self) -> dict[str, Any]:
        types = CFN_TYPES if self.format == "cloudformation" else TF_TYPES
        return {
            "format": self.format,
            "yaml": self.yaml,
            "fleet": self.stack.fleet,
            "asg_name": self.stack.group_default,
            "output": None if self.output is None else str(self.output),
            "resources": [
                {"id": r.logical_id, "kind": r.kind, "type": types[r.request.operation]}
                for r in self.stack.resources
            ],
            "notes": self.stack.notes,
        }


def _format_parse(raw: str | None) -> Format:
    for known in FORMATS:
        if raw == known:
            return known
    raise PolicyError(f"--format must be cloudformation or terraform, got {raw!r}.")


def _yaml_wanted(fmt: Format, output: Path | None, flag: bool) -> bool:
    """CloudFormation as YAML with --yaml or an --output ending .yaml / .yml."""
    suffix = output.name.lower() if output else ""
    if fmt == "terraform":
        if flag:
            raise PolicyError("--yaml is for --format cloudformation; Terraform is .tf.json.")
        if output is not None and not suffix.endswith(".tf.json"):
            raise PolicyError(f"--output for Terraform must end .tf.json, got {output.name!r}.")
        return False
    if output is not None and not suffix.endswith(_CFN_SUFFIXES):
        raise PolicyError(
            f"--output for CloudFormation must end .json, .template, .yaml or .yml, got "
            f"{output.name!r}."
        )
    return flag or suffix.endswith((".yaml", ".yml"))


def export_build(options: Mapping[str, Any]) -> Export:
    """The command's export from its parsed options; PolicyError: a usage error."""
    fmt = _format_parse(options.get("format"))
    output = Path(options["output"]) if options.get("output") else None
    as_yaml = _yaml_wanted(fmt, output, bool(options.get("yaml")))
    flags: dict[str, Any] = {name: options.get(name) for name in OPTION_FLAGS}
    fleet = None
    if options.get("fleet") is not None:
        if options.get("asg_name") is not None:
            raise PolicyError(
                "--fleet takes no --asg-name: the fleet's group is its asg_name (SCALING_FLEETS)."
            )
        try:
            fleet = fleet_get(options["fleet"])
        except UnknownFleet as exc:
            raise PolicyError(str(exc)) from exc
        policy = fleet_options(fleet, flags)
    else:
        policy = policy_options_parse(asg_name=options.get("asg_name"), **flags)
    if fmt == "terraform":
        from_fleet = (
            fleet is not None and fleet.policy.warm_pool is not None and not flags["warm_pool"]
        )
        _terraform_capacity_check(policy, fleet.name if fleet and from_fleet else None)
    stack = stack_build(options=policy, fleet=fleet)
    if fmt == "cloudformation":
        document = cfn_template_build(stack)
        text = cfn_render(document, yaml_text=as_yaml)
    else:
        document = tf_document_build(stack)
        text = tf_render(document)
    return Export(fmt, as_yaml, stack, document, text, output)


def _terraform_capacity_check(policy: PolicyOptions, pool_fleet: str | None) -> None:
    """A warm pool is refused (``pool_fleet``: asked by that fleet's policy.warm_pool)."""
    if policy.warm_pool is None:
        return
    if pool_fleet is not None:
        raise PolicyError(
            f"Fleet {pool_fleet}'s policy.warm_pool has no Terraform resource of its own: add "
            "a warm_pool block to the group's aws_autoscaling_group (which this export "
            "references, not owns) and export with --no-warm-pool, or export --format "
            "cloudformation (AWS::AutoScaling::WarmPool)."
        )
    raise PolicyError(
        "--warm-pool has no Terraform resource of its own: add a warm_pool block to the "
        "group's aws_autoscaling_group (which this export references, not owns), or "
        "export --format cloudformation (AWS::AutoScaling::WarmPool)."
    )


def export_lines(export: Export) -> list[str]:
    """What the command says after writing --output."""
    what = "YAML" if export.yaml else "JSON"
    kind = f"CloudFormation ({what})" if export.format == "cloudformation" else "Terraform"
    fleet = f" (fleet {export.stack.fleet})" if export.stack.fleet else ""
    return [
        f"Wrote {export.output}: {kind}, {len(export.stack.resources)} resources for group "
        f"{export.stack.group_default}{fleet}, the group referenced, not created.",
        *(f"  {r.logical_id}  {r.kind}" for r in export.stack.resources),
        *(f"Note: {note}" for note in export.stack.notes),
    ]
