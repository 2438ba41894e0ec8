"""X-Internal-Key as bytes on the wire, through gunicorn, as production receives it.

tests/scaling/test_views.py holds the key table through Django's test client,
which hands the view a ready-made ``META`` value. What only a real server
shows: a header sent twice, raw UTF-8 and latin-1 bytes, header-name variants
(case, underscore), values past the server's own limit, and the framing
mistakes the server refuses before Django sees them. Requests are written on
a raw socket so that nothing in between tidies them up.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.localaws import port_free_get, port_wait
from tests.academy.env_names import BASE_DIR
from tests.badinput.manage_run import PRODUCTION_ENV, env_clean, manage_run

pytestmark = pytest.mark.integration

PATH = "/api/v1/internal/video/backlog-count/"
CURRENT = "k-current-3f9a1c"
NEXT = "k-next-77b2e0"
UTF8 = "ключ-2024"
FORBIDDEN = {"error": "forbidden"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    tmp = tmp_path_factory.mktemp("headers")
    env = {
        **PRODUCTION_ENV,
        "DATABASE_URL": f"sqlite:///{tmp / 'academy.sqlite3'}",
        # Production refuses a per-host broker (invariant 9); the endpoint never sends a
        # task or claims a slot, so nothing listens there and nothing needs to.
        "CELERY_BROKER_URL": "redis://127.0.0.1:1/0",
        "ALLOWED_HOSTS": "127.0.0.1",
        "INTERNAL_API_KEY": f"{CURRENT},{NEXT},{UTF8}",
        "LOG_LEVEL": "ERROR",
    }
    migrated = manage_run(["migrate", "--no-input", "-v", "0"], env, tmp)
    assert migrated.returncode == 0, migrated.stderr
    port = port_free_get()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "academy.wsgi", "-b", f"127.0.0.1:{port}", "-w", "1"],
        cwd=BASE_DIR,
        env={**env_clean(tmp), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port_wait("127.0.0.1", port)
        yield ("127.0.0.1", port)
    finally:
        process.terminate()
        process.wait(timeout=10)


def _request(server: tuple[str, int], header_lines: list[bytes]) -> tuple[int, bytes]:
    head = b"".join(
        [
            f"GET {PATH} HTTP/1.1\r\n".encode(),
            b"Host: 127.0.0.1\r\n",
            b"Connection: close\r\n",
            *(line + b"\r\n" for line in header_lines),
            b"\r\n",
        ]
    )
    with socket.create_connection(server, timeout=10) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b"".join(chunks)
    status = int(response.split(b" ", 2)[1])
    return status, response.partition(b"\r\n\r\n")[2]


def _key(value: bytes, name: bytes = b"X-Internal-Key") -> bytes:
    return name + b": " + value


@pytest.mark.parametrize(
    ("lines", "status"),
    [
        pytest.param([], 403, id="missing"),
        pytest.param([b"X-Internal-Key:"], 403, id="empty"),
        pytest.param([_key(b"   ")], 403, id="blank"),
        pytest.param([_key(b"k-current-3f9a1d")], 403, id="wrong"),
        pytest.param([_key(CURRENT.encode())], 200, id="current"),
        pytest.param([_key(NEXT.encode())], 200, id="rotated-second"),
        pytest.param([_key(b" " + CURRENT.encode() + b"\t")], 200, id="surrounding-space-is-ows"),
        pytest.param([_key(CURRENT.encode(), b"x-internal-key")], 200, id="name-lower-case"),
        # Underscore names are dropped by the server: no spoofing X-Internal-Key that way.
        pytest.param([_key(CURRENT.encode(), b"X_Internal_Key")], 403, id="name-underscores"),
        pytest.param([_key(CURRENT.encode(), b"X-Internal-Keys")], 403, id="name-plural"),
        pytest.param([_key(UTF8.encode("utf-8"))], 200, id="non-ascii-utf8-right"),
        pytest.param([_key("ключ-2025".encode())], 403, id="non-ascii-utf8-wrong"),
        pytest.param([_key(UTF8.encode("cp1251"))], 403, id="non-ascii-other-encoding"),
        pytest.param([_key(b"\xff\xfe\xfd")], 403, id="latin1-bytes"),
        pytest.param([_key(b"k" * 513)], 403, id="long-over-key-limit"),
        pytest.param([_key(CURRENT.encode() * 32)], 403, id="long-repeated-key"),
        # Past gunicorn's limit_request_field_size (8190): 431, before Django.
        pytest.param([_key(b"k" * 9000)], 431, id="very-long-over-server-limit"),
        pytest.param([_key(CURRENT.encode())] * 2, 403, id="duplicated-same"),
        pytest.param([_key(CURRENT.encode()), _key(b"wrong")], 403, id="duplicated-right-wrong"),
        pytest.param([_key(b"wrong"), _key(CURRENT.encode())], 403, id="duplicated-wrong-right"),
        pytest.param(
            [_key(CURRENT.encode()), _key(CURRENT.encode(), b"x-internal-key")],
            403,
            id="duplicated-other-case",
        ),
        pytest.param([_key(CURRENT.encode() + b"\x00")], 400, id="nul-byte"),
        pytest.param([_key(CURRENT[:8].encode()), b" " + CURRENT[8:].encode()], 400, id="obs-fold"),
    ],
)
def test_header_on_the_wire(server: tuple[str, int], lines: list[bytes], status: int) -> None:
    answer_status, body = _request(server, lines)

    assert answer_status == status
    if status == 403:
        assert json.loads(body) == FORBIDDEN
    elif status == 200:
        assert json.loads(body)["backlog_count"] == 0
