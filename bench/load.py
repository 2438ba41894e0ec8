"""A bounded HTTP load on one loopback URL; prints a JSON summary.

    python -m bench.load --url http://127.0.0.1:8000/api/v1/internal/video/backlog-count/ \
        --header X-Internal-Key=... --rate 200 --count 20000 --max-seconds 120

Threads with keep-alive connections share the rate; the run stops at --count
requests or --max-seconds, whichever comes first. Loopback URLs only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import threading
import time
from urllib.parse import urlsplit

from bench.common import percentile

LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bounded loopback HTTP load.")
    parser.add_argument("--url", required=True)
    parser.add_argument("--header", action="append", default=[], help="NAME=VALUE")
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    parts = urlsplit(args.url)
    if parts.scheme != "http" or parts.hostname not in LOOPBACK:
        parser.error("--url must be an http:// URL on a loopback address")
    if args.rate <= 0 or args.count < 1 or args.max_seconds <= 0 or args.concurrency < 1:
        parser.error("--rate, --count, --max-seconds and --concurrency must be positive")
    headers = dict(h.split("=", 1) for h in args.header)
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"

    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    sent = 0
    started = time.monotonic()
    stop_at = started + args.max_seconds
    spacing = 1.0 / args.rate

    def take() -> float | None:
        nonlocal sent
        with lock:
            if sent >= args.count:
                return None
            due = started + sent * spacing
            sent += 1
        return due

    def worker() -> None:
        conn: http.client.HTTPConnection | None = None
        while True:
            due = take()
            if due is None or due > stop_at or time.monotonic() > stop_at:
                break
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=5)
                conn.request("GET", path, headers=headers)
                response = conn.getresponse()
                response.read()
                key = str(response.status)
            except (OSError, http.client.HTTPException) as exc:
                key = type(exc).__name__
                if conn is not None:
                    conn.close()
                conn = None
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
                statuses[key] = statuses.get(key, 0) + 1
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=args.max_seconds + 10)
    duration = time.monotonic() - started
    ok = statuses.get("200", 0)
    print(
        json.dumps(
            {
                "requests": len(latencies),
                "ok": ok,
                "errors": len(latencies) - ok,
                "statuses": statuses,
                "seconds": round(duration, 2),
                "rate": round(len(latencies) / duration, 1) if duration else 0.0,
                "p50_ms": round(percentile(latencies, 0.50), 2),
                "p99_ms": round(percentile(latencies, 0.99), 2),
                "mean_ms": round(statistics.fmean(latencies), 2) if latencies else 0.0,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
