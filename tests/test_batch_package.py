"""Where the job's container gets nbscale (issue 7, NBSCALE_WORKER_PACKAGE):
nbscale is not on npm, so by default the kernel uploads its own package
(`npm pack`) to the S3 datastore under its sha256 and each job installs it
from a presigned URL.

Data plane: the container stand-in runs the submitted command in an image
WITHOUT nbscale (the plain Node image's situation): the bootstrap must
install it from moto's S3 with npm and then run the step. npm's own cache
on this machine stands in for the registry the job would get nbscale's
dependencies from (npm_config_prefer_offline). moto does not check
signatures: that the presigned URL is accepted by real S3 is not shown here.
"""
from __future__ import annotations

import hashlib
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest

from conftest import KernelSession
from moto_server import MotoServer
from test_batch import BUCKET, Recorder, aws, env, env_of, error_of, moto, nothing_sent, recorder, registry, run, run_with_container, stderr, timed_batch, value_of  # noqa: F401


def machine_registry_trust() -> dict[str, str]:
    out: dict[str, str] = {}
    cafile = subprocess.run(["npm", "config", "get", "cafile"], capture_output=True, text=True).stdout.strip()
    if cafile and cafile not in ("null", "undefined") and Path(cafile).exists():
        out["npm_config_cafile"] = cafile
    for name in ("NODE_EXTRA_CA_CERTS", "SSL_CERT_FILE", "SSL_CERT_DIR", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        if os.environ.get(name):
            out[name] = os.environ[name]
    return out


def test_the_job_installs_the_kernels_own_package_from_s3_and_runs_the_step(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    timed_batch(moto, 10)
    home = tmp_path / "container"
    prefix = home / "npm-global"
    image = {
        # The plain Node image: npm, no nbscale. Its npm installs globally under `prefix`.
        "PATH": f"{prefix / 'bin'}:{os.environ['PATH']}",
        "npm_config_prefix": str(prefix),
        "npm_config_cache": os.path.expanduser("~/.npm"),
        "npm_config_prefer_offline": "true",
        "npm_config_update_notifier": "false",
        # What this machine's npm trusts to reach the registry (here, behind a proxy with its own CA;
        # a real image reaches the public registry). The image's own prefix has no npmrc to say it.
        **machine_registry_trust(),
    }
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs, procs = run_with_container(k, moto, recorder, home, "%%step fresh --on batch\nconst v = 6 * 7;", runs=[image], image_has_nbscale=False, timeout=240)
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[0].stderr[-3000:])
        assert value_of(k, "v") == "42"
        recorder.reset()
        reply2, msgs2 = run(k, "%%step again --on batch\nconst w = 1;")
    finally:
        k.close()
    url = env_of(recorder.batch("submitjob")[0])["NBSCALE_WORKER_PACKAGE"]
    m = re.match(rf"^{re.escape(moto.url)}/{BUCKET}/{re.escape(tmp_path.name)}/batch/packages/([0-9a-f]{{64}})/nbscale-0\.1\.0\.tgz\?(.*)$", url)
    assert m and "X-Amz-Signature=" in m.group(2) and "X-Amz-Expires=" in m.group(2), url
    s3 = boto3.client("s3", endpoint_url=moto.url, region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    body = s3.get_object(Bucket=BUCKET, Key=f"{tmp_path.name}/batch/packages/{m.group(1)}/nbscale-0.1.0.tgz")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == m.group(1), "stored under its own hash"
    log = procs[0].stderr
    assert "[nbscale] installing nbscale 0.1.0 from " in log and "X-Amz-Signature" not in log, log[-2000:]
    assert (prefix / "bin" / "nbscale").exists(), "the bootstrap installed nbscale into the image's npm prefix"
    assert "installs nbscale 0.1.0 from the kernel's own package" in stderr(msgs), stderr(msgs)
    # The second step reuses the uploaded package and says nothing more about it.
    assert not [u for u in recorder.s3_puts(BUCKET) if "/batch/packages/" in u], recorder.s3_puts(BUCKET)
    assert "installs nbscale" not in stderr(msgs2)


def test_npm_or_a_spec_of_ones_own_goes_to_the_job_as_is(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    specs = {"npm": "nbscale@0.1.0", "https://example.org/pkgs/nbscale-0.1.0.tgz": "https://example.org/pkgs/nbscale-0.1.0.tgz"}
    for setting, expected in specs.items():
        monkeypatch.setenv("NBSCALE_WORKER_PACKAGE", setting)
        recorder.reset()
        k = KernelSession(cwd=str(tmp_path))
        try:
            run(k, "%%step pinned --on batch\nconst x = 1;")
        finally:
            k.close()
        assert env_of(recorder.batch("submitjob")[0])["NBSCALE_WORKER_PACKAGE"] == expected
        assert not [u for u in recorder.s3_puts(BUCKET) if "/batch/packages/" in u], "nothing packed or uploaded"


def test_a_worker_package_setting_with_shell_characters_is_refused(env: dict[str, str], recorder: Recorder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBSCALE_WORKER_PACKAGE", "nbscale@$(whoami)")
    k = KernelSession(cwd=str(tmp_path))
    try:
        _, msgs = run(k, "%%step bad --on batch\nconst x = 1;")
    finally:
        k.close()
    e = error_of(msgs)
    assert e["ename"] == "BatchConfigError" and "NBSCALE_WORKER_PACKAGE" in e["evalue"], e
    nothing_sent(recorder)
