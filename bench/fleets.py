"""Benchmark: what a tick costs as fleets grow (issue 19 item 5, DESIGN.md "Adopting it").

``scaling.publishing.tick.slot_tick`` for 1, 5 and 20 fleets, SQS-measured, measured
through the backlog port (the database) or a mix, with and without one hung fleet:
its queue URL names a loopback port that accepts and never answers
(``devstack.faultproxy`` in "hang" mode). botocore sends every SQS call to the
client's endpoint, whatever host the queue URL names, so a ``before-send`` hook on
the publisher's SQS client sends that queue's calls to the URL's own host: the
fleet really waits on a socket, and the tick's own deadline ends the wait.

Every slot is a fresh one, ticked as a beat tick is, half a second into it, on
10 s slots (the shortest interval, the tightest budget). The tick's time is its own
clock (``SlotResult.duration_ms``: claims, measures, PutMetricData, audit rows).
AWS calls are counted per operation with a ``before-send`` hook on every client
the publisher builds (one per HTTP request sent, retries included).

PostgreSQL database ``academy_bench_fleets`` (made, migrated and dropped here) and
moto's server on a free loopback port. Not a test; ``make bench-fleets`` runs it.

    python -m bench.fleets --slots 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.common import bench_stack
from devstack.faultproxy import TcpProxy, queue_url_reroute

BENCH_DB = "academy_bench_fleets"
INTERVAL = 10
ACCOUNT = "123456789012"
PORT_NS = "Academy/VideoProcessing"
SQS_NS = "Academy/Workers"
SHORT = {
    "GetQueueAttributes": "GQA",
    "PutMetricData": "PMD",
    "DescribeAutoScalingGroups": "DASG",
    "SetInstanceProtection": "SIP",
}


@dataclass(frozen=True)
class Scenario:
    fleets: int
    mix: str  # "sqs" | "db" | "mixed"
    hung: str  # "" | "first" | "mid" | "last"

    def sources(self) -> list[str]:
        if self.mix == "sqs":
            return ["sqs"] * self.fleets
        if self.mix == "db":
            return ["port"] * self.fleets
        return ["port" if i % 2 == 0 else "sqs" for i in range(self.fleets)]

    def hung_index(self) -> int | None:
        positions = {"first": 0, "mid": self.fleets // 2, "last": self.fleets - 1}
        return positions.get(self.hung)


SCENARIOS = [
    Scenario(1, "sqs", ""),
    Scenario(1, "db", ""),
    *(
        Scenario(n, mix, hung)
        for n in (5, 20)
        for mix in ("sqs", "db", "mixed")
        for hung in ("", "mid")
    ),
    Scenario(20, "mixed", "first"),
    Scenario(20, "mixed", "last"),
]


class Calls:
    """AWS requests sent, per operation, from every client the publisher builds."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._seen: set[int] = set()

    def hook(self, client: Any, *, endpoint: str) -> Any:
        if id(client) in self._seen:
            return client
        self._seen.add(id(client))

        def count(request: Any, event_name: str, **kwargs: Any) -> None:
            self.counts[event_name.rsplit(".", 1)[-1]] += 1

        client.meta.events.register("before-send", count)
        client.meta.events.register(
            "before-send.sqs.GetQueueAttributes", queue_url_reroute(endpoint)
        )
        return client


@contextmanager
def calls_counted(endpoint: str) -> Iterator[Calls]:
    import scaling.aws

    calls = Calls()
    real = scaling.aws._client
    netloc = urlsplit(endpoint).netloc

    def client(service: str, config: Any, *, role: Any) -> Any:
        return calls.hook(real(service, config, role=role), endpoint=netloc)

    scaling.aws._client = client
    try:
        yield calls
    finally:
        scaling.aws._client = real


def fleets_config(scenario: Scenario, queues: list[str], hang_url: str) -> list[dict[str, Any]]:
    fleets: list[dict[str, Any]] = []
    for i, source in enumerate(scenario.sources()):
        name = "video" if i == 0 and source == "port" else f"f{i:02d}"
        entry: dict[str, Any] = {
            "name": name,
            "asg_name": "academy-video-worker-asg" if name == "video" else f"academy-{name}-asg",
            "source": source,
            "namespace": PORT_NS if source == "port" else SQS_NS,
            "dimensions": {"WorkerType": name.title()},
        }
        if i == scenario.hung_index():
            entry.update(source="sqs", namespace=SQS_NS, queue_url=hang_url)
        elif source == "sqs":
            entry["queue_url"] = queues[i]
        fleets.append(entry)
    return fleets


def scenario_run(
    scenario: Scenario,
    *,
    strict: bool = True,
    slots: int,
    first_slot: datetime,
    queues: list[str],
    hang_url: str,
    calls: Calls,
) -> dict[str, Any]:
    from django.test import override_settings

    from scaling.fleets import fleets_get
    from scaling.publishing.slots import tick_budget_seconds
    from scaling.publishing.tick import slot_tick

    config = fleets_config(scenario, queues, hang_url)
    with override_settings(SCALING_FLEETS=config):
        fleets = fleets_get()
    if len(fleets) != scenario.fleets:
        raise SystemExit(f"error: {len(fleets)} of {scenario.fleets} fleets parsed: {config}")
    namespaces = len({f.namespace for f in fleets})
    ticks_ms: list[float] = []
    per_slot: list[Counter[str]] = []
    published: list[int] = []
    hung_ms: list[float] = []
    for k in range(slots):
        slot = first_slot + timedelta(seconds=k * INTERVAL)
        calls.counts.clear()
        outcome = slot_tick(now=slot + timedelta(seconds=0.5), slot_start=slot, fleets=fleets)
        per_slot.append(Counter(calls.counts))
        ticks_ms.append(outcome.duration_ms)
        published.append(sum(r.published for r in outcome.results))
        index = scenario.hung_index()
        for i, result in enumerate(outcome.results):
            if i == index:
                hung_ms.append(result.fleet_ms)
                if result.published or result.value is not None:
                    raise SystemExit(f"error: the hung fleet published: {result}")
            elif not result.published and strict:
                raise SystemExit(f"error: fleet {result.fleet} did not publish: {result.error}")
    operations = sorted({op for c in per_slot for op in c})
    return {
        "fleets": scenario.fleets,
        "mix": scenario.mix,
        "hung": scenario.hung or "-",
        "namespaces": namespaces,
        "slots": slots,
        "tick_median_ms": round(statistics.median(ticks_ms), 1),
        "tick_max_ms": round(max(ticks_ms), 1),
        "budget_ms": tick_budget_seconds(INTERVAL) * 1000,
        "slot_ms": INTERVAL * 1000,
        "published_per_slot": min(published),
        "hung_fleet_ms": round(max(hung_ms), 1) if hung_ms else None,
        # The same every slot, or the range when it varied.
        "calls_per_slot": {op: _range([c[op] for c in per_slot]) for op in operations},
        "put_metric_data_per_slot": _range([c["PutMetricData"] for c in per_slot]),
    }


def _range(values: list[int]) -> str:
    low, high = min(values), max(values)
    return str(low) if low == high else f"{low}-{high}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        f"{'fleets':>6} {'mix':<6} {'hung':<5} {'ns':>2} {'tick ms med':>11} {'max':>8} "
        f"{'hung fleet ms':>13} {'published':>9} {'PutMetricData':>13}  AWS calls per slot"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        calls = ", ".join(f"{SHORT.get(op, op)} {n}" for op, n in r["calls_per_slot"].items())
        hung = "-" if r["hung_fleet_ms"] is None else f"{r['hung_fleet_ms']:.0f}"
        lines.append(
            f"{r['fleets']:>6} {r['mix']:<6} {r['hung']:<5} {r['namespaces']:>2} "
            f"{r['tick_median_ms']:>11.1f} {r['tick_max_ms']:>8.1f} {hung:>13} "
            f"{r['published_per_slot']:>4}/{r['fleets']:<4} "
            f"{r['put_metric_data_per_slot']:>13}  {calls}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--slots", type=int, default=5, help="slots ticked per scenario (3 or more)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.slots < 3:
        parser.error("--slots must be 3 or more")

    tmp = Path(tempfile.mkdtemp(prefix="bench-fleets-"))
    env_extra = {
        "SCALING_STATE_URL": f"file://{tmp / 'state'}",
        "SCALING_PUBLISH_INTERVAL_SECONDS": str(INTERVAL),
        "DEBUG": "true",
        # The fleets' groups do not exist in moto: each reconcile says so, once a slot.
        "LOG_LEVEL": "ERROR",
    }
    with bench_stack(BENCH_DB, tmp, rows=10_000, waiting=100, env=env_extra) as env:
        os.environ.update(env)
        rows = _measure(args.slots, env)
    if args.json:
        print(json.dumps(rows))
    else:
        print(
            f"One tick per slot, {args.slots} slots a scenario, {INTERVAL} s slots "
            f"(measure + publish budget {rows[0]['budget_ms'] / 1000:g} s), "
            "PostgreSQL + moto on loopback; GQA GetQueueAttributes, PMD PutMetricData, "
            "DASG DescribeAutoScalingGroups"
        )
        print(table(rows))
    slow = [r for r in rows if r["tick_max_ms"] >= (INTERVAL - 2) * 1000]
    return 1 if slow else 0


def _measure(slots: int, env: dict[str, str]) -> list[dict[str, Any]]:
    import boto3
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "academy.settings")
    django.setup()
    endpoint = env["AWS_ENDPOINT_URL"]
    sqs = boto3.client("sqs", region_name=env["AWS_REGION"], endpoint_url=endpoint)
    queues = []
    for i in range(20):
        url = sqs.create_queue(QueueName=f"academy-f{i:02d}-jobs")["QueueUrl"]
        for m in range(i % 4):
            sqs.send_message(QueueUrl=url, MessageBody=f"job-{m}")
        queues.append(url)
    moto_port = int(endpoint.rsplit(":", 1)[1])
    now = datetime.now(UTC)
    base = datetime.fromtimestamp(int(now.timestamp()) // 3600 * 3600, tz=UTC) - timedelta(hours=6)
    rows: list[dict[str, Any]] = []
    with TcpProxy("127.0.0.1", moto_port) as hang, calls_counted(endpoint) as calls:
        hang.set_mode("hang")
        hang_url = f"http://127.0.0.1:{hang.port}/{ACCOUNT}/academy-hung-jobs"
        # The first tick of this process builds the publisher's clients and its database
        # connection inside the fleets' shares: reported apart, as "cold".
        cold = scenario_run(
            Scenario(20, "mixed", ""),
            strict=False,
            slots=1,
            first_slot=base,
            queues=queues,
            hang_url=hang_url,
            calls=calls,
        )
        cold["hung"] = "cold"
        rows.append(cold)
        for n, scenario in enumerate(SCENARIOS):
            first = base + timedelta(seconds=(n + 1) * slots * INTERVAL)
            rows.append(
                scenario_run(
                    scenario,
                    slots=slots,
                    first_slot=first,
                    queues=queues,
                    hang_url=hang_url,
                    calls=calls,
                )
            )
            print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    return rows


if __name__ == "__main__":
    sys.exit(main())
