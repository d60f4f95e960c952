"""S3 faults (issue 11): the kernel and the CLI use an S3 datastore through
a proxy (tests/s3_fault_proxy.py) that throttles, fails, drops connections
and cuts answers short in front of moto's real S3 server."""
from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from conftest import KernelSession, ok, stderr, value
from moto_server import MotoServer
from s3_fault_proxy import FaultPlan, S3FaultProxy

ROOT = Path(__file__).resolve().parents[1]
NBSCALE = ["node", str(ROOT / "kernel" / "bin" / "nbscale.js")]
BUCKET = "nbscale-faults"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    boto3.client("s3", endpoint_url=server.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing").create_bucket(Bucket=BUCKET)
    yield server
    server.stop()


@pytest.fixture()
def proxy(moto: MotoServer) -> Iterator[S3FaultProxy]:
    p = S3FaultProxy(moto.url)
    yield p
    p.stop()


@pytest.fixture()
def env(moto: MotoServer, proxy: S3FaultProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Every AWS call of the kernel, its workers and the CLI goes through the proxy."""
    e = {**moto.env(), "AWS_ENDPOINT_URL": proxy.url, "NBSCALE_DATASTORE": f"s3://{BUCKET}/{tmp_path.name}"}
    for k, v in e.items():
        monkeypatch.setenv(k, v)
    return e


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*NBSCALE, *args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=300)


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def test_throttling_5xx_dropped_and_cut_connections_are_retried(env: dict[str, str], proxy: S3FaultProxy, tmp_path: Path) -> None:
    # Every third request fails, cycling through the five faults.
    proxy.plan = FaultPlan(every=3)
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const small = { a: 1, b: [1, 2, 3] };")
        # 24 MB: a multipart upload of three parts, each part a request that may fail.
        ok(k, "const big = Float64Array.from({ length: 3_000_000 }, (_, i) => i * 0.5);")
        ok(k, "small.b.push(4);")
        warnings = stderr(k.run("1")[1])
        assert "not recorded" not in warnings, warnings
    finally:
        k.close()
    small = cli("artifact", "get", "small@2", "--json", env=env, cwd=tmp_path)
    assert small.returncode == 0, small.stderr
    assert last_json(small.stdout)["value"] == {"a": 1, "b": [1, 2, 3, 4]}
    big = cli("artifact", "get", "big", "--json", env=env, cwd=tmp_path)
    assert big.returncode == 0, big.stderr
    hist = cli("history", "--json", env=env, cwd=tmp_path)
    assert hist.returncode == 0, hist.stderr
    assert len(last_json(hist.stdout)["executions"]) == 4
    fsck = cli("fsck", env=env, cwd=tmp_path)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    print(f"\nrequests {proxy.requests}, faults injected {dict(proxy.injected)}")
    for kind in ("slowdown", "error500", "drop", "truncate", "lost"):
        assert proxy.injected[kind] >= 2, dict(proxy.injected)


@pytest.mark.parametrize("lost", [("PUT", "/executions/"), ("POST", "uploadId=")], ids=["commit-marker", "multipart-completion"])
def test_a_write_whose_answer_is_lost_is_recognised_as_done(env: dict[str, str], proxy: S3FaultProxy, tmp_path: Path, lost: tuple[str, str]) -> None:
    """S3 did the write, the answer never came back, the retry finds the key taken (or the upload gone)."""
    method, path = lost
    proxy.plan = FaultPlan(always="lost", methods=(method,), path=path, times=1)
    k = KernelSession(cwd=str(tmp_path))
    try:
        msgs = ok(k, "const big = Float64Array.from({ length: 3_000_000 }, (_, i) => i);")
        assert proxy.injected["lost"] == 1
        assert "not recorded" not in stderr(msgs), stderr(msgs)
    finally:
        k.close()
    got = cli("artifact", "get", "big", "--json", env=env, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    assert len(last_json(cli("history", "--json", env=env, cwd=tmp_path).stdout)["executions"]) == 1
    assert cli("fsck", env=env, cwd=tmp_path).returncode == 0


def test_a_permanent_s3_failure_names_the_datastore_and_nothing_half_written_is_visible(env: dict[str, str], proxy: S3FaultProxy, tmp_path: Path) -> None:
    store = env["NBSCALE_DATASTORE"]
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const kept = { answer: 42 };")
        # S3 refuses every write from now on; reads still work.
        proxy.plan = FaultPlan(always="error500", methods=("PUT",))
        t0 = time.monotonic()
        msgs = ok(k, "const lost = Float64Array.from({ length: 3_000_000 }, (_, i) => i); lost.length", timeout=180)
        took = time.monotonic() - t0
        warning = stderr(msgs)
        assert store in warning and "not recorded" in warning and "attempts" in warning and "500" in warning, warning
        print(f"\nthe write gave up after {took:.1f} s: {warning.strip()}")
        # The session keeps the value the store refused.
        assert value(k, "lost[2_999_999] + kept.answer") == str(2_999_999 + 42)
    finally:
        proxy.plan = FaultPlan()
        k.close()
    # A reader during an outage: a clear error naming the datastore, no stack trace.
    proxy.plan = FaultPlan(always="slowdown")
    hist = cli("history", env=env, cwd=tmp_path)
    assert hist.returncode == 1 and store in hist.stderr and "503" in hist.stderr and "attempts" in hist.stderr, hist.stderr
    assert "    at " not in hist.stderr, hist.stderr
    proxy.plan = FaultPlan()
    # After the outage: the earlier record is intact, the refused one never became visible.
    executions = last_json(cli("history", "--json", env=env, cwd=tmp_path).stdout)["executions"]
    assert [list(e["outputs"]) for e in executions] == [["kept"]]
    assert cli("artifact", "get", "lost", env=env, cwd=tmp_path).returncode != 0
    assert last_json(cli("artifact", "get", "kept", "--json", env=env, cwd=tmp_path).stdout)["value"] == {"answer": 42}
    fsck = cli("fsck", "--json", env=env, cwd=tmp_path)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
