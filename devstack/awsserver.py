"""`make run`'s "aws" process: moto's server, without its request log.

``python -m devstack.awsserver --port 5000`` runs moto's own ``main`` (what the
``moto_server`` script runs) on 127.0.0.1. werkzeug logs every request at INFO, and
the control plane, the fleet and the tick call it several times a second: that
log would bury every other process's lines. Warnings and errors still show.
"""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.awsserver")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    # werkzeug sets INFO only on a logger whose level is unset.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    from moto.server import main as moto_main

    print(
        f"moto server on http://{args.host}:{args.port} (SQS, Auto Scaling, CloudWatch, EC2; "
        "request log off)",
        flush=True,
    )
    moto_main(["-H", args.host, "-p", str(args.port)])
    return 0


if __name__ == "__main__":
    sys.exit(main())
