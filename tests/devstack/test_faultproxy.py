"""The fault proxy's error mode: an HTTP endpoint that is up but answers 500 to everything."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from devstack.faultproxy import TcpProxy


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[int]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _get(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_error_mode_answers_500_then_passes_again(server: int) -> None:
    with TcpProxy("127.0.0.1", server) as proxy:
        assert _get(proxy.port) == 200
        proxy.set_mode("error")
        assert _get(proxy.port) == 500
        proxy.set_mode("pass")
        assert _get(proxy.port) == 200


def test_boto3_reads_the_error_as_an_aws_server_error(server: int) -> None:
    with TcpProxy("127.0.0.1", server) as proxy:
        proxy.set_mode("error")
        cloudwatch = boto3.client(
            "cloudwatch",
            region_name="ap-northeast-2",
            endpoint_url=f"http://127.0.0.1:{proxy.port}",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "total_max_attempts": 1}),
        )
        with pytest.raises(ClientError) as raised:
            cloudwatch.list_metrics()
        assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
