/**
 * How much of one stream a step or cell keeps (NBSCALE_LOG_BYTES): the kernel's
 * record of an execution, and what a remote worker ships back through the
 * datastore, use the same limit.
 */
import { parseSize } from "../magics/units";

/** Per stream and execution; beyond it the record keeps a note instead (NBSCALE_LOG_BYTES). */
export const DEFAULT_LOG_BYTES = 256 << 20;

export function logLimit(env: NodeJS.ProcessEnv): number {
  const set = env.NBSCALE_LOG_BYTES?.trim();
  const n = set ? (/^\d+$/.test(set) ? Number(set) : parseSize(set)) : undefined;
  return n !== undefined && Number.isSafeInteger(n) && n > 0 ? n : DEFAULT_LOG_BYTES;
}
