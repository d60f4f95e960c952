/**
 * The job's half of a remote flow step: how `nbscale worker --task DATASTORE
 * TASK` runs a task.json that says `kind: "flow"` (see remote-task.ts). The
 * transport (started.json per attempt, output as event chunks, peak memory,
 * result.json) is the one remote worker's (worker/remote-main.ts); this only
 * runs the step the way a local flow worker does (flow/worker.ts), so the
 * step records its execution and its artifacts hash as they would locally.
 */
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { BlobStore } from "../store/blobs";
import { resolveDatastore } from "../store/location";
import type { RemoteTaskKind } from "../worker/remote-main";
import { isFlowTask } from "./remote-task";
import { runTask, type WorkerReply } from "./worker";

export const flowTaskKind: RemoteTaskKind = {
  accepts: isFlowTask,
  async run(raw, ctx) {
    if (!isFlowTask(raw)) throw new Error("not a flow task");
    const task = raw;
    Object.assign(process.env, { NBSCALE_FLOW_STEP: task.flow.step, NBSCALE_RUN: task.flow.run });
    const loc = resolveDatastore({ flag: ctx.datastore, env: process.env, cwd: ctx.cwd });
    const tmp = mkdtempSync(join(tmpdir(), "nbscale-flow-job-"));
    let reply: WorkerReply;
    try {
      const jsPath = join(tmp, "flow.js");
      writeFileSync(jsPath, await new BlobStore(ctx.backend).read(task.jsSha256, "the flow's compiled module"));
      // The flow's folder when this machine has it (Slurm on a shared filesystem), so its
      // relative imports and node_modules resolve; else the job's working directory (Batch).
      const flowPath = existsSync(dirname(task.flow.flowPath)) ? task.flow.flowPath : join(ctx.cwd, basename(task.flow.flowPath));
      reply = await runTask({ ...task.flow, flowPath, jsPath, datastore: loc.path });
    } catch (e) {
      const err = e instanceof Error ? e : new Error(String(e));
      process.stderr.write(`${err.stack ?? err.message}\n`);
      reply = { type: "failed", ename: err.name, message: err.message, stack: err.stack ?? "" };
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
    return {
      outcome:
        reply.type === "done"
          ? { status: "done", outputs: [], stubs: [] }
          : { status: "failed", error: { name: reply.ename, message: reply.message, stack: reply.stack } },
      extra: { flow: reply },
    };
  },
};
