"""Where the job's container gets nbscale (issue 7, NBSCALE_WORKER_PACKAGE):
nbscale is not on npm, so by default the kernel uploads its own package
(`npm pack`) to the S3 datastore under its sha256 and each job installs it
from a presigned URL.

Data plane: the container stand-in runs the submitted command in an image
WITHOUT nbscale (the plain Node image's situation): the bootstrap must
install it from moto's S3 with npm and then run the step. The project's npm
cache (the one scripts/setup.sh's `npm ci` filled, with the project's registry
and CA file, all passed explicitly: project_npm) stands in for the registry the
job would get nbscale's dependencies from (npm_config_prefer_offline). moto does not check
signatures: that the presigned URL is accepted by real S3 is not shown here.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
from pathlib import Path

import boto3
import pytest

from conftest import KernelSession
from moto_server import MotoServer
from test_batch import BUCKET, Recorder, aws, env, env_of, error_of, moto, nothing_sent, recorder, registry, run, run_with_container, stderr, timed_batch, value_of  # noqa: F401


ROOT = Path(__file__).resolve().parents[1]


def project_npm() -> dict[str, str]:
    """How the project's own npm reaches the registry, as `npm config` in the checkout
    resolves it (the checkout's, the user's and the global npmrc, npm_config_* variables):
    the registry and the cache `npm ci` filled for scripts/setup.sh (npm's cache is keyed
    by registry URL, so the image must ask the same registry to hit it), and what the
    registry is trusted with (CA file, proxy). Read when this module is imported, before
    any fixture points npm_config_registry at the empty test registry."""
    r = subprocess.run(["npm", "config", "ls", "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise RuntimeError(f"npm config ls --json failed in {ROOT}: {r.stderr.strip()}")
    config = json.loads(r.stdout)
    out = {"npm_config_registry": config["registry"], "npm_config_cache": config["cache"]}
    if config.get("cafile") and Path(config["cafile"]).exists():
        out["npm_config_cafile"] = config["cafile"]
    for key in ("ca", "proxy", "https-proxy", "noproxy", "strict-ssl"):
        v = config.get(key)
        if v not in (None, "", [], [""]):
            out[f"npm_config_{key.replace('-', '_')}"] = ",".join(v) if isinstance(v, list) else str(v).lower() if isinstance(v, bool) else str(v)
    # Node's own trust and proxy settings (the machine's: behind a proxy with its own CA here;
    # a real image reaches the public registry directly).
    for name in ("NODE_EXTRA_CA_CERTS", "HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "NO_PROXY", "no_proxy"):
        if os.environ.get(name):
            out[name] = os.environ[name]
    return out


PROJECT_NPM = project_npm()


@pytest.mark.timeout(600)  # npm installs nbscale and its dependencies in the stand-in
def test_the_job_installs_the_kernels_own_package_from_s3_and_runs_the_step(env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path) -> None:
    # Each Batch state lasts this long on moto: the stand-in's `npm install` of the packed kernel
    # and its dependencies must finish while the job is RUNNING, on a busy CI box too.
    timed_batch(moto, 45)
    home = tmp_path / "container"
    prefix = home / "npm-global"
    home.mkdir(exist_ok=True)
    (home / "global-npmrc").write_text("")
    image = {
        # The plain Node image: npm, no nbscale. Its npm installs globally under `prefix`.
        "PATH": f"{prefix / 'bin'}:{os.environ['PATH']}",
        "npm_config_prefix": str(prefix),
        # No npmrc of this machine's: everything the image's npm uses is said here.
        "npm_config_globalconfig": str(home / "global-npmrc"),
        "npm_config_userconfig": str(home / ".npmrc"),
        "npm_config_prefer_offline": "true",
        "npm_config_update_notifier": "false",
        "npm_config_audit": "false",
        "npm_config_fund": "false",
        # The project's registry, npm cache (standing in for the registry the job would get
        # nbscale's dependencies from) and CA file.
        **PROJECT_NPM,
    }
    k = KernelSession(cwd=str(tmp_path))
    try:
        reply, msgs, procs = run_with_container(k, moto, recorder, home, "%%step fresh --on batch\nconst v = 6 * 7;", runs=[image], image_has_nbscale=False, timeout=240)
        assert reply["content"]["status"] == "ok", ([m["content"] for m in msgs if m["msg_type"] == "error"], procs[0].stderr[-3000:])
        assert value_of(k, "v") == "42"
        recorder.reset()
        # No container runs the second job: it only shows what the kernel sends, and moto ends it soon.
        timed_batch(moto, 2)
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
