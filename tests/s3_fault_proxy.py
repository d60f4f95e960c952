"""A reverse proxy in front of moto's S3 that injects the faults S3 really
has: throttling (503 SlowDown), internal errors (500), connections dropped
before an answer, answers lost after the request took effect, and answers
whose body stops halfway. The test owns the
proxy (a thread in its own process) and changes its plan while it runs."""
from __future__ import annotations

import http.client
import itertools
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit

FAULTS = ("slowdown", "error500", "drop", "truncate", "lost")

XML_ERRORS = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "error500": (500, "InternalError", "We encountered an internal error. Please try again."),
}

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection", "expect"}


class FaultPlan:
    """Which requests fail, and how.

    every=N: every Nth request (counting all requests) gets the next fault of
    `kinds` in turn, so a request retried right away meets a healthy answer
    unless other requests interleave. always=KIND: every request matching
    `methods` and containing `path` fails with KIND (a permanent outage),
    or only the first `times` of them."""

    def __init__(self, every: int = 0, kinds: tuple[str, ...] = FAULTS, always: str | None = None, methods: tuple[str, ...] = (),
                 path: str = "", times: int | None = None) -> None:
        self.every = every
        self.kinds: Iterator[str] = itertools.cycle(kinds)
        self.always = always
        self.methods = methods
        self.path = path
        self.times = times

    def pick(self, n: int, method: str, path: str = "") -> str | None:
        if self.methods and method not in self.methods:
            return None
        if self.path not in path:
            return None
        if self.always:
            if self.times is not None:
                if self.times <= 0:
                    return None
                self.times -= 1
            return self.always
        if self.every and n % self.every == 0:
            return next(self.kinds)
        return None


class S3FaultProxy:
    def __init__(self, upstream: str) -> None:
        self.upstream = urlsplit(upstream)
        self.plan = FaultPlan()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def handle_one(self) -> None:
                body = self.read_body()
                with proxy.lock:
                    proxy.requests += 1
                    fault = proxy.plan.pick(proxy.requests, self.command, self.path)
                if fault in XML_ERRORS:
                    proxy.count(fault)
                    return self.xml_error(*XML_ERRORS[fault])
                if fault == "drop":
                    proxy.count(fault)
                    return self.drop()
                status, headers, data = self.forward(body)
                if fault == "lost":
                    proxy.count(fault)
                    return self.drop()
                if fault == "truncate" and self.command == "GET" and len(data) >= 2:
                    proxy.count(fault)
                    self.send_response(status)
                    for k, v in headers:
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    return self.drop()
                if fault == "truncate":
                    # Nothing to cut short: fail the request as a dropped connection instead.
                    proxy.count("drop")
                    return self.drop()
                self.send_response(status)
                for k, v in headers:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

            def read_body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    out = bytearray()
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return bytes(out)
                        out += self.rfile.read(size)
                        self.rfile.readline()
                n = int(self.headers.get("Content-Length") or 0)
                return self.rfile.read(n) if n else b""

            def forward(self, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
                conn = http.client.HTTPConnection(proxy.upstream.hostname, proxy.upstream.port, timeout=60)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"}
                    headers["Content-Length"] = str(len(body))
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    keep = [(k, v) for k, v in r.getheaders() if k.lower() not in HOP_BY_HOP and k.lower() != "content-length"]
                    return r.status, keep, data
                finally:
                    conn.close()

            def xml_error(self, status: int, code: str, message: str) -> None:
                data = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>fault-proxy</RequestId></Error>'.encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def drop(self) -> None:
                self.close_connection = True
                try:
                    self.wfile.flush()
                    # RST, not FIN: the client sees a reset connection, as on a real network fault.
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    self.connection.close()
                except OSError:
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def count(self, fault: str) -> None:
        with self.lock:
            self.injected[fault] += 1

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
