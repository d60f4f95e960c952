/**
 * `fsck --clean` against a writer in the middle of recording, at every point
 * between two of the writer's storage operations (and, the other way round,
 * the writer committing at every point between two of fsck's), on a
 * directory and on S3 (moto). Each interleaving is fixed by its step numbers
 * (see stepper.ts), so every one of them runs on every run.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import {
  Datastore,
  ExecutionAbandonedError,
  ExecutionRecord,
  FsBackend,
  fsck,
  newExecutionId,
  thisWriter,
  type StorageBackend,
  type WriterIdentity,
} from "../../src/store";
import type { FsckResult } from "../../src/store/fsck";
import { SteppedBackend } from "./stepper";
import { AbortMultipartUploadCommand, CreateMultipartUploadCommand, S3Client, UploadPartCommand } from "@aws-sdk/client-s3";
import { REMOTE_WRITER, sleep, tmpStoreDir } from "./helpers";
import { Moto, startMoto } from "./moto";

const NB = "/work/nb.ipynb";

interface Place {
  name: string;
  /** Which of the writer's points the (writer point × fsck point) test stops it at (S3 is ~20x slower: two of them there). */
  crossPoints: "every-uncommitted" | "first-and-commit";
  fresh(): Promise<{ backend: StorageBackend; cleanup: () => Promise<void> }>;
}

const DIR: Place = {
  name: "directory",
  crossPoints: "every-uncommitted",
  async fresh() {
    // Hundreds of stores: on tmpfs where there is one, as fsyncs cost nothing there and the logic is the same.
    const { dir, cleanup } = await tmpStoreDir("nbscale-race-", existsSync("/dev/shm") ? "/dev/shm" : undefined);
    return { backend: new FsBackend(dir), cleanup };
  },
};

let moto: Moto | null = null;
let prefixes = 0;
const S3: Place = {
  name: "S3",
  crossPoints: "first-and-commit",
  async fresh() {
    if (!moto) throw new Error("moto is not running");
    return { backend: moto.backend(`race-${process.pid}-${++prefixes}`), cleanup: async () => undefined };
  },
};

before(async () => {
  moto = await startMoto();
});
after(async () => {
  await moto?.stop();
});

/** The cell being recorded: a small value (its record is written alongside its blob), a reused one, a 1.6 MB one, a log blob. */
function values() {
  return {
    small: { k: "v2" },
    same: [1, 2, 3],
    mid: Float64Array.from({ length: 200_000 }, (_, i) => i / 4),
  };
}

async function seed(backend: StorageBackend): Promise<ExecutionRecord> {
  const ds = await Datastore.openBackend(backend, { create: true });
  return ds.recordExecution({
    notebook: NB,
    cell: "c0",
    code: "seed",
    status: "ok",
    started: new Date(),
    target: "kernel",
    outputs: { small: { k: "v1" }, same: [1, 2, 3] },
  });
}

function cell(first: ExecutionRecord, id: string) {
  return {
    id,
    notebook: NB,
    cell: "c1",
    code: "small = ...; mid = ...",
    status: "ok" as const,
    started: new Date(),
    target: "kernel",
    inputs: { small: { version: first.outputs.small.version, sha256: first.outputs.small.sha256 } },
    outputs: values(),
    stdout: "line\n".repeat(20_000),
  };
}

/** The store is consistent and holds every value the writer committed, as the versions it was told. */
async function assertIntact(backend: StorageBackend, first: ExecutionRecord, rec: ExecutionRecord, where: string): Promise<void> {
  const check = await fsck(backend);
  assert.deepEqual(check.problems, [], where);
  assert.equal(check.consistent, true, where);
  const ds = await Datastore.openBackend(backend);
  assert.deepEqual(
    (await ds.history()).map((r) => r.id),
    [rec.id, first.id],
    `${where}: both executions visible, nothing else`,
  );
  const want = values();
  assert.deepEqual(Object.keys(rec.outputs).sort(), ["mid", "same", "small"], where);
  for (const [name, ref] of Object.entries(rec.outputs)) {
    const got = await ds.restore(`${name}@${ref.version}`);
    assert.equal(got.record.sha256, ref.sha256, `${where}: ${name}@${ref.version}`);
    assert.deepEqual(got.value, want[name as keyof typeof want], `${where}: ${name}@${ref.version}`);
    assert.equal((await ds.resolve(name)).version, ref.version, `${where}: ${name}'s latest version is the committed one`);
  }
  assert.equal(rec.outputs.same.version, first.outputs.same.version, `${where}: an unchanged value reuses its version`);
  assert.equal(await ds.executions.readLog(rec.stdout, "stdout"), "line\n".repeat(20_000), where);
  // Whatever fsck fenced off is removable now, and then nothing is left over.
  await fsck(backend, { clean: true, graceMs: 0, verifyBlobs: false });
  const tidy = await fsck(backend, { verifyBlobs: false });
  assert.deepEqual(tidy.leftovers, [], `${where}: leftovers after --clean`);
  assert.equal(tidy.consistent, true, where);
}

interface Outcome {
  rec: ExecutionRecord;
  first: ExecutionRecord;
  id: string;
  cleaned: FsckResult | null;
  points: number;
}

/**
 * Records the cell through a stepped backend and runs `fsck --clean` with no
 * grace when the writer stands before its operation number `at` (or before
 * every one, for "every"). `points`: operations the writer took.
 */
async function writerStepped(backend: StorageBackend, writer: WriterIdentity, at: number | "every"): Promise<Outcome> {
  const first = await seed(backend);
  const stepped = new SteppedBackend(backend);
  const ds = await Datastore.openBackend(stepped, { writer });
  stepped.hold();
  const id = newExecutionId();
  const writing = ds.recordExecution(cell(first, id));
  let cleaned: FsckResult | null = null;
  let point = 0;
  while (await stepped.paused(writing)) {
    if (at === "every" || point === at) cleaned = await fsck(backend, { clean: true, graceMs: 0 });
    stepped.step();
    point++;
  }
  return { rec: await writing, first, id, cleaned, points: point };
}

/** Every uncommitted version fsck saw at `r`, as [writer, removed]. */
const seenVersions = (r: FsckResult | null) => (r?.leftovers ?? []).filter((l) => l.kind === "uncommitted-version").map((l) => [l.writer, l.removed]);

for (const place of [DIR, S3]) {
  test(`${place.name}: fsck --clean with no grace, at every point of a live writer on this host, removes nothing it commits`, async (t) => {
    let points = Infinity;
    let withRecords = 0;
    for (let at = 0; at < points; at++) {
      const { backend, cleanup } = await place.fresh();
      try {
        const o = await writerStepped(backend, thisWriter(), at);
        points = o.points;
        const seen = seenVersions(o.cleaned);
        for (const s of seen) assert.deepEqual(s, ["alive", false], `point ${at}: a live writer's record is kept`);
        if (seen.length > 0) withRecords++;
        assert.equal(o.rec.id, o.id, `point ${at}: the execution committed under its own id`);
        await assertIntact(backend, o.first, o.rec, `point ${at}`);
      } finally {
        await cleanup();
      }
    }
    t.diagnostic(`${points} interleavings, ${withRecords} with uncommitted version records present`);
    assert.ok(points >= 10, `the writer took ${points} steps`);
    assert.ok(withRecords >= 3, "fsck ran while version records were uncommitted");
  });

  test(`${place.name}: fsck --clean with no grace, at every point of a writer on another host, fences it and the writer records again, losing nothing`, async (t) => {
    let points = Infinity;
    let fenced = 0;
    for (let at = 0; at < points; at++) {
      const { backend, cleanup } = await place.fresh();
      try {
        const o = await writerStepped(backend, REMOTE_WRITER, at);
        points = o.points;
        const seen = seenVersions(o.cleaned);
        // Unknown liveness and no grace: fenced, then removed.
        for (const s of seen) assert.deepEqual(s, ["unknown", true], `point ${at}`);
        if (seen.length > 0) {
          fenced++;
          assert.notEqual(o.rec.id, o.id, `point ${at}: recorded again under a new id once fenced`);
          assert.equal(o.cleaned?.checked.abandoned, 1, `point ${at}`);
        }
        await assertIntact(backend, o.first, o.rec, `point ${at}`);
      } finally {
        await cleanup();
      }
    }
    t.diagnostic(`${points} interleavings, ${fenced} of them fenced the writer`);
    assert.ok(points >= 10, `the writer took ${points} steps`);
    assert.ok(fenced >= 3, "fsck ran while version records were uncommitted");
  });

  test(`${place.name}: fsck --clean before every single step: a live writer here commits; one on another host gives up loudly, leaving nothing half-visible`, async () => {
    {
      const { backend, cleanup } = await place.fresh();
      try {
        const o = await writerStepped(backend, thisWriter(), "every");
        assert.equal(o.rec.id, o.id);
        await assertIntact(backend, o.first, o.rec, "every point, live writer");
      } finally {
        await cleanup();
      }
    }
    // No grace for a writer whose liveness fsck can't see, at every step: each
    // fresh id is fenced before it commits. Consistency holds; progress needs a
    // grace longer than a recording takes (the default is an hour).
    const { backend, cleanup } = await place.fresh();
    try {
      const first = await seed(backend);
      const stepped = new SteppedBackend(backend);
      const ds = await Datastore.openBackend(stepped, { writer: REMOTE_WRITER });
      stepped.hold();
      const writing = ds.recordExecution(cell(first, newExecutionId()));
      writing.catch(() => undefined);
      let fences = 0;
      while (await stepped.paused(writing)) {
        fences += (await fsck(backend, { clean: true, graceMs: 0, verifyBlobs: false })).checked.abandoned > 0 ? 1 : 0;
        stepped.step();
      }
      await assert.rejects(writing, ExecutionAbandonedError);
      assert.ok(fences >= 5, `${fences} fences`);
      const check = await fsck(backend);
      assert.deepEqual(check.problems, []);
      const fresh = await Datastore.openBackend(backend);
      assert.deepEqual(
        (await fresh.history()).map((r) => r.id),
        [first.id],
        "nothing of the abandoned recording is visible",
      );
      assert.deepEqual((await fresh.versions("mid")).length, 0);
      assert.equal((await fresh.resolve("small")).version, first.outputs.small.version);
      await fsck(backend, { clean: true, graceMs: 0, verifyBlobs: false });
      assert.deepEqual((await fsck(backend, { verifyBlobs: false })).leftovers, []);
    } finally {
      await cleanup();
    }
  });

  test(`${place.name}: a writer on another host commits at every point of fsck --clean, stopped at every point of its own`, async (t) => {
    // The writer's steps, from a run with no fsck: stopping it where it has
    // written no version record yet leaves fsck nothing of it to fence.
    let steps: Array<{ op: string; key: string }>;
    {
      const { backend, cleanup } = await place.fresh();
      try {
        const first = await seed(backend);
        const stepped = new SteppedBackend(backend);
        const ds = await Datastore.openBackend(stepped, { writer: REMOTE_WRITER });
        stepped.hold();
        const writing = ds.recordExecution(cell(first, newExecutionId()));
        while (await stepped.paused(writing)) stepped.step();
        await writing;
        steps = stepped.steps;
      } finally {
        await cleanup();
      }
    }
    const firstRecord = steps.findIndex((s) => s.op === "createExclusive" && s.key.startsWith("vars/"));
    const commit = steps.findIndex((s) => s.op === "createExclusive" && s.key.startsWith("executions/"));
    assert.ok(firstRecord >= 0 && commit > firstRecord, JSON.stringify(steps));
    // Point w: stopped before its step w, so w = firstRecord + 1 is the first with a record written.
    const writerPoints =
      place.crossPoints === "first-and-commit" ? [firstRecord + 1, commit] : Array.from({ length: commit - firstRecord }, (_, i) => firstRecord + 1 + i);
    let runs = 0;
    const committedDuring: string[] = [];
    for (const w of writerPoints) {
      let fsckPoints = Infinity;
      for (let f = 0; f < fsckPoints; f++) {
        const { backend, cleanup } = await place.fresh();
        try {
          const first = await seed(backend);
          const writerSide = new SteppedBackend(backend);
          const ds = await Datastore.openBackend(writerSide, { writer: REMOTE_WRITER });
          writerSide.hold();
          const writing = ds.recordExecution(cell(first, newExecutionId()));
          for (let i = 0; i < w; i++) {
            assert.ok(await writerSide.paused(writing), `the writer finished before its point ${w}`);
            writerSide.step();
          }
          assert.ok(await writerSide.paused(writing));
          const sameStep = (x: { op: string; key: string }) => `${x.op} ${x.key.replace(/^executions\/.*$/, "executions/ID")}`;
          assert.equal(sameStep(writerSide.next()), sameStep(steps[w]), "the writer takes the same steps on every run");
          const fsckSide = new SteppedBackend(backend).hold();
          const checking = fsck(fsckSide, { clean: true, graceMs: 0 });
          let point = 0;
          let rec: ExecutionRecord | null = null;
          while (await fsckSide.paused(checking)) {
            if (point === f) {
              writerSide.release();
              rec = await writing;
              committedDuring.push(fsckSide.next().op);
            }
            fsckSide.step();
            point++;
          }
          fsckPoints = point;
          const r = await checking;
          if (!rec) {
            writerSide.release();
            rec = await writing;
          }
          assert.deepEqual(r.problems, [], `writer point ${w}, fsck point ${f}: what the concurrent fsck saw`);
          await assertIntact(backend, first, rec, `writer point ${w}, fsck point ${f}`);
          runs++;
        } finally {
          await cleanup();
        }
      }
    }
    t.diagnostic(`${runs} interleavings (writer points ${writerPoints.join(",")} × every fsck point)`);
    assert.ok(runs >= writerPoints.length * 10, `${runs} interleavings`);
    assert.ok(
      committedDuring.includes("createExclusive") && committedDuring.includes("remove"),
      "the writer committed just before fsck fenced and just before it removed",
    );
  });
}

test("S3: an upload in progress ages from its last part, not from its start (each part is its heartbeat)", async () => {
  if (!moto) throw new Error("moto is not running");
  const prefix = `race-${process.pid}-uploads`;
  const backend = moto.backend(prefix);
  const client = new S3Client({
    endpoint: moto.url,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: "testing", secretAccessKey: "testing" },
  });
  try {
    const Key = `${prefix}/blobs/sha256/ab/upload-in-progress`;
    const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: "nbscale-races", Key }));
    const [started] = await backend.listTemp();
    assert.equal(started.size, 0);
    await sleep(1100); // past S3's one-second timestamps
    const partAt = Date.now();
    await client.send(new UploadPartCommand({ Bucket: "nbscale-races", Key, UploadId, PartNumber: 1, Body: new Uint8Array(5 << 20).fill(7) }));
    const temps = await backend.listTemp();
    assert.equal(temps.length, 1);
    assert.equal(temps[0].size, 5 << 20, "the bytes uploaded so far");
    assert.ok(temps[0].mtimeMs > started.mtimeMs, "a new part moves its activity on");
    assert.ok(temps[0].mtimeMs >= Math.floor(partAt / 1000) * 1000 - 1000, `last activity ${temps[0].mtimeMs} vs part at ${partAt}`);
    await client.send(new AbortMultipartUploadCommand({ Bucket: "nbscale-races", Key, UploadId }));
    assert.deepEqual(await backend.listTemp(), []);
  } finally {
    client.destroy();
  }
});
