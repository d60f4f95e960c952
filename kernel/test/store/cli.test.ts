import { test } from "node:test";
import assert from "node:assert/strict";
import { chmod, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { blobKey, Datastore } from "../../src/store";
import history from "../../src/cli/commands/history";
import artifact from "../../src/cli/commands/artifact";
import show from "../../src/cli/commands/show";
import fsckCommand from "../../src/cli/commands/fsck";
import { runCli, tmpStoreDir } from "./helpers";

async function seeded() {
  const t = await tmpStoreDir();
  const ds = await Datastore.open(t.dir, { create: true });
  const base = { notebook: "/nb/a.ipynb", status: "ok" as const, started: new Date(), target: "kernel" };
  const r1 = await ds.recordExecution({ ...base, cell: "c1", code: "const x = {k: [1, 2]}", outputs: { x: { k: [1, 2] }, arr: new Float32Array([0.5, 1.5]) } });
  const r2 = await ds.recordExecution({
    ...base,
    cell: "c2",
    code: "const y = x.k.length",
    inputs: { x: r1.outputs.x },
    outputs: { y: 2, big: new Float64Array(200_000).fill(1) },
  });
  return { ...t, r1, r2, env: { NBSCALE_DATASTORE: t.dir } };
}

const SUMMARY_KEYS = ["cell", "code_sha256", "finished", "id", "inputs", "outputs", "started", "status", "target"];

test("history --json prints exactly the contract shape, newest first", async () => {
  const s = await seeded();
  try {
    const r = await runCli(history, ["--json"], s.env, "/");
    assert.equal(r.code, 0, r.stderr);
    const json = r.json as { executions: Array<Record<string, unknown>> };
    assert.deepEqual(Object.keys(json), ["executions"]);
    assert.equal(json.executions.length, 2);
    for (const e of json.executions) assert.deepEqual(Object.keys(e).sort(), SUMMARY_KEYS);
    const [newest, oldest] = json.executions;
    assert.equal(newest.id, s.r2.id);
    assert.equal(oldest.id, s.r1.id);
    assert.deepEqual(newest.inputs, { x: { version: 1, sha256: s.r1.outputs.x.sha256 } });
    assert.deepEqual(Object.keys(newest.outputs as object).sort(), ["big", "y"]);
    assert.deepEqual((newest.outputs as Record<string, unknown>).y, { version: 1, sha256: s.r2.outputs.y.sha256 });
    const filtered = await runCli(history, ["x", "--json"], s.env, "/");
    assert.equal((filtered.json as { executions: unknown[] }).executions.length, 2);
    const byCell = await runCli(history, ["--cell", "c1", "--json"], s.env, "/");
    assert.deepEqual(
      (byCell.json as { executions: Array<{ id: string }> }).executions.map((e) => e.id),
      [s.r1.id],
    );
    const table = await runCli(history, [], s.env, "/");
    assert.match(table.stdout, /^ID\s+CELL\s+STATUS/);
    assert.match(table.stdout, /x@1 arr@1/);
    const versions = await runCli(history, ["x"], s.env, "/");
    assert.match(versions.stdout, /x@1 .* c1 /);
  } finally {
    await s.cleanup();
  }
});

test("artifact get --json prints {name, version, sha256, value}", async () => {
  const s = await seeded();
  try {
    const r = await runCli(artifact, ["get", "x", "--json"], s.env, "/");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, { name: "x", version: 1, sha256: s.r1.outputs.x.sha256, value: { k: [1, 2] } });
    const typed = await runCli(artifact, ["get", "arr@1", "--json"], s.env, "/");
    assert.deepEqual((typed.json as { value: unknown }).value, [0.5, 1.5]);
    const big = await runCli(artifact, ["get", "big", "--json"], s.env, "/");
    assert.equal((big.json as { value: unknown }).value, null);
    assert.match(big.stderr, /Float64Array\(200000\) left out/);
    const human = await runCli(artifact, ["get", "x"], s.env, "/");
    assert.match(human.stdout, /^x@1 {2}Object/);
    assert.match(human.stdout, /k: \[ 1, 2 \]/);
    const out = join(s.dir, "arr.bin");
    const raw = await runCli(artifact, ["get", "arr", "-o", out], s.env, "/");
    assert.equal(raw.code, 0, raw.stderr);
    assert.deepEqual([...new Float32Array((await readFile(out)).buffer.slice(0, 8))], [0.5, 1.5]);
    const list = await runCli(artifact, ["list", "--json"], s.env, "/");
    assert.deepEqual(
      (list.json as { artifacts: Array<{ name: string }> }).artifacts.map((a) => a.name),
      ["arr", "big", "x", "y"],
    );
  } finally {
    await s.cleanup();
  }
});

test("errors name the culprit and the fix, with non-zero exit codes", async () => {
  const s = await seeded();
  try {
    const unknown = await runCli(artifact, ["get", "xx"], s.env, "/");
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /No variable `xx`.*Did you mean: `x`/);
    const version = await runCli(artifact, ["get", "x@5"], s.env, "/");
    assert.equal(version.code, 1);
    assert.match(version.stderr, /`x` has no version 5\. Existing versions: x@1/);
    const badVersion = await runCli(artifact, ["get", "x@two"], s.env, "/");
    assert.equal(badVersion.code, 1);
    assert.match(badVersion.stderr, /positive whole number/);
    const usage = await runCli(history, ["--lmit", "3"], s.env, "/");
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown option --lmit\. Did you mean --limit\?/);
    // An S3 datastore without AWS settings: one message naming the setting, not an SDK trace.
    const saved = { ...process.env };
    for (const k of ["AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_ENDPOINT_URL"]) {
      delete process.env[k];
    }
    process.env.AWS_CONFIG_FILE = "/nonexistent/aws-config";
    process.env.AWS_SHARED_CREDENTIALS_FILE = "/nonexistent/aws-credentials";
    try {
      const s3 = await runCli(history, ["--json"], { NBSCALE_DATASTORE: "s3://nbscale-bucket/prefix" }, "/");
      assert.equal(s3.code, 1);
      assert.match(s3.stderr, /s3:\/\/nbscale-bucket\/prefix.*(AWS_REGION|AWS_ACCESS_KEY_ID)/);
    } finally {
      process.env = saved;
    }
    const badUrl = await runCli(history, ["--json"], { NBSCALE_DATASTORE: "s3://B/prefix" }, "/");
    assert.equal(badUrl.code, 1);
    assert.match(badUrl.stderr, /s3:\/\/bucket\/prefix/);
    const missing = await runCli(history, [], {}, s.dir);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /No datastore at .*\.nbscale .*--datastore DIR.*NBSCALE_DATASTORE/);
    // --datastore wins over the environment.
    const flag = await runCli(history, ["--json", "--datastore", s.dir], { NBSCALE_DATASTORE: "/nonexistent" }, "/");
    assert.equal(flag.code, 0, flag.stderr);
  } finally {
    await s.cleanup();
  }
});

test("show prints one execution in full; --json is the record", async () => {
  const s = await seeded();
  try {
    const r = await runCli(show, [s.r2.id, "--json"], s.env, "/");
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(r.json, JSON.parse(JSON.stringify(s.r2)));
    const human = await runCli(show, [s.r2.id.slice(-8)], s.env, "/");
    assert.match(human.stdout, /execution .*\nstatus +ok/);
    assert.match(human.stdout, /\| const y = x\.k\.length/);
    const none = await runCli(show, ["nope"], s.env, "/");
    assert.equal(none.code, 1);
    assert.match(none.stderr, /No execution `nope`.*nbscale history/);
  } finally {
    await s.cleanup();
  }
});

test("fsck exits 0 on a consistent store and 1 after a blob is corrupted", async () => {
  const s = await seeded();
  try {
    const ok = await runCli(fsckCommand, ["--json"], s.env, "/");
    assert.equal(ok.code, 0, ok.stdout);
    assert.equal((ok.json as { consistent: boolean }).consistent, true);
    const file = join(s.dir, ...blobKey(s.r2.outputs.big.sha256).split("/"));
    await chmod(file, 0o644);
    const bytes = await readFile(file);
    bytes[bytes.length - 8] ^= 0xff;
    await writeFile(file, bytes);
    const bad = await runCli(fsckCommand, [], s.env, "/");
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /PROBLEM corrupt-blob: .*it holds big@1/);
    assert.match(bad.stdout, /INCONSISTENT/);
    const get = await runCli(artifact, ["get", "big", "--json"], s.env, "/");
    assert.equal(get.code, 1);
    assert.match(get.stderr, /Artifact big@1 is corrupt/);
    assert.equal(get.stdout, "", "no data printed");
  } finally {
    await s.cleanup();
  }
});
