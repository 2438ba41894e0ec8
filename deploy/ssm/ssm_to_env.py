"""Render a host's env file from SSM Parameter Store.

    python -m deploy.ssm.ssm_to_env --prefix /academy/production --output /etc/academy/academy.env

Reads the parameters directly under the prefix (SecureStrings decrypted),
writes NAME="value" lines that systemd's EnvironmentFile reads, atomically and
readable by its owner only (mode 0600 unless --mode says otherwise). Refuses
to write an empty file when the prefix holds nothing. Prints names only.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from deploy.ssm.envfile import (
    EnvFileError,
    command_run,
    env_render,
    prefix_normalise,
    region_resolve,
    ssm_client_build,
    ssm_values_get,
)


def _mode(raw: str) -> int:
    try:
        mode = int(raw, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an octal mode such as 0600") from None
    if mode & 0o007:
        raise argparse.ArgumentTypeError(
            f"{raw} lets every user read the secrets: use 0600 or 0640"
        )
    return mode


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.ssm.ssm_to_env", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--prefix", required=True, help="Parameter path, e.g. /academy/production")
    parser.add_argument("--output", required=True, type=Path, help="The env file to write.")
    parser.add_argument("--mode", type=_mode, default=0o600, help="File mode (default 0600).")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION).")
    return parser


def _write_atomically(path: Path, text: str, *, mode: int) -> None:
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return command_run(lambda secrets: _render(args, secrets))


def _render(args: argparse.Namespace, secrets: list[str]) -> int:
    prefix = prefix_normalise(args.prefix)
    if not args.output.parent.is_dir():
        raise EnvFileError(f"the directory {args.output.parent} does not exist")
    client = ssm_client_build(region=region_resolve(args.region))
    found = ssm_values_get(client, prefix=prefix)
    secrets.extend(value for value, _ in found.values())
    if not found:
        raise EnvFileError(f"no parameters under {prefix}: {args.output} left as it was")
    text = env_render(
        {name: value for name, (value, _) in found.items()},
        header=f"Rendered from SSM {prefix} by deploy/ssm/ssm_to_env.py; edit SSM, not this.",
    )
    try:
        _write_atomically(args.output, text, mode=args.mode)
    except OSError as exc:
        raise EnvFileError(f"cannot write {args.output}: {exc.strerror}") from exc
    names = ", ".join(sorted(found))
    print(f"Wrote {len(found)} variables to {args.output} (mode {args.mode:04o}): {names}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
