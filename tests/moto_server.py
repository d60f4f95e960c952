"""moto's AWS server (S3, Batch, IAM, Logs) on a free loopback port, for tests."""
from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MotoServer:
    def __init__(self) -> None:
        # moto binds port 0 itself and prints the port it got: a port picked here and
        # passed in could be taken by another test run's server in between, and this run
        # would then talk to that one.
        exe = Path(sys.executable).with_name("moto_server")
        self.proc = subprocess.Popen(
            [str(exe), "-H", "127.0.0.1", "-p", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        found: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._drain, args=(found,), daemon=True).start()
        try:
            port = found.get(timeout=30)
        except queue.Empty:
            port = None
        if port is None:
            self.stop()
            raise RuntimeError("moto_server did not say which port it listens on within 30 s")
        self.port = int(port)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("moto_server did not start within 30 s")

    def _drain(self, found: "queue.Queue[str | None]") -> None:
        """Finds the port in moto's first lines, then reads (and drops) its request log so it never blocks on a full pipe."""
        assert self.proc.stderr is not None
        told = False
        for line in self.proc.stderr:
            m = re.search(r"Running on http://127\.0\.0\.1:(\d+)", line)
            if m and not told:
                found.put(m.group(1))
                told = True
        if not told:
            found.put(None)

    def env(self) -> dict[str, str]:
        """The standard AWS settings that point every SDK at this server."""
        return {
            "AWS_ENDPOINT_URL": self.url,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING": "1",
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
