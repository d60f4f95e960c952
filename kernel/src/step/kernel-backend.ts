/**
 * `--on kernel` as a StepBackend: the same step program, run in the kernel's
 * own process. The body gets its own scope and only the names it declares
 * come back (and are recorded), as on a worker; its inputs are the
 * session's objects themselves (the request's `liveInputs`), so a step can
 * use what can't be copied (connections, servers), and changes it makes to
 * them stay, as in a plain cell. Its outputs come back as they are.
 */
import { machineRefusal } from "../backends/local-backend";
import type { StepAsk, StepBackend, StepRequest, StepResult } from "../backends/step-backend";
import type { StepFailure } from "../backends/step-failure";
import { stepRequire } from "../worker/require";
import { runProgram } from "../worker/runner";

export class KernelBackend implements StepBackend {
  readonly target = "kernel";
  private stopRunning: (() => void) | null = null;

  constructor(
    private readonly cwd: string,
    private readonly totalMemory: () => number,
  ) {}

  check(ask: StepAsk): StepFailure | null {
    return machineRefusal(ask, this.maxMemory);
  }

  get maxMemory(): number {
    return this.totalMemory();
  }

  async run(req: StepRequest): Promise<StepResult> {
    const worker = { id: "kernel", pid: process.pid };
    const saved = new Map<string, string | undefined>();
    for (const [k, v] of Object.entries({ ...req.env, NBSCALE_STEP: req.step, NBSCALE_ATTEMPT: String(req.attempt) })) {
      saved.set(k, process.env[k]);
      process.env[k] = v;
    }
    let timer: NodeJS.Timeout | undefined;
    const stop = new Promise<"interrupted" | "timeout">((resolve) => {
      this.stopRunning = () => resolve("interrupted");
      if (req.timeoutMs !== undefined) timer = setTimeout(() => resolve("timeout"), req.timeoutMs);
    });
    try {
      const run = runProgram(
        req.program,
        { inputs: async () => (req.liveInputs ? await req.liveInputs() : {}) },
        { require: stepRequire(this.cwd), cwd: this.cwd, breakOnSigint: true },
      );
      const outcome = await Promise.race([run.then((v) => ({ v })), stop]);
      if (outcome === "interrupted" || outcome === "timeout") {
        run.catch(() => undefined);
        return { status: "died", death: outcome, signal: null, code: null, stderr: "", worker, peakRss: 0 };
      }
      return { status: "done", outputs: [], pieces: [], stubs: [], worker, peakRss: 0, values: new Map(Object.entries(outcome.v)) };
    } catch (e) {
      if (e instanceof Error && (e as NodeJS.ErrnoException).code === "ERR_SCRIPT_EXECUTION_INTERRUPTED") {
        return { status: "died", death: "interrupted", signal: null, code: null, stderr: "", worker, peakRss: 0 };
      }
      const err = e instanceof Error ? { name: e.name, message: e.message, stack: e.stack } : { name: "Uncaught", message: String(e) };
      return { status: "failed", error: err, worker, peakRss: 0 };
    } finally {
      this.stopRunning = null;
      if (timer) clearTimeout(timer);
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  }

  stop(): void {
    this.stopRunning?.();
  }
}
