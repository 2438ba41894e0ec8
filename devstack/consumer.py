"""`make run`'s stand-in consumer for an SQS-measured fleet (the local ``ai`` group).

The ``ai`` fleet's jobs live only in its SQS queue: its backlog is the queue's
depth (visible + in flight), and its workers hold no lease. ``devstack.fleet``
starts one consumer per booted instance of such a group, as it starts a video
worker per instance of the video group:

    python -m devstack.consumer consume --queue-url URL --instance-id ID [--hold-seconds N]

receives one message at a time, holds it ``--hold-seconds``
(``DEVSTACK_CONSUMER_HOLD_SECONDS``, default 15) and deletes it: one
``consumed <body>`` line each. SIGTERM (its instance left the group) or SIGINT
while holding a message gives the message back (visibility 0) for another
consumer; nothing is deleted twice. Django-free: it needs only the local endpoint.

    python -m devstack.consumer send --fleet ai --count 20

sends ``count`` job messages to that fleet's queue (``make burst FLEET=ai``): one
``sent`` line with their bodies' common prefix.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import secrets
import signal
import sys
import threading
import time
from typing import Any

from devstack.localaws import LOCAL_REGION, endpoint_is_local, local_client
from devstack.localgroup import AWS_ERRORS, LineOnChange, one_line

log = logging.getLogger("devstack.consumer")

HOLD_SECONDS_DEFAULT = 15
HOLD_SECONDS_MAX = 3600
# A message stays invisible this long past its hold: a consumer killed outright
# (SIGKILL) gives it back to the queue after hold + this margin.
VISIBILITY_MARGIN_SECONDS = 30
# Long polling: short enough that SIGTERM between messages is answered within it, and
# below the local client's read timeout (devstack.localaws: 5 s).
RECEIVE_WAIT_SECONDS = 1
RETRY_SECONDS = 1.0  # after a failed call, before the next one
SEND_BATCH = 10  # SQS's SendMessageBatch limit


class ConsumerError(ValueError):
    """A bad setting or argument: one line, exit 2."""


def hold_seconds_get(raw: str | None) -> int:
    """DEVSTACK_CONSUMER_HOLD_SECONDS / --hold-seconds: seconds a job takes [15]."""
    if raw is None or not raw.strip():
        return HOLD_SECONDS_DEFAULT
    value = raw.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > HOLD_SECONDS_MAX:
        raise ConsumerError(
            f"DEVSTACK_CONSUMER_HOLD_SECONDS must be a whole number of seconds from 0 to "
            f"{HOLD_SECONDS_MAX}, got {raw!r}"
        )
    return int(value)


def _endpoint() -> tuple[str, str]:
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "").strip()
    if not endpoint_is_local(endpoint):
        raise ConsumerError(
            "the stand-in consumer runs only against a local endpoint (AWS_ENDPOINT_URL="
            f"http://127.0.0.1:<port>), got {endpoint!r}"
        )
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or LOCAL_REGION
    return endpoint, region


class Consumer:
    """Receive one message, hold it, delete it; until ``stopping`` is set."""

    def __init__(
        self,
        sqs: Any,
        *,
        queue_url: str,
        instance_id: str,
        hold_seconds: float,
        stopping: threading.Event,
    ) -> None:
        self.sqs, self.queue_url, self.instance_id = sqs, queue_url, instance_id
        self.hold_seconds, self.stopping = hold_seconds, stopping
        self.consumed = 0
        self._say = LineOnChange(log)

    def step(self) -> bool:
        """One receive (and the job, when a message came); whether a message was consumed."""
        try:
            reply = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
                VisibilityTimeout=int(self.hold_seconds) + VISIBILITY_MARGIN_SECONDS,
            )
        except AWS_ERRORS as exc:
            self._say("receive", f"cannot receive from the queue ({one_line(exc)})")
            self.stopping.wait(RETRY_SECONDS)
            return False
        self._say.forget("receive")
        messages = reply.get("Messages") or []
        if not messages:
            return False
        message = messages[0]
        body, handle = message.get("Body", ""), message["ReceiptHandle"]
        started = time.monotonic()
        if self.stopping.wait(self.hold_seconds):
            self._give_back(handle, body)
            return False
        while True:
            try:
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=handle)
                break
            except AWS_ERRORS as exc:
                self._say("delete", f"cannot delete {body} ({one_line(exc)}); again in 1 s")
                if self.stopping.wait(RETRY_SECONDS):
                    return False  # it comes back after its visibility timeout
        self._say.forget("delete")
        self.consumed += 1
        log.info("consumed %s in %.1f s", body, time.monotonic() - started)
        return True

    def _give_back(self, handle: str, body: str) -> None:
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=handle, VisibilityTimeout=0
            )
        except AWS_ERRORS as exc:
            log.warning(
                "stopping: %s not given back (%s); it returns by itself", body, one_line(exc)
            )
            return
        log.info("stopping: %s given back to the queue", body)

    def run(self) -> None:
        while not self.stopping.is_set():
            self.step()


def jobs_send(sqs: Any, queue_url: str, count: int, *, prefix: str | None = None) -> list[str]:
    """``count`` job messages (``{"job": "<prefix>-<n>"}``) in batches of 10: their bodies."""
    prefix = prefix or f"job-{secrets.token_hex(3)}"
    bodies = [json.dumps({"job": f"{prefix}-{n}"}) for n in range(1, count + 1)]
    for start in range(0, len(bodies), SEND_BATCH):
        batch = bodies[start : start + SEND_BATCH]
        reply = sqs.send_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(batch)],
        )
        if reply.get("Failed"):
            failed = reply["Failed"][0]
            raise ConsumerError(
                f"the queue refused {len(reply['Failed'])} message(s): {failed.get('Message')}"
            )
    return bodies


def _consume(args: argparse.Namespace) -> int:
    endpoint, region = _endpoint()
    hold = hold_seconds_get(
        args.hold_seconds
        if args.hold_seconds is not None
        else os.environ.get("DEVSTACK_CONSUMER_HOLD_SECONDS")
    )
    stopping = threading.Event()
    signal.signal(signal.SIGINT, lambda signum, frame: stopping.set())
    signal.signal(signal.SIGTERM, lambda signum, frame: stopping.set())
    consumer = Consumer(
        local_client("sqs", endpoint, region),
        queue_url=args.queue_url,
        instance_id=args.instance_id,
        hold_seconds=hold,
        stopping=stopping,
    )
    log.info(
        "consumer on %s: %s, each job held %d s",
        args.instance_id,
        args.queue_url.rsplit("/")[-1],
        hold,
    )
    consumer.run()
    log.info("consumer stopped: %d job(s) consumed", consumer.consumed)
    return 0


def _send(args: argparse.Namespace) -> int:
    _endpoint()  # never to a real queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    import django

    django.setup()
    from scaling.fleets import UnknownFleet, fleet_get

    try:
        fleet = fleet_get(args.fleet)
    except UnknownFleet as exc:
        raise ConsumerError(str(exc)) from None
    if fleet.source != "sqs":
        raise ConsumerError(
            f"fleet {fleet.name!r} is measured by the backlog port, not a queue: "
            "make burst FLEET=video uploads videos"
        )
    endpoint, region = _endpoint()
    sqs = local_client("sqs", endpoint, region)
    try:
        bodies = jobs_send(
            sqs, fleet.queue_url, args.count, prefix=f"{fleet.name}-{secrets.token_hex(3)}"
        )
    except AWS_ERRORS as exc:
        raise ConsumerError(f"no job sent ({one_line(exc)})") from None
    first = json.loads(bodies[0])["job"].rsplit("-", 1)[0]
    print(
        f"{len(bodies)} job message(s) sent to {fleet.queue_url.rsplit('/')[-1]} "
        f"(fleet {fleet.name}): {first}-1 .. {first}-{len(bodies)}"
    )
    return 0


def _count(raw: str) -> int:
    if not (raw.strip().isascii() and raw.strip().isdigit()) or not 1 <= int(raw) <= 10000:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a whole number from 1 to 10000")
    return int(raw)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.consumer")
    commands = parser.add_subparsers(dest="command", required=True)
    consume = commands.add_parser("consume", help="receive, hold, delete until SIGTERM")
    consume.add_argument("--queue-url", required=True)
    consume.add_argument("--instance-id", required=True)
    consume.add_argument("--hold-seconds", help="[DEVSTACK_CONSUMER_HOLD_SECONDS, else 15]")
    send = commands.add_parser("send", help="send job messages to a fleet's queue")
    send.add_argument("--fleet", required=True)
    send.add_argument("--count", type=_count, default=30)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        return _consume(args) if args.command == "consume" else _send(args)
    except ConsumerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
