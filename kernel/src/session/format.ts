import { inspect } from "node:util";
import type { MimeBundle } from "../client/display";

const MIMEBUNDLE = Symbol.for("nbscale.mimebundle");

/**
 * The execute_result bundle for a cell's last expression. Objects may offer
 * their own rich form via `[Symbol.for("nbscale.mimebundle")]()`.
 */
export function formatValue(value: unknown): MimeBundle {
  if (value !== null && typeof value === "object" && typeof (value as Record<symbol, unknown>)[MIMEBUNDLE] === "function") {
    try {
      const bundle = (value as Record<symbol, () => MimeBundle>)[MIMEBUNDLE]();
      return { "text/plain": plain(value), ...bundle };
    } catch {
      // fall back to the plain text form below
    }
  }
  return { "text/plain": plain(value) };
}

function plain(value: unknown): string {
  return inspect(value, { depth: 4, maxArrayLength: 100, maxStringLength: 10_000, breakLength: 100 });
}
