"""A loopback TCP proxy that can refuse, hang or slow the connections it carries.

Fault tests point the app at the proxy instead of the real server and switch
its mode. Only loopback addresses are accepted, on both sides. In front of an
HTTP server (the local AWS endpoint) it can also error: every request is answered
500 with an AWS error body, as an endpoint that is up but failing answers.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

Mode = Literal["pass", "refuse", "hang", "slow", "error"]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_ERROR_BODY = (
    b"<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>"
    b"<Message>the fault proxy answers 500</Message></Error>"
    b"<RequestId>faultproxy</RequestId></ErrorResponse>"
)
_ERROR_RESPONSE = (
    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/xml\r\n"
    b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(_ERROR_BODY) + _ERROR_BODY
)


class TcpProxy:
    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        host: str = "127.0.0.1",
        slow_seconds: float = 1.5,
    ) -> None:
        if target_host not in _LOOPBACK or host not in _LOOPBACK:
            raise ValueError("TcpProxy only carries loopback traffic")
        self.target = (target_host, target_port)
        self.host = host
        self.port = 0
        self.slow_seconds = slow_seconds
        self.mode: Mode = "pass"
        self._listener: socket.socket | None = None
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._stopped = threading.Event()
        self.connections = 0

    # -- life cycle -------------------------------------------------------
    def start(self) -> TcpProxy:
        self._listen()
        return self

    def stop(self) -> None:
        self._stopped.set()
        self._unlisten()
        self._close_all()

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def url_port(self) -> int:
        return self.port

    # -- faults -----------------------------------------------------------
    def set_mode(self, mode: Mode) -> None:
        previous, self.mode = self.mode, mode
        if mode == "error":
            self._close_all()  # kept-alive connections would otherwise still pass
        if mode == "refuse":
            self._unlisten()
            self._close_all()
        elif previous == "refuse":
            self._listen()
        if previous == "hang" and mode != "hang":
            # Held connections carry half a conversation: end them.
            self._close_all()

    # -- internals --------------------------------------------------------
    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for _ in range(50):
            try:
                listener.bind((self.host, self.port))
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise RuntimeError(f"cannot listen again on {self.host}:{self.port}")
        listener.listen(128)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept_loop, args=(listener,), daemon=True).start()

    def _unlisten(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            self.connections += 1
            self._track(client)
            if self.mode == "hang":
                continue  # accepted, never answered
            if self.mode == "error":
                threading.Thread(target=self._http_error, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self._track(upstream)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _http_error(self, client: socket.socket) -> None:
        """Read one request's head, answer 500, close."""
        try:
            client.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head and len(head) < 1 << 20:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            client.sendall(_ERROR_RESPONSE)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                client.shutdown(socket.SHUT_RDWR)
            client.close()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.mode == "hang" and not self._stopped.is_set():
                    time.sleep(0.05)
                if self.mode == "slow":
                    time.sleep(self.slow_seconds)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def queue_url_reroute(endpoint: str) -> Callable[..., None]:
    """A botocore ``before-send`` hook: a call naming a queue whose URL is on another
    host:port than ``endpoint`` goes there (botocore sends every SQS call to the
    client's endpoint and ignores the queue URL's host). How the fleet tests and
    bench/fleets.py point one fleet's queue at a proxy that hangs."""

    def reroute(request: Any, **kwargs: Any) -> None:
        body = request.body or b""
        text = body.decode() if isinstance(body, bytes) else str(body)
        try:
            url = json.loads(text).get("QueueUrl", "")
        except ValueError:
            url = (parse_qs(text).get("QueueUrl") or [""])[0]
        host = urlsplit(url).netloc
        if host and host != endpoint:
            request.url = f"http://{host}/"

    return reroute
