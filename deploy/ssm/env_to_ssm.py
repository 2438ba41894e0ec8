"""Upload an env file to SSM Parameter Store, one SecureString per variable.

    python -m deploy.ssm.env_to_ssm --env-file academy.env --prefix /academy/production

Each NAME=value becomes the SecureString parameter <prefix>/NAME. A parameter
whose value is already the same is left alone (no new version); --prune
deletes parameters under the prefix that the file no longer has. Prints
parameter names and what happened to them, never a value.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.ssm.envfile import (
    EnvFileError,
    command_run,
    env_parse,
    prefix_normalise,
    region_resolve,
    ssm_client_build,
    ssm_values_get,
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.ssm.env_to_ssm", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--env-file", required=True, type=Path, help="NAME=value lines.")
    parser.add_argument("--prefix", required=True, help="Parameter path, e.g. /academy/production")
    parser.add_argument("--kms-key-id", help="KMS key for the SecureStrings (default: aws/ssm).")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION).")
    parser.add_argument(
        "--prune", action="store_true", help="Delete parameters the file no longer has."
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="Say what would change, change nothing."
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return command_run(lambda secrets: _upload(args, secrets))


def _upload(args: argparse.Namespace, secrets: list[str]) -> int:
    prefix = prefix_normalise(args.prefix)
    try:
        text = args.env_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EnvFileError(f"cannot read {args.env_file}: {type(exc).__name__}") from exc
    wanted = env_parse(text)
    if not wanted:
        raise EnvFileError(f"{args.env_file} sets no variables: nothing to upload")
    secrets.extend(wanted.values())
    empty = [name for name, value in wanted.items() if value == ""]
    if empty:
        # SSM stores no empty value; to the app an empty variable and an
        # unset one mean the same, so the line can simply go.
        raise EnvFileError(
            f"{', '.join(empty)} {'is' if len(empty) == 1 else 'are'} empty, which SSM "
            "cannot store: remove the line (unset means the same to the app)"
        )
    client = ssm_client_build(region=region_resolve(args.region))
    current = ssm_values_get(client, prefix=prefix)
    secrets.extend(value for value, _ in current.values())
    counts = {"created": 0, "updated": 0, "unchanged": 0, "deleted": 0}
    would = "Would " if args.dry_run else ""
    for name, value in wanted.items():
        if current.get(name) == (value, "SecureString"):
            counts["unchanged"] += 1
            print(f"Unchanged {prefix}{name}")
            continue
        verb = "update" if name in current else "create"
        counts[verb + "d"] += 1
        if args.dry_run:
            print(f"Would {verb} {prefix}{name} (SecureString)")
            continue
        put: dict[str, object] = {
            "Name": prefix + name,
            "Value": value,
            "Type": "SecureString",
            "Overwrite": True,
        }
        if args.kms_key_id:
            put["KeyId"] = args.kms_key_id
        version = client.put_parameter(**put)["Version"]  # type: ignore[arg-type]
        print(f"{verb.capitalize()}d {prefix}{name} (SecureString, version {version})")
    stale = sorted(set(current) - set(wanted)) if args.prune else []
    for name in stale:
        counts["deleted"] += 1
        print(f"{would}{'delete' if would else 'Deleted'} {prefix}{name}")
    if stale and not args.dry_run:
        for i in range(0, len(stale), 10):  # DeleteParameters takes 10 names a call
            client.delete_parameters(Names=[prefix + n for n in stale[i : i + 10]])
    summary = ", ".join(f"{n} {what}" for what, n in counts.items())
    print(f"{'Dry run: ' if args.dry_run else ''}{summary} under {prefix}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
