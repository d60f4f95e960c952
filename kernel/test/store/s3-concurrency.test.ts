/**
 * The README's claim for S3 as for a directory: two kernels writing one store
 * at once lose nothing. Two processes record the same variable into one S3
 * prefix (moto's S3 server) at the same time; every version number is used
 * exactly once and every value reads back as written.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { rm, writeFile } from "node:fs/promises";
import { Datastore, fsck } from "../../src/store";
import { runNode, sleep, tmpStoreDir } from "./helpers";
import { startMoto } from "./moto";

const KERNEL = `
const fs = require("node:fs");
const [where, who, n, go] = process.argv.slice(1);
(async () => {
  while (!fs.existsSync(go)) await new Promise((r) => setTimeout(r, 2));
  const ds = await STORE.Datastore.open(where, { create: true });
  // Over one 8 MiB part: each kernel's first copy travels as a multipart upload.
  const shared = new Uint8Array(9 << 20).fill(5);
  const versions = [];
  for (let i = 0; i < Number(n); i++) {
    const r = await ds.recordExecution({
      notebook: "/nb-" + who + ".ipynb", cell: "c", code: "x = " + i, status: "ok", started: new Date(), target: "kernel",
      outputs: { x: { who, i }, shared },
    });
    versions.push(r.outputs.x.version);
  }
  console.log(JSON.stringify(versions));
})().catch((e) => { console.error(e); process.exit(1); });
`;

test("two kernels writing the same variable into one S3 store at once lose nothing", async (t) => {
  const moto = await startMoto("nbscale-two-kernels");
  const { dir, cleanup } = await tmpStoreDir();
  try {
    const where = `s3://nbscale-two-kernels/store-${process.pid}`;
    const n = 15;
    const go = `${dir}/go`;
    const kids = ["A", "B"].map((who) => runNode(KERNEL, [where, who, String(n), go], moto.env));
    await sleep(500); // both processes up and polling
    await writeFile(go, "");
    const results = await Promise.all(kids.map((k) => k.done));
    for (const r of results) assert.equal(r.code, 0, r.stderr);
    const [a, b] = results.map((r) => JSON.parse(r.stdout.trim().split("\n").pop() as string) as number[]);
    t.diagnostic(`versions A: ${a.join(",")}  B: ${b.join(",")}`);
    assert.deepEqual(
      [...a, ...b].sort((x, y) => x - y),
      Array.from({ length: 2 * n }, (_, i) => i + 1),
      "every version number used exactly once",
    );

    const backend = moto.backend(`store-${process.pid}`);
    const ds = await Datastore.openBackend(backend);
    assert.equal((await ds.history()).length, 2 * n);
    for (const [who, versions] of [
      ["A", a],
      ["B", b],
    ] as const) {
      for (let i = 0; i < n; i++) assert.deepEqual((await ds.restore(`x@${versions[i]}`)).value, { who, i });
    }
    assert.equal((await ds.versions("shared")).length, 2, "one version of the shared value per notebook");
    const check = await fsck(backend);
    assert.deepEqual(check.problems, []);
    assert.equal(check.consistent, true);
    assert.deepEqual(check.leftovers, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
    await cleanup();
    await moto.stop();
  }
});
