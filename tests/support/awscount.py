"""A counting loopback HTTP reverse proxy for a local AWS endpoint (moto's server).

Processes pointed at it (``AWS_ENDPOINT_URL``) reach moto as before, and every
request that passes is recorded first: when it arrived, the operation (query
``Action``, ``X-Amz-Target`` or the rpc-v2 path's ``/operation/<name>``) and,
for the query protocol (Auto Scaling), its parameters. ``devstack.faultproxy``
carries bytes and cannot tell one request from another; this one can.

Only loopback addresses, on both sides. One thread per connection, keep-alive
as botocore expects, one upstream connection per request.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length"}


@dataclass(frozen=True)
class AwsRequest:
    at: float  # time.time() when the request had arrived whole
    answered_at: float  # when its answer went back
    operation: str
    params: dict[str, list[str]] = field(default_factory=dict)
    status: int = 0

    def param(self, name: str) -> str | None:
        values = self.params.get(name)
        return values[0] if values else None

    def members(self, name: str) -> list[str]:
        """A query-protocol list (``InstanceIds.member.1`` …), in order."""
        prefix = f"{name}.member."
        found = [
            (int(k[len(prefix) :]), v[0]) for k, v in self.params.items() if k.startswith(prefix)
        ]
        return [value for _, value in sorted(found)]


def _operation(path: str, target: str | None, params: dict[str, list[str]]) -> str:
    if "Action" in params:
        return params["Action"][0]
    if target:
        return target.rsplit(".", 1)[-1]
    if "/operation/" in path:
        return path.rsplit("/operation/", 1)[1].split("?", 1)[0]
    return "?"


class CountingAwsProxy:
    """``with CountingAwsProxy(moto_url) as proxy:`` … ``proxy.url``, ``proxy.requests()``."""

    def __init__(self, target_url: str, *, host: str = "127.0.0.1") -> None:
        parts = urlsplit(target_url)
        if parts.hostname not in _LOOPBACK or host not in _LOOPBACK:
            raise ValueError("CountingAwsProxy only carries loopback traffic")
        self.target = (parts.hostname or "127.0.0.1", parts.port or 80)
        self._lock = threading.Lock()
        self._seen: list[AwsRequest] = []
        self._server = ThreadingHTTPServer((host, 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://{host}:{self._server.server_address[1]}"
        self._thread: threading.Thread | None = None

    def __enter__(self) -> CountingAwsProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def requests(self, operation: str | None = None) -> list[AwsRequest]:
        with self._lock:
            seen = list(self._seen)
        return [r for r in seen if operation is None or r.operation == operation]

    def _record(self, request: AwsRequest) -> None:
        with self._lock:
            self._seen.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet: the test prints what it counted

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                arrived = time.time()
                params: dict[str, list[str]] = {}
                content_type = self.headers.get("Content-Type", "")
                if "x-www-form-urlencoded" in content_type:
                    params = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
                query = urlsplit(self.path).query
                if query:
                    params = {**parse_qs(query, keep_blank_values=True), **params}
                operation = _operation(self.path, self.headers.get("X-Amz-Target"), params)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
                headers["Content-Length"] = str(len(body))
                upstream = http.client.HTTPConnection(*proxy.target, timeout=30)
                try:
                    upstream.request(self.command, self.path, body=body, headers=headers)
                    answer = upstream.getresponse()
                    payload = answer.read()
                    status = answer.status
                    answer_headers = [
                        (k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP
                    ]
                except OSError as exc:
                    status, payload, answer_headers = 502, str(exc).encode(), []
                finally:
                    upstream.close()
                self.send_response(status)
                for name, value in answer_headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                proxy._record(AwsRequest(arrived, time.time(), operation, params, status))

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        return Handler
