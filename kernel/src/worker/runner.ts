/**
 * Runs one step program in this process. Shared by the worker (every
 * backend) and by `--on kernel`, so both have the same semantics: inputs are
 * fresh copies, only the names the step declares come back.
 */
import * as vm from "node:vm";
import type { StepProgram } from "./events";
import { withShippedModules } from "./shipped-modules";
import type { ClassResolver } from "../store/serialize";

/** What the program gets as `__nbscale`. */
export interface ProgramHost {
  /** Decodes the inputs once the shipped classes exist (to give instances their prototypes). */
  inputs(resolveClass: ClassResolver): Promise<Record<string, unknown>>;
}

export interface RunOptions {
  require: NodeJS.Require;
  /** The notebook folder, where shipped modules live (defaults to the process's). */
  cwd?: string;
  /** Let SIGINT stop synchronous code (in the kernel; workers are killed instead). */
  breakOnSigint?: boolean;
}

const SLOT = "__nbscale_step_run__";

export async function runProgram(program: StepProgram, host: ProgramHost, options: RunOptions): Promise<Record<string, unknown>> {
  const exports: Record<string, unknown> = {};
  const g = globalThis as Record<string, unknown>;
  const require = withShippedModules(options.require, options.cwd ?? process.cwd(), program.modules);
  g[SLOT] = { host, require, exports, module: { exports } };
  // Called inside the script (same line, so line numbers stay), so that
  // breakOnSigint covers the step's synchronous part too.
  const call = `(${program.source})(globalThis.${SLOT}.host, globalThis.${SLOT}.require, globalThis.${SLOT}.exports, globalThis.${SLOT}.module)`;
  let pending: Promise<Record<string, unknown>>;
  try {
    pending = vm.runInThisContext(call, { filename: program.filename, breakOnSigint: options.breakOnSigint ?? false });
  } finally {
    delete g[SLOT];
  }
  return await pending;
}
