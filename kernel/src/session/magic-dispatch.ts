/**
 * Finds the magic a cell starts with and runs it. Parsing of option syntax
 * lives in magics/; this module connects parsed magics to the kernel.
 */
import type { JupyterMessage } from "../protocol/message";
import type { Executor, ExecOutcome } from "./executor";
import { heading } from "./errors";

export interface MagicContext {
  executor: Executor;
  msg: JupyterMessage;
  kernel: unknown;
}

export interface MatchedMagic {
  run(ctx: MagicContext): Promise<ExecOutcome>;
}

const LINE_MAGICS = ["lsmagic"] as const;
const CELL_MAGICS: string[] = [];

function fail(ename: string, evalue: string): ExecOutcome {
  return { ok: false, error: { ename, evalue, traceback: [heading(ename, evalue)] } };
}

export class CellMagics {
  /** The code after a leading `%%magic` line, and where it starts, for completion/inspection. */
  bodyOf(code: string): { body: string; offset: number } {
    if (!code.startsWith("%%")) return { body: code, offset: 0 };
    const nl = code.indexOf("\n");
    if (nl < 0) return { body: "", offset: code.length };
    return { body: code.slice(nl + 1), offset: nl + 1 };
  }

  match(code: string): MatchedMagic | null {
    const trimmed = code.replace(/^\s*\n/, "");
    if (trimmed.startsWith("%%")) {
      const name = /^%%(\S*)/.exec(trimmed)![1];
      return {
        run: async () =>
          fail(
            "MagicError",
            `unknown cell magic %%${name}` + (CELL_MAGICS.length ? ` (known: ${CELL_MAGICS.map((m) => "%%" + m).join(", ")})` : ""),
          ),
      };
    }
    const line = /^\s*%(\w+)(.*)$/.exec(trimmed.trim());
    if (!line || trimmed.trim().includes("\n")) return null;
    const [, name] = line;
    if (name === "lsmagic") {
      return {
        run: async () => {
          process.stdout.write(
            `Line magics: ${LINE_MAGICS.map((m) => "%" + m).join(" ")}\nCell magics: ${CELL_MAGICS.map((m) => "%%" + m).join(" ") || "(none yet)"}\n`,
          );
          return { ok: true, hasValue: false };
        },
      };
    }
    return { run: async () => fail("MagicError", `unknown line magic %${name} (known: ${LINE_MAGICS.map((m) => "%" + m).join(", ")})`) };
  }
}
