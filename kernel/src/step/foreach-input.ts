/**
 * The `--foreach EXPR` list: EXPR evaluated in the session (so it can be any
 * expression the notebook can write, not only a name), checked to be
 * iterable, and the TypeScript type of one element, so the body is
 * type-checked with `item` typed as it will be at run time.
 */
import type { Executor } from "../session/executor";
import type { CellError } from "../session/errors";
import { cellError } from "./failures";
import { declaredTypes } from "./package";

export type ForeachItems = { ok: true; items: unknown[] } | { ok: false; error: CellError };

/** What a value is, in a few words, for an error message. */
function describe(v: unknown): string {
  if (v === null) return "null";
  if (typeof v === "object") return `an object (${(v as object).constructor?.name ?? "Object"})`;
  if (typeof v === "function") return "a function";
  const shown = typeof v === "string" ? JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v) : String(v);
  return `a ${typeof v} (${shown})`;
}

export async function evaluateItems(executor: Executor, expr: string, name: string): Promise<ForeachItems> {
  const flag = `--foreach ${expr}`;
  const fix = "give --foreach an array or another iterable from the session, e.g. `const configs = [1, 2, 3];` in an earlier cell";
  // Parenthesized so `{…}` is an expression, not a block; never committed: evaluating declares nothing.
  const r = await executor.execute(`(${expr})`, 0, false);
  if (!r.ok) {
    const missing = /Cannot find name '([^']+)'/.exec(r.error.evalue);
    if (missing) {
      return {
        ok: false,
        error: cellError("ForeachInputError", `step \`${name}\` was not started: \`${flag}\`: \`${missing[1]}\` is not defined in the session; ${fix}`),
      };
    }
    return {
      ok: false,
      error: cellError(
        "ForeachInputError",
        `step \`${name}\` was not started: \`${flag}\` could not be evaluated: ${r.error.ename}: ${r.error.evalue}`,
        r.error.traceback,
      ),
    };
  }
  const v = r.hasValue ? r.value : undefined;
  if (v === undefined || v === null) {
    return { ok: false, error: cellError("ForeachInputError", `step \`${name}\` was not started: \`${flag}\` is ${String(v)}; ${fix}`) };
  }
  if (typeof (v as { [Symbol.iterator]?: unknown })[Symbol.iterator] !== "function") {
    return {
      ok: false,
      error: cellError("ForeachInputError", `step \`${name}\` was not started: \`${flag}\` is ${describe(v)}, not an array or iterable; ${fix}`),
    };
  }
  try {
    return { ok: true, items: Array.from(v as Iterable<unknown>) };
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return { ok: false, error: cellError("ForeachInputError", `step \`${name}\` was not started: iterating \`${flag}\` threw: ${why}`) };
  }
}

/**
 * The checker's type of one element of EXPR ("any" when it can't tell).
 * A generic helper infers it from `Iterable<T>` or `ArrayLike<T>`.
 */
export function elementType(executor: Executor, expr: string): string {
  // No leading `__`: the converter escapes such names (`___x`), and the probe would not be found.
  const probe = "nbscale$foreachItem";
  const src = `declare function nbscale$elem<T>(x: Iterable<T> | ArrayLike<T>): T;\nconst ${probe} = nbscale$elem(${expr});`;
  const checked = executor.check(src);
  if (checked.diagnostics.length > 0) return "any";
  const t = declaredTypes(checked.declOutput ?? "", [probe])[probe];
  // `unknown` means the checker saw `any` or nothing it could use: don't make the body unusable.
  return !t || t === "unknown" ? "any" : t;
}

/** Lines appended to the body for its type check, so `item` and `index` exist with their types. */
export function implicitDeclarations(itemType: string): string {
  // Ambient declarations: no "used before its declaration" error though they come after the body.
  return `\ndeclare const item: ${itemType};\ndeclare const index: number;`;
}
