"""The datastore on S3 (moto's real AWS HTTP server): the kernel records into
it, the CLI reads from it, and the store's guarantees hold there too."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import boto3
import pytest

from conftest import KernelSession, fails, ok, value
from moto_server import MotoServer

ROOT = Path(__file__).resolve().parents[1]
NBSCALE = [str(ROOT / "kernel" / "bin" / "nbscale.js")]
BUCKET = "nbscale-artifacts"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture()
def s3env(moto: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = moto.env()
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    prefix = tmp_path.name
    try:
        s3.create_bucket(Bucket=BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    env["NBSCALE_DATASTORE"] = f"s3://{BUCKET}/{prefix}"
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["node", *NBSCALE, *args], env={**os.environ, **env}, cwd=cwd, capture_output=True, text=True, timeout=120)


def last_json(out: str) -> Any:
    return json.loads(out.strip().splitlines()[-1])


def s3_client(moto: MotoServer) -> Any:
    return boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")


def test_kernel_records_into_s3_and_the_cli_reads_it_back(s3env: dict[str, str], moto: MotoServer, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run("const small = { a: 1, b: [1, 2, 3] };")[0]["content"]["status"] == "ok"
        # Larger than one multipart part (8 MiB), so it travels as a multipart upload.
        assert k.run("const big = Float64Array.from({ length: 2_000_000 }, (_, i) => i * 0.5);")[0]["content"]["status"] == "ok"
        assert k.run("small.b.push(4);")[0]["content"]["status"] == "ok"
    finally:
        k.close()
    assert not (tmp_path / ".nbscale").exists(), "nothing may be written to the local default store"
    hist = cli("history", "--json", env=s3env, cwd=tmp_path)
    assert hist.returncode == 0, hist.stderr
    executions = last_json(hist.stdout)["executions"]
    assert len(executions) == 3
    got = cli("artifact", "get", "small@2", "--json", env=s3env, cwd=tmp_path)
    assert got.returncode == 0, got.stderr
    art = last_json(got.stdout)
    assert art["value"] == {"a": 1, "b": [1, 2, 3, 4]} and art["version"] == 2
    big = last_json(cli("artifact", "get", "big", "--json", env=s3env, cwd=tmp_path).stdout)
    keys = [o["Key"] for o in s3_client(moto).list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name)["Contents"]]
    assert any(big["sha256"] in key for key in keys), "blobs are stored under their SHA-256"
    fsck = cli("fsck", "--json", env=s3env, cwd=tmp_path)
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr


def test_a_corrupted_blob_in_s3_is_refused_naming_the_artifact(s3env: dict[str, str], moto: MotoServer, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run('const model = { weights: [0.25, 0.5, 0.75], name: "m" };')[0]["content"]["status"] == "ok"
    finally:
        k.close()
    sha = last_json(cli("artifact", "get", "model", "--json", env=s3env, cwd=tmp_path).stdout)["sha256"]
    s3 = s3_client(moto)
    key = next(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name)["Contents"] if sha in o["Key"])
    body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    body[-1] ^= 0xFF
    s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    got = cli("artifact", "get", "model", "--json", env=s3env, cwd=tmp_path)
    assert got.returncode != 0
    assert "model@1" in got.stderr and sha[:12] in got.stderr, got.stderr
    fsck = cli("fsck", env=s3env, cwd=tmp_path)
    assert fsck.returncode != 0


def test_a_large_value_in_s3_is_verified_by_chunks_and_a_corrupted_chunk_is_named(s3env: dict[str, str], moto: MotoServer, tmp_path: Path) -> None:
    # 40 MB: over the 32 MiB from which a blob gets a manifest of its 8 MiB chunks' hashes.
    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "const big = new Float64Array(5_000_000).map((_, i) => i * 0.25);", timeout=120)
    finally:
        k.close()
    hist = cli("history", "--json", env=s3env, cwd=tmp_path)
    assert hist.returncode == 0, hist.stderr
    sha = last_json(hist.stdout)["executions"][0]["outputs"]["big"]["sha256"]
    s3 = s3_client(moto)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=tmp_path.name)["Contents"] if sha in o["Key"]]
    blob = next(key for key in keys if "/blobs/sha256/" in key)
    assert any("/blobs/manifests/" in key for key in keys), keys
    assert cli("fsck", env=s3env, cwd=tmp_path).returncode == 0

    k = KernelSession(cwd=str(tmp_path))
    try:
        ok(k, "%restore big@1", timeout=120)
        assert value(k, "[big.length, big[4_999_999]]") == "[ 5000000, 1249999.75 ]"
        body = bytearray(s3.get_object(Bucket=BUCKET, Key=blob)["Body"].read())
        body[20 << 20] ^= 0xFF  # in the third 8 MiB chunk
        s3.put_object(Bucket=BUCKET, Key=blob, Body=bytes(body))
        err = fails(k, "%restore big@1", timeout=120)
        assert "big@1" in err["evalue"] and "chunk 3 of 5" in err["evalue"], err["evalue"]
    finally:
        k.close()
    fsck = cli("fsck", env=s3env, cwd=tmp_path)
    assert fsck.returncode != 0 and sha in fsck.stdout + fsck.stderr, fsck.stdout + fsck.stderr


def test_an_interrupted_upload_is_a_leftover_that_fsck_lists_and_cleans(s3env: dict[str, str], moto: MotoServer, tmp_path: Path) -> None:
    k = KernelSession(cwd=str(tmp_path))
    try:
        assert k.run("const x = 1;")[0]["content"]["status"] == "ok"
    finally:
        k.close()
    s3 = s3_client(moto)
    s3.create_multipart_upload(Bucket=BUCKET, Key=f"{tmp_path.name}/blobs/ab/cdef-partial")
    listed = cli("fsck", "--json", env=s3env, cwd=tmp_path)
    report = last_json(listed.stdout)
    assert listed.returncode == 0, "a leftover upload does not make the store inconsistent"
    assert "cdef-partial" in json.dumps(report)
    cleaned = cli("fsck", "--clean", "--grace", "0s", "--json", env=s3env, cwd=tmp_path)
    assert cleaned.returncode == 0, cleaned.stdout + cleaned.stderr
    uploads = s3.list_multipart_uploads(Bucket=BUCKET, Prefix=tmp_path.name).get("Uploads", [])
    assert uploads == []


def test_a_bad_s3_url_is_refused_with_the_accepted_form(tmp_path: Path) -> None:
    r = cli("history", env={"NBSCALE_DATASTORE": "s3://A_B/x"}, cwd=tmp_path)
    assert r.returncode != 0 and "s3://bucket/prefix" in r.stderr
