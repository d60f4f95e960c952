"""`nbscale run FLOW.ts --on slurm|batch` and flow steps whose own settings
say `on: "slurm"`/`"batch"` (issue 5's remote half), through the real CLI:

- Slurm: the single-node cluster scripts/slurm.sh starts (tests skip without
  SLURM_CONF, and fail under scripts/test.sh). Each step is a real sbatch job
  running `nbscale worker --task`;
  the datastore (a directory the node shares) carries the task, the flow
  module, inputs, live output and the result.
- AWS Batch: moto's server. The control plane (SubmitJob's queue, resources,
  timeout, environment) is asserted through moto's request recorder; the
  data plane runs the exact command and environment that were submitted, as
  the compute environment would (test_batch.run_like_the_container — THE
  STAND-IN FOR THE CONTAINER), against moto's S3.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from moto_server import MotoServer
from test_batch import BUCKET, QUEUE, Recorder, aws, client_keys, env_of, moto, recorder, registry, run_like_the_container, timed_batch  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
CLI = str(REPO / "kernel" / "bin" / "nbscale.js")
NODE = "/usr/bin/node" if Path("/usr/bin/node").exists() else "node"

# Skips without the cluster, fails without it when NBSCALE_TEST_SLURM=1 (conftest.py).
needs_slurm = pytest.mark.slurm


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([NODE, CLI, *args], cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout)


def last_json(r: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(r.stdout.strip().splitlines()[-1])


def artifacts(out: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {name: s["artifacts"] for name, s in out["steps"].items()}


def step_records(run: str, cwd: Path, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = cli("show", run, "--json", cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return last_json(r)["steps"]


def job_state(job: str) -> str:
    out = subprocess.run(["scontrol", "show", "job", "-o", job], capture_output=True, text=True, check=True).stdout
    m = re.search(r"JobState=(\S+)", out)
    assert m, out
    return m.group(1)


@pytest.fixture()
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NBSCALE_DATASTORE", str(tmp_path / "store"))
    monkeypatch.setenv("JOBS_DIR", str(tmp_path / "jobs"))
    (tmp_path / "jobs").mkdir()
    return tmp_path


# Every step leaves a file named after itself holding the Slurm job id it ran
# in ("none" outside Slurm): the side effect that proves where and how often it ran.
FLOW = """import { flow, step } from "nbscale";
import * as fs from "fs";
import * as path from "path";

function mark(name: string): void {
  fs.appendFileSync(path.join(process.env.JOBS_DIR!, name), `${process.env.SLURM_JOB_ID ?? "none"}\\n`);
}

const load = step("load", { on: "slurm", memory: "512M", cpu: 1 }, () => {
  mark("load");
  console.log(`loading in job ${process.env.SLURM_JOB_ID}`);
  const data = Float64Array.from({ length: 1000 }, (_, i) => i / 7);
  const meta = { rows: data.length, name: "demo" };
  return { data, meta };
});

const total = step("total", { inputs: { data: load.data } }, ({ data }) => {
  mark("total");
  const total = data.reduce((a, b) => a + b, 0);
  return { total };
});

const squares = step("squares", { on: "slurm", parallel: 2, inputs: { data: load.data }, foreach: ({ data }) => Array.from(data.slice(0, 3)) }, ({ item, index }) => {
  mark(`squares-${index}`);
  fs.appendFileSync(path.join(process.env.JOBS_DIR!, "squares-array"), `${process.env.SLURM_ARRAY_JOB_ID ?? "none"}\n`);
  const sq = item * item;
  return { sq };
});

const report = step("report", { on: "slurm", inputs: { total: total.total, sq: squares.sq, meta: load.meta } }, ({ total, sq, meta }) => {
  mark("report");
  if (fs.existsSync(path.join(__dirname, "broken"))) throw new RangeError("report is broken");
  const summary = `${meta.name}: ${total.toFixed(3)} ${sq.map((x) => x.toFixed(3)).join(",")}`;
  return { summary };
});

export default flow("remote", [load, total, squares, report]);
"""


def jobs_of(work: Path, name: str) -> list[str]:
    p = work / "jobs" / name
    return p.read_text().split() if p.exists() else []


@needs_slurm
def test_slurm_steps_run_as_jobs_and_match_a_local_run_by_hash(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    r = cli("run", "flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    remote = last_json(r)
    assert remote["status"] == "succeeded" and all(s["executed"] for s in remote["steps"].values())
    # Each slurm step (and each foreach item) ran in a Slurm job of its own that completed; the local step did not.
    slurm_jobs = {name: jobs_of(work, name) for name in ("load", "squares-0", "squares-1", "squares-2", "report")}
    for name, jobs in slurm_jobs.items():
        assert len(jobs) == 1 and jobs[0].isdigit(), (name, jobs)
        assert job_state(jobs[0]) == "COMPLETED"
    assert len({j[0] for j in slurm_jobs.values()}) == len(slurm_jobs)
    assert jobs_of(work, "total") == ["none"]
    # The foreach items were one Slurm job array, throttled to the step's `parallel`.
    arrays = jobs_of(work, "squares-array")
    assert len(arrays) == 3 and len(set(arrays)) == 1 and arrays[0].isdigit(), arrays
    array_info = subprocess.run(["scontrol", "show", "job", "-o", arrays[0]], capture_output=True, text=True, check=True).stdout
    assert "ArrayTaskThrottle=2" in array_info, array_info
    recs = step_records(remote["run"], work)
    assert {n: recs[n]["target"] for n in recs} == {"load": "slurm", "total": "local", "squares": "slurm", "report": "slurm"}
    # The step's own output came back through the datastore into the run's log.
    logs = cli("logs", f"{remote['run']}/load", cwd=work)
    assert f"loading in job {slurm_jobs['load'][0]}" in logs.stdout and f"Slurm job {slurm_jobs['load'][0]} submitted" in logs.stdout, logs.stdout

    # The same flow, every step local: the same artifacts, hash for hash.
    local = cli("run", "flow.ts", "--on", "local", "--json", cwd=work)
    assert local.returncode == 0, local.stderr
    assert artifacts(last_json(local)) == artifacts(remote)
    assert jobs_of(work, "load")[-1] == "none"


@needs_slurm
def test_a_notebooks_slurm_cell_exported_to_a_flow_runs_as_a_slurm_job(work: Path) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "nbscale", "display_name": "TypeScript (nbscale)", "language": "typescript"}
    nb.cells = [
        nbformat.v4.new_code_cell("const xs = [1, 2, 3, 4];"),
        nbformat.v4.new_code_cell("%%step total --on slurm --memory 512M --cpu 1\n"
                                  "require(\"fs\").writeFileSync(require(\"path\").join(process.env.JOBS_DIR!, \"total\"), process.env.SLURM_JOB_ID ?? \"none\");\n"
                                  "const total = xs.reduce((a, b) => a + b, 0);"),
    ]
    nbformat.write(nb, str(work / "analysis.ipynb"))
    r = cli("export", "analysis.ipynb", "-o", "analysis.flow.ts", cwd=work)
    assert r.returncode == 0, r.stderr
    assert 'on: "slurm", memory: "512M", cpu: 1' in (work / "analysis.flow.ts").read_text()
    r = cli("run", "analysis.flow.ts", "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    job = (work / "jobs" / "total").read_text()
    assert job.isdigit() and job_state(job) == "COMPLETED"
    assert step_records(out["run"], work)["total"]["target"] == "slurm"
    local = last_json(cli("run", "analysis.flow.ts", "--on", "local", "--json", cwd=work))
    assert local["steps"]["total"]["artifacts"] == out["steps"]["total"]["artifacts"]


@needs_slurm
def test_run_on_slurm_sends_every_step_and_a_failure_resumes_without_redoing_finished_steps(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    (work / "broken").write_text("")
    r = cli("run", "flow.ts", "--on", "slurm", "--json", cwd=work)
    assert r.returncode != 0
    out = last_json(r)
    assert out["status"] == "failed" and out["steps"]["report"]["status"] == "failed"
    assert all(out["steps"][s]["status"] == "succeeded" for s in ("load", "total", "squares"))
    # --on slurm overrides the flow: the local step ran in a job too.
    assert jobs_of(work, "total")[0].isdigit()
    assert "step report failed: RangeError: report is broken" in r.stderr, r.stderr
    assert f"nbscale logs {out['run']}/report" in r.stderr and f"nbscale resume {out['run']}" in r.stderr
    before = {name: jobs_of(work, name) for name in ("load", "total", "squares-0", "report")}

    (work / "broken").unlink()
    r = cli("resume", out["run"], "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    resumed = last_json(r)
    assert resumed["status"] == "succeeded"
    assert {n: s["executed"] for n, s in resumed["steps"].items()} == {"load": False, "total": False, "squares": False, "report": True}
    # Finished steps did not run again; the fixed one ran once more, in a new Slurm job, on the same inputs.
    for name in ("load", "total", "squares-0"):
        assert jobs_of(work, name) == before[name], name
    after = jobs_of(work, "report")
    assert len(after) == 2 and after[1].isdigit() and after[1] != after[0]
    assert resumed["steps"]["load"]["artifacts"] == out["steps"]["load"]["artifacts"]
    assert resumed["steps"]["report"]["artifacts"]["summary"]


@needs_slurm
def test_a_failing_array_element_fails_the_foreach_step_and_resume_runs_a_new_array(work: Path) -> None:
    (work / "each.ts").write_text("""import { flow, step } from "nbscale";
import * as fs from "fs";
import * as path from "path";
const items = step("items", {}, () => {
  const xs = [10, 20, 30];
  return { xs };
});
const each = step("each", { on: "slurm", inputs: { xs: items.xs }, foreach: ({ xs }) => xs }, ({ item, index }) => {
  fs.appendFileSync(path.join(process.env.JOBS_DIR!, "each-array"), `${process.env.SLURM_ARRAY_JOB_ID}\\n`);
  if (index === 1 && !fs.existsSync(path.join(__dirname, "fixed"))) throw new RangeError(`item ${item} is bad`);
  const half = item / 2;
  return { half };
});
export default flow("each", [items, each]);
""")
    r = cli("run", "each.ts", "--json", cwd=work)
    assert r.returncode != 0
    # As a cell's foreach says it: how many items failed, which, and each one's error.
    assert "step each failed: 1 of 3 items of step `each` failed: index 1 item 1: RangeError: item 20 is bad" in r.stderr, r.stderr
    first = last_json(r)
    first_arrays = set(jobs_of(work, "each-array"))
    assert len(first_arrays) == 1 and len(jobs_of(work, "each-array")) == 3
    (work / "fixed").write_text("")
    r = cli("resume", first["run"], "--json", cwd=work)
    assert r.returncode == 0, r.stderr
    out = last_json(r)
    assert out["steps"]["items"]["executed"] is False and out["steps"]["each"]["executed"] is True
    second = set(jobs_of(work, "each-array")) - first_arrays
    assert len(second) == 1 and len(jobs_of(work, "each-array")) == 6, "the resumed step ran its three items as one new array"
    local = cli("run", "each.ts", "--on", "local", "--json", cwd=work)
    assert last_json(local)["steps"]["each"]["artifacts"] == out["steps"]["each"]["artifacts"]


@needs_slurm
def test_a_slurm_step_over_its_memory_gets_the_memory_advice_and_the_job_output(work: Path) -> None:
    (work / "oom.ts").write_text("""import { flow, step } from "nbscale";
const hog = step("hog", { on: "slurm", memory: "256M" }, async () => {
  const keep: Buffer[] = [];
  for (let i = 0; i < 40; i++) { keep.push(Buffer.alloc(50 * 2 ** 20, 1)); await new Promise((r) => setTimeout(r, 100)); }
  return { n: keep.length };
});
export default flow("oom", [hog]);
""")
    r = cli("run", "oom.ts", "--json", cwd=work)
    assert r.returncode != 0
    err = r.stderr
    assert "step hog failed: step `hog` ran out of memory" in err and "of the 256 MiB it asked for" in err, err
    assert "Slurm killed the job for exceeding its memory limit" in err, err
    m = re.search(r'memory: give it more memory: memory: "(\d+)([MG])" in step\("hog"', err)
    assert m and int(m.group(1)) * (1024 if m.group(2) == "G" else 1) > 256, err
    out_file = re.search(r"\[job output: (\S+)\]", err)
    assert out_file and "exceeded memory limit" in Path(out_file.group(1)).read_text(), err
    assert last_json(r)["steps"]["hog"]["status"] == "failed"


@needs_slurm
def test_ctrl_c_cancels_the_running_slurm_job_and_fails_the_step(work: Path) -> None:
    (work / "slow.ts").write_text("""import { flow, step } from "nbscale";
const slow = step("slow", { on: "slurm", retries: 2 }, async () => {
  console.log(`sleeping in ${process.env.SLURM_JOB_ID}`);
  await new Promise((r) => setTimeout(r, 120_000));
  const done = 1;
  return { done };
});
export default flow("slow", [slow]);
""")
    p = subprocess.Popen([NODE, CLI, "run", "slow.ts", "--json"], cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = ""
    assert p.stderr is not None
    # With --json the plain progress goes to stderr and echoes the step's own output: the job runs once it says so.
    while "sleeping in" not in seen:
        line = p.stderr.readline()
        assert line, f"run ended early: {seen}"
        seen += line
    job = re.search(r"sleeping in (\d+)", seen).group(1)  # type: ignore[union-attr]
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert f"interrupted; Slurm job {job} was cancelled" in err, err
    assert json.loads(out.strip().splitlines()[-1])["steps"]["slow"]["status"] == "failed"
    # scancel was sent; Slurm passes through COMPLETING while it stops the job's processes.
    deadline = time.monotonic() + 30
    while job_state(job) == "COMPLETING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert job_state(job) == "CANCELLED"
    # No retry was submitted after the interrupt.
    assert len(re.findall(r"Slurm job \d+ submitted", seen + err)) == 1, seen + err


def test_slurm_without_sbatch_is_refused_before_anything_runs(work: Path, tmp_path: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    bare = tmp_path / "bin"
    bare.mkdir()
    (bare / "node").symlink_to(Path(NODE).resolve() if NODE != "node" else Path(subprocess.check_output(["which", "node"], text=True).strip()))
    r = cli("run", "flow.ts", cwd=work, env={"PATH": str(bare)})
    assert r.returncode != 0
    assert "`sbatch` was not found" in r.stderr and "load, squares, report" in r.stderr and "--on local" in r.stderr, r.stderr
    assert not list((work / "jobs").iterdir()), "no step ran"
    assert not (work / "store").exists(), "nothing was written"


def test_batch_with_a_local_datastore_or_no_queue_is_refused_naming_the_setting(work: Path) -> None:
    (work / "flow.ts").write_text(FLOW)
    r = cli("run", "flow.ts", "--on", "batch", cwd=work, env={"NBSCALE_BATCH_QUEUE": "q"})
    assert r.returncode != 0
    assert "was not sent to AWS Batch" in r.stderr and "NBSCALE_DATASTORE=s3://" in r.stderr and "--on local" in r.stderr, r.stderr
    env = {k: v for k, v in os.environ.items() if k != "NBSCALE_BATCH_QUEUE"}
    r = subprocess.run([NODE, CLI, "run", "flow.ts", "--on", "batch"], cwd=work, env={**env, "NBSCALE_DATASTORE": "s3://some-bucket/x"}, capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "no AWS Batch job queue" in r.stderr and "NBSCALE_BATCH_QUEUE" in r.stderr, r.stderr
    assert not list((work / "jobs").iterdir())


BATCH_FLOW = """import { flow, step } from "nbscale";

const load = step("load", {}, () => {
  const data = [3, 1, 4, 1, 5, 9, 2, 6];
  return { data };
});

const train = step("train", { on: "batch", memory: "2G", cpu: 2, timeout: "10m", retries: 1, env: { SEED: "7" }, inputs: { data: load.data } }, ({ data }) => {
  console.log(`training in ${process.env.AWS_BATCH_JOB_ID} with seed ${process.env.SEED}`);
  const model = { weights: data.map((x) => x * Number(process.env.SEED)), n: data.length };
  return { model };
});

const score = step("score", { inputs: { model: train.model } }, ({ model }) => {
  const score = model.weights.reduce((a, b) => a + b, 0) / model.n;
  return { score };
});

export default flow("batchy", [load, train, score]);
"""


@pytest.fixture()
def batch_env(moto: MotoServer, aws: dict[str, Any], registry: Any, tmp_path: Path) -> dict[str, str]:  # noqa: F811
    e = moto.env()
    e["npm_config_registry"] = registry.url
    e["NBSCALE_DATASTORE"] = f"s3://{BUCKET}/{tmp_path.name}"
    e["NBSCALE_BATCH_QUEUE"] = QUEUE
    return e


def test_a_batch_flow_step_is_submitted_with_its_resources_and_its_job_command_completes_the_run(
    batch_env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    (tmp_path / "flow.ts").write_text(BATCH_FLOW)
    # Each job state lasts long enough for the stand-in to run the job before moto (no Docker) fails it at RUNNING.
    timed_batch(moto, 8)
    home = tmp_path / "container"
    home.mkdir()
    container: dict[str, Any] = {}
    t = threading.Thread(target=lambda: container.setdefault("proc", run_like_the_container(moto, recorder, home)))
    t.start()
    r = cli("run", "flow.ts", "--json", cwd=tmp_path, env=batch_env)
    t.join()
    proc = container["proc"]
    assert r.returncode == 0, (r.stderr, proc.stderr)
    out = last_json(r)
    assert out["status"] == "succeeded" and all(s["executed"] for s in out["steps"].values())

    # Control plane: exactly one job, for the batch step, with the step's queue, resources, timeout and env.
    subs = recorder.batch("submitjob")
    assert len(subs) == 1
    s = subs[0]
    assert s["jobQueue"] == QUEUE and s["jobName"] == "nbscale-train"
    assert s["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "2048"}, {"type": "VCPU", "value": "2"}]
    assert s["timeout"] == {"attemptDurationSeconds": 600}
    # Retries are the runner's (a fresh job on a fresh task), never Batch's: a Batch retry would find its task started.
    assert "retryStrategy" not in s
    ev = env_of(s)
    assert ev["SEED"] == "7" and ev["NBSCALE_DATASTORE"] == batch_env["NBSCALE_DATASTORE"] and ev["NBSCALE_STEP"] == "train"
    assert "AWS_SECRET_ACCESS_KEY" not in ev

    # Data plane: the job read its task from S3 and wrote the result the run used.
    assert proc.returncode == 0, proc.stderr
    keys = client_keys(batch_env, tmp_path)
    task = ev["NBSCALE_TASK"]
    assert {f"{tmp_path.name}/tasks/{task}/{f}" for f in ("task.json", "started.json", "result.json")} <= set(keys)
    logs = cli("logs", f"{out['run']}/train", cwd=tmp_path, env=batch_env)
    assert "training in stand-in with seed 7" in logs.stdout, logs.stdout
    # The default image installs nbscale; the step's log says from where, as a cell does.
    assert "installs nbscale" in logs.stdout and "NBSCALE_WORKER_PACKAGE" in logs.stdout, logs.stdout
    recs = step_records(out["run"], tmp_path, batch_env)
    assert recs["train"]["target"] == "batch" and recs["load"]["target"] == "local"

    # The same flow run locally gives the same artifacts, hash for hash.
    local = cli("run", "flow.ts", "--on", "local", "--json", cwd=tmp_path, env={**batch_env, "NBSCALE_DATASTORE": str(tmp_path / "local-store")})
    assert local.returncode == 0, local.stderr
    assert artifacts(last_json(local)) == artifacts(out)


def test_a_batch_job_that_fails_without_a_result_fails_the_step_with_its_reason(
    batch_env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    (tmp_path / "flow.ts").write_text(BATCH_FLOW)
    # No stand-in: moto (no Docker) fails the job at RUNNING, and no worker ever writes a result.
    timed_batch(moto, 1)
    r = cli("run", "flow.ts", "--json", cwd=tmp_path, env=batch_env)
    assert r.returncode != 0
    out = last_json(r)
    assert out["steps"]["train"]["status"] == "failed" and out["steps"]["score"]["status"] == "skipped"
    assert out["steps"]["load"]["status"] == "succeeded"
    assert "step train failed: step `train`: AWS Batch job" in r.stderr and "FAILED" in r.stderr, r.stderr
    # retries: 1 → a second attempt, as a new job on a new task.
    subs = recorder.batch("submitjob")
    assert len(subs) == 2 and env_of(subs[0])["NBSCALE_TASK"] != env_of(subs[1])["NBSCALE_TASK"]
    logs = cli("logs", f"{out['run']}/train", cwd=tmp_path, env=batch_env)
    assert "attempt 2 of 2" in logs.stdout, logs.stdout


BATCH_FOREACH = """import { flow, step } from "nbscale";

const xs = step("xs", {}, () => {
  const xs = [2, 3, 5];
  return { xs };
});

const squares = step("squares", { on: "batch", memory: "1G", inputs: { xs: xs.xs }, foreach: ({ xs }) => xs }, ({ item, index }) => {
  console.log(`item ${item} at ${index} in ${process.env.AWS_BATCH_JOB_ID}`);
  const y = item * item;
  return { y };
});

export default flow("batch_each", [xs, squares]);
"""


@pytest.mark.timeout(600)  # array children run one after another by the stand-in
def test_a_batch_foreach_flow_step_is_one_array_job_whose_children_complete_the_run(
    batch_env: dict[str, str], recorder: Recorder, moto: MotoServer, tmp_path: Path  # noqa: F811
) -> None:
    (tmp_path / "flow.ts").write_text(BATCH_FOREACH)
    timed_batch(moto, 8)
    home = tmp_path / "container"
    home.mkdir()
    # Batch starts children in no particular order: the last first here.
    order = [2, 0, 1]
    procs: dict[int, subprocess.CompletedProcess[str]] = {}

    def children() -> None:
        for i in order:
            procs[i] = run_like_the_container(moto, recorder, home, extra_env={"AWS_BATCH_JOB_ARRAY_INDEX": str(i), "AWS_BATCH_JOB_ID": f"stand-in:{i}"})

    t = threading.Thread(target=children)
    t.start()
    r = cli("run", "flow.ts", "--json", cwd=tmp_path, env=batch_env, timeout=240)
    t.join()
    assert r.returncode == 0, (r.stderr, {i: p.stderr for i, p in procs.items()})
    out = last_json(r)
    subs = recorder.batch("submitjob")
    assert len(subs) == 1, "one array job, not one job per item (and no job just to count the items)"
    assert subs[0]["arrayProperties"] == {"size": 3} and env_of(subs[0])["NBSCALE_TASK_ARRAY"] == "1"
    assert subs[0]["containerOverrides"]["resourceRequirements"] == [{"type": "MEMORY", "value": "1024"}]
    assert all(p.returncode == 0 for p in procs.values()), {i: p.stderr for i, p in procs.items()}
    logs = cli("logs", f"{out['run']}/squares", cwd=tmp_path, env=batch_env).stdout
    for i, x in enumerate([2, 3, 5]):
        assert f"item {x} at {i} in stand-in:{i}" in logs, logs
    local = cli("run", "flow.ts", "--on", "local", "--json", cwd=tmp_path, env={**batch_env, "NBSCALE_DATASTORE": str(tmp_path / "local-store")})
    assert artifacts(last_json(local)) == artifacts(out)


@needs_slurm
def test_a_terminal_run_shows_each_slurm_jobs_state_on_the_steps_live_line(work: Path) -> None:
    """What a user at a terminal sees: the live line of a remote step says where its job is
    (submitted, PENDING, RUNNING on a node), and a foreach step's line counts its items' jobs."""
    import pty

    (work / "wait.ts").write_text("""import { flow, step } from "nbscale";
const pause = (ms: number) => { const end = Date.now() + ms; while (Date.now() < end) { /* the job is visibly RUNNING */ } };
const one = step("one", { on: "slurm" }, () => {
  pause(1500);
  const xs = [1, 2, 3];
  return { xs };
});
const each = step("each", { on: "slurm", inputs: { xs: one.xs }, foreach: ({ xs }) => xs }, ({ item }) => {
  pause(1500);
  const y = item * 2;
  return { y };
});
export default flow("wait", [one, each]);
""")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on a 200-column terminal, as a user runs it
        import fcntl
        import struct
        import termios

        fcntl.ioctl(1, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
        os.chdir(work)
        os.execve(NODE, [NODE, CLI, "run", "wait.ts"], {**os.environ, "COLUMNS": "200"})
    screen = b""
    deadline = time.time() + 180
    while time.time() < deadline:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the CLI exited and closed the terminal
            break
        if not chunk:
            break
        screen += chunk
    _, status = os.waitpid(pid, 0)
    text = re.sub(r"\x1b\[\d*[A-Z]", "", screen.decode("utf-8", "replace"))
    assert os.waitstatus_to_exitcode(status) == 0, text
    assert re.search(r"▸ one +\d+\.\ds +Slurm job \d+: (submitted|PENDING|RUNNING)", text), text
    assert re.search(r"▸ one .*Slurm job \d+: RUNNING on \S+", text), text
    assert re.search(r"▸ each .*\] \d/3 +(\d running|\d queued)", text), text
    assert "done     each" in text and "run " in text and "succeeded" in text
