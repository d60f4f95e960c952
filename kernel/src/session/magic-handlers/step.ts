/**
 * Wires `%%step` and `%workers` into the kernel: one StepRunner and one local
 * worker pool per kernel session, warmed at start.
 */
import type { CellMagics } from "../magic-dispatch";
import type { Executor } from "../executor";
import type { HistoryCell } from "../../step/analysis";
import { StepRunner } from "../../step/dispatch";
import { LocalPool } from "../../backends/local-pool";
import { workersHandler } from "./workers";
import { trackStep } from "../step-status";
import type { LazyStore } from "../../step/lazy";

export interface StepMagicsHost {
  executor: Executor;
  cells: HistoryCell[];
  cwd: string;
  packageDir: string;
  log(text: string): void;
  knownVersion?(name: string): { version: number | string; sha256: string } | undefined;
  lazyStore?: LazyStore;
}

export function registerStepMagics(magics: CellMagics, host: StepMagicsHost): { pool: LocalPool; runner: StepRunner } {
  const warm = Number(process.env.NBSCALE_WARM_WORKERS ?? "1");
  const pool = new LocalPool({
    cwd: host.cwd,
    packageDir: host.packageDir,
    log: host.log,
    warm: Number.isFinite(warm) && warm >= 0 ? warm : 1,
  });
  const runner = new StepRunner({
    executor: host.executor,
    cells: host.cells,
    cwd: host.cwd,
    pool: () => pool,
    log: host.log,
    knownVersion: host.knownVersion,
    lazyStore: host.lazyStore,
  });
  magics.onStep((step, ctx) => {
    const cellId = (ctx.msg.metadata as { cellId?: unknown } | undefined)?.cellId;
    const id = typeof cellId === "string" ? cellId : undefined;
    // --foreach shows its own status output, with item progress (step/foreach-progress.ts)
    if (step.options.foreach !== undefined) return runner.run(step, id);
    // a live status output in the cell (rendered by the JupyterLab extension)
    return trackStep(step, id, () => runner.run(step, id));
  });
  magics.onLine("workers", workersHandler(pool));
  // The kernel's own SIGINT handler stops in-kernel code; this one stops a step.
  process.on("SIGINT", () => runner.interrupt());
  pool.start().catch((e) => host.log(`[nbscale] worker pool did not start: ${(e as Error).message}\n`));
  return { pool, runner };
}
