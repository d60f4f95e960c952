/**
 * Connects parsed magics (magics/) to the code that carries them out
 * (session/magic-handlers/). A cell is plain code, a `%%step` cell, or a cell
 * of line magics only; bad magic syntax fails before anything runs.
 */
import type { JupyterMessage } from "../protocol/message";
import type { Executor, ExecOutcome } from "./executor";
import { heading } from "./errors";
import { CELL_MAGICS, LINE_MAGICS, MagicError, classifyCell, type CellMagic, type LineMagic, type StepParseConfig } from "../magics";

export interface MagicContext {
  executor: Executor;
  msg: JupyterMessage;
  /** The kernel, for handlers that need its services (datastore, io, comms). */
  kernel: unknown;
}

export type StepHandler = (step: CellMagic, ctx: MagicContext) => Promise<ExecOutcome>;
export type LineHandler<M extends LineMagic = LineMagic> = (magic: M, ctx: MagicContext) => Promise<ExecOutcome>;

export interface MatchedMagic {
  run(ctx: MagicContext): Promise<ExecOutcome>;
}

export function magicFailure(ename: string, evalue: string, extra: string[] = []): ExecOutcome {
  return { ok: false, error: { ename, evalue, traceback: [heading(ename, evalue), ...extra] } };
}

export class CellMagics {
  private stepHandler: StepHandler | null = null;
  private readonly lineHandlers = new Map<string, LineHandler>();

  constructor(private readonly config: () => StepParseConfig = () => ({})) {
    this.onLine("lsmagic", async () => {
      const line = LINE_MAGICS.map((m) => `%${m}${this.lineHandlers.has(m) ? "" : " (not in this build)"}`);
      const cell = CELL_MAGICS.map((m) => `%%${m}${this.stepHandler ? "" : " (not in this build)"}`);
      process.stdout.write(`Available line magics:\n  ${line.join("  ")}\n\nAvailable cell magics:\n  ${cell.join("  ")}\n`);
      return { ok: true, hasValue: false };
    });
  }

  onStep(handler: StepHandler): void {
    this.stepHandler = handler;
  }

  onLine<K extends LineMagic["magic"]>(name: K, handler: LineHandler<Extract<LineMagic, { magic: K }>>): void {
    this.lineHandlers.set(name, handler as LineHandler);
  }

  /** The code after a leading `%%magic` line, and where it starts, for completion/inspection. */
  bodyOf(code: string): { body: string; offset: number } {
    if (!/^\s*%%/.test(code)) return { body: code, offset: 0 };
    const at = code.indexOf("%%");
    const nl = code.indexOf("\n", at);
    if (nl < 0) return { body: "", offset: code.length };
    return { body: code.slice(nl + 1), offset: nl + 1 };
  }

  /** Null for plain TypeScript; otherwise what runs the cell (possibly just its error). */
  match(code: string): MatchedMagic | null {
    let cell;
    try {
      cell = classifyCell(code, this.config());
    } catch (e) {
      if (e instanceof MagicError) {
        const message = e.message;
        return { run: async () => magicFailure("MagicError", message) };
      }
      throw e;
    }
    if (cell.kind === "code") return null;
    if (cell.kind === "step") {
      const step = cell.step;
      return {
        run: async (ctx) => {
          for (const w of step.warnings) process.stderr.write(`warning: ${w}\n`);
          if (!this.stepHandler) return magicFailure("MagicError", "%%step is not available in this build of nbscale");
          return this.stepHandler(step, ctx);
        },
      };
    }
    const magics = cell.magics;
    return {
      run: async (ctx) => {
        for (const { magic } of magics) {
          const handler = this.lineHandlers.get(magic.magic);
          if (!handler) return magicFailure("MagicError", `%${magic.magic} is not available in this build of nbscale`);
          const r = await handler(magic, ctx);
          if (!r.ok) return r;
          if (magics.length === 1) return r;
        }
        return { ok: true, hasValue: false };
      },
    };
  }
}
