/**
 * The kernel side of the JupyterLab history sidebar (comm target
 * `nbscale.history`) and of the step-status renderer (stepStatusBundle),
 * without a browser: a comm is opened through the kernel's CommManager and
 * answered from a real datastore in a temporary folder.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CommManager } from "../../src/session/comms";
import { registerHistoryComm, HISTORY_TARGET } from "../../src/session/comm-handlers/history";
import { stepStatusBundle, STEP_STATUS_MIME } from "../../src/session/step-status";
import type { Recorder } from "../../src/session/recording";
import { Datastore } from "../../src/store";
import type { JsonObject } from "../../src/protocol/message";

const dir = mkdtempSync(join(tmpdir(), "nbscale-history-comm-"));
const NOTEBOOK = join(dir, "analysis.ipynb");

function fakeRecorder(create: boolean): Recorder {
  const location = { kind: "fs" as const, path: join(dir, ".nbscale"), source: "default" as const };
  return {
    notebook: NOTEBOOK,
    lineage: () => Promise.resolve(NOTEBOOK),
    location,
    settled: () => Promise.resolve(),
    datastore: (c = true) => Datastore.open(location as never, { create: c && create }),
  } as unknown as Recorder;
}

/** Opens a history comm and returns a function that sends one request and awaits its reply. */
async function connect(recorder: Recorder): Promise<(data: JsonObject) => Promise<JsonObject>> {
  const waiting = new Map<unknown, (d: JsonObject) => void>();
  const comms = new CommManager({
    publish: (type, content) => {
      if (type !== "comm_msg") return;
      const data = content.data as JsonObject;
      waiting.get(data.req)?.(data);
    },
  });
  registerHistoryComm(comms, { recorder });
  await comms.handleOpen({ comm_id: "c1", target_name: HISTORY_TARGET, data: {} });
  let n = 0;
  return (data) =>
    new Promise((resolve) => {
      const req = ++n;
      waiting.set(req, resolve);
      void comms.handleMessage({ comm_id: "c1", data: { ...data, req } }, []);
    });
}

test("before anything is recorded: empty pages, no error", async () => {
  const ask = await connect(fakeRecorder(false));
  const page = await ask({ request: "executions", offset: 0, limit: 10 });
  assert.equal(page.total, 0);
  assert.deepEqual(page.executions, []);
  assert.equal(page.notebook, NOTEBOOK);
  const unknown = await ask({ request: "nope" });
  assert.match(String(unknown.error), /unknown request "nope"/);
});

test("executions are paged newest first, filtered by notebook and variable; detail has lineage; versions list", async () => {
  const ds = await Datastore.open(join(dir, ".nbscale"), { create: true });
  const t0 = Date.parse("2025-01-01T00:00:00Z");
  const first = await ds.recordExecution({
    notebook: NOTEBOOK,
    cell: "c1",
    executionCount: 1,
    code: "let data = [1, 2, 3];",
    outputs: { data: [1, 2, 3] },
    status: "ok",
    started: new Date(t0),
    finished: new Date(t0 + 20),
    target: "kernel",
  });
  for (let i = 0; i < 30; i++) {
    await ds.recordExecution({
      notebook: NOTEBOOK,
      cell: "c2",
      executionCount: i + 2,
      code: `\n%%step fit --on local\nconst total = data.length + ${i};`,
      step: { name: "fit", options: { on: "local" } },
      inputs: { data: { version: first.outputs.data.version, sha256: first.outputs.data.sha256 } },
      outputs: { total: 3 + i },
      stdout: `run ${i}\n`,
      status: "ok",
      started: new Date(t0 + 1000 * (i + 1)),
      finished: new Date(t0 + 1000 * (i + 1) + 1500),
      target: "local",
    });
  }
  // another notebook's execution is not listed
  await ds.recordExecution({
    notebook: join(dir, "other.ipynb"),
    cell: "x",
    code: "1",
    status: "ok",
    started: new Date(t0 + 999_000),
    target: "kernel",
  });

  const ask = await connect(fakeRecorder(true));
  const page = await ask({ request: "executions", offset: 0, limit: 10 });
  assert.equal(page.total, 31);
  const rows = page.executions as JsonObject[];
  assert.equal(rows.length, 10);
  assert.equal(rows[0].executionCount, 31);
  assert.equal(rows[0].step, "fit");
  assert.equal(rows[0].firstLine, "%%step fit --on local");
  assert.equal(rows[0].durationMs, 1500);
  assert.deepEqual(rows[0].outputs, { total: { version: 30, newVersion: true } });

  const last = await ask({ request: "executions", offset: 30, limit: 10 });
  assert.equal((last.executions as JsonObject[]).length, 1);
  assert.equal((last.executions as JsonObject[])[0].id, first.id);

  const filtered = await ask({ request: "executions", offset: 0, limit: 100, variable: "total" });
  assert.equal(filtered.total, 30);

  const detail = (await ask({ request: "execution", id: rows[0].id as string })).execution as JsonObject;
  assert.match(String(detail.code), /const total = data.length \+ 29/);
  assert.deepEqual(detail.stdout, { text: "run 29\n", size: 7, cut: false });
  const input = (detail.inputs as JsonObject[])[0];
  assert.equal(input.name, "data");
  assert.equal(input.producedBy, first.id, "lineage: the input's producing execution");
  assert.ok(Number(input.size) > 0);
  assert.equal((detail.outputs as JsonObject[])[0].name, "total");

  const versions = await ask({ request: "versions", name: "total" });
  assert.equal(versions.scope, "notebook");
  const list = versions.versions as JsonObject[];
  assert.equal(list.length, 30);
  assert.equal(list[0].version, 30, "newest version first");

  const names = await ask({ request: "variables" });
  assert.deepEqual(names.names, ["data", "total"]);

  const missing = await ask({ request: "execution", id: "nosuchid" });
  assert.ok(typeof missing.error === "string");
});

test("stepStatusBundle: the extension's MIME type and a text fallback", () => {
  const b = stepStatusBundle({
    step: "fit",
    state: "failed",
    target: "local",
    memory: { requestedBytes: 2 ** 30, peakBytes: 2 ** 30 },
    error: { kind: "oom", message: "heap", suggestedMemory: "4G" },
  });
  assert.deepEqual(Object.keys(b).sort(), [STEP_STATUS_MIME, "text/plain"].sort());
  assert.equal((b[STEP_STATUS_MIME] as JsonObject).state, "failed");
  assert.match(String(b["text/plain"]), /step fit: failed · on local · memory 1 GiB peak of 1 GiB\noom: heap — re-run with --memory 4G/);
});
