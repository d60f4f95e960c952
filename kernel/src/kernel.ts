/**
 * The nbscale kernel: answers Jupyter requests, runs cells on the executor,
 * and publishes their output. Protocol plumbing lives in protocol/, TypeScript
 * execution in session/, cell magics in magics/.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import { readConnectionFile } from "./protocol/connection";
import { KernelIo, InputInterrupted } from "./protocol/kernel-io";
import { PROTOCOL_VERSION, type JsonObject, type JupyterMessage, type MessageHeader } from "./protocol/message";
import type { RequestChannel } from "./protocol/io-messages";
import { Executor, type ExecOutcome } from "./session/executor";
import { CellOutputLimit, cellOutputLimit } from "./session/output-capture";
import { captureOutput } from "./worker/process-output";
import { formatMB } from "./magics/units";
import { newExecutionId } from "./store";
import { STEP_STATUS_MIME } from "./session/step-status";
import { CommManager } from "./session/comms";
import { InputHistory } from "./session/input-history";
import { formatValue } from "./session/format";
import { heading, type CellError } from "./session/errors";
import { display, installDisplaySink, newDisplay } from "./client/display";
import { PACKAGE_DIR, VERSION } from "./version";
import { typescriptVersion } from "./step/typescript";
import { CellMagics } from "./session/magic-dispatch";
import { registerStepMagics } from "./session/magic-handlers/step";
import type { LocalPool } from "./backends/local-pool";
import type { HistoryCell } from "./step/analysis";
import { Recorder } from "./session/recording";
import { register as registerHistory } from "./session/magic-handlers/history";
import { register as registerRestore } from "./session/magic-handlers/restore";
import { register as registerExport } from "./session/magic-handlers/export";
import { registerHistoryComm } from "./session/comm-handlers/history";
import { register as registerExportComm } from "./session/comm-handlers/export";
import { register as registerNotebookComm } from "./session/comm-handlers/notebook";

const PRELUDE = "declare function prompt(message?: string, defaultValue?: string): string | null;\n";

/** `--on` when a `%%step` line doesn't say: NBSCALE_DEFAULT_TARGET, else local workers. */
function defaultTarget(): "kernel" | "local" | "batch" | "slurm" {
  const t = process.env.NBSCALE_DEFAULT_TARGET;
  return t === "kernel" || t === "batch" || t === "slurm" ? t : "local";
}

export interface KernelOptions {
  connectionFile: string;
  cwd: string;
}

interface QueuedRequest {
  channel: RequestChannel;
  msg: JupyterMessage;
  /** When the io thread received it (Date.now(), shared by both threads). */
  receivedAt: number;
  aborted?: boolean;
}

export function kernelInfo(): JsonObject {
  return {
    status: "ok",
    protocol_version: PROTOCOL_VERSION,
    implementation: "nbscale",
    implementation_version: VERSION,
    language_info: {
      name: "typescript",
      version: typescriptVersion(),
      mimetype: "text/typescript",
      file_extension: ".ts",
      codemirror_mode: { name: "javascript", typescript: true },
      pygments_lexer: "typescript",
    },
    banner: `nbscale ${VERSION} — TypeScript ${typescriptVersion()} on Node.js ${process.version}`,
    help_links: [{ text: "nbscale", url: "https://github.com/nbscale/nbscale" }],
    debugger: false,
    supported_features: [],
  };
}

export class Kernel {
  private readonly io: KernelIo;
  private readonly executor: Executor;
  private readonly comms: CommManager;
  private readonly history = new InputHistory();
  private readonly magics: CellMagics;
  private readonly recorder: Recorder;
  /** Cells that ran successfully, for step analysis (steps append their bodies). */
  private readonly cells: HistoryCell[] = [];
  private readonly queue: QueuedRequest[] = [];
  private processing = false;
  private executionCount = 0;
  /** Parent of output written now: the running cell, or the last one for late output. */
  private parent: JupyterMessage | null = null;
  /** The execute_request whose cell started the async work now running (timers, promises). */
  private readonly origin = new AsyncLocalStorage<JupyterMessage>();
  private readonly pool: LocalPool | null = null;
  private kernelLog: (text: string) => void = (t) => void process.stderr.write(t);
  private readonly outputLimit: CellOutputLimit;
  /** Stream output that bypasses the cell's output limit (the limit's own note). */
  private readonly streamUnlimited: KernelIo["stream"];

  constructor(options: KernelOptions) {
    const info = readConnectionFile(options.connectionFile);
    this.io = new KernelIo(info, randomUUID(), kernelInfo());
    const tslabCompat = { display, newDisplay, versions: { tslab: "1.0.22", typescript: typescriptVersion(), node: process.version } };
    this.executor = new Executor({
      cwd: options.cwd,
      packageDir: PACKAGE_DIR,
      prelude: PRELUDE,
      preludeValues: {
        prompt: (message?: string, defaultValue?: string) => this.promptSync(message ?? "", defaultValue),
      },
      builtinModules: {
        nbscale: () => require("./client/index"),
        tslab: () => tslabCompat,
      },
    });
    this.comms = new CommManager({
      publish: (type, content) => this.io.publish(type, content, this.parent?.header ?? {}),
    });
    this.comms.registerTarget("nbscale", (comm) => {
      comm.onMessage = (data) => {
        if (data.request === "kernel_info") comm.send({ reply: "kernel_info", version: VERSION, node: process.version });
        else comm.send({ error: `unknown request ${JSON.stringify(data.request)}` });
      };
    });
    this.magics = new CellMagics(() => ({ defaultTarget: defaultTarget() }));
    // The limit sits under the recorder's tap: the cell shows a bounded part, the record gets all of it.
    this.outputLimit = new CellOutputLimit(cellOutputLimit(process.env, (t) => this.kernelLog(t)));
    this.streamUnlimited = this.io.stream.bind(this.io);
    this.io.stream = (parent, name, text) => {
      const shown = this.outputLimit.admit(parent.msg_id, text);
      if (shown) this.streamUnlimited(parent, name, shown);
    };
    const publish = this.io.publish.bind(this.io);
    this.io.publish = (msgType, content, parent, metadata) => {
      if (msgType === "display_data" && !isStepStatus(content) && !this.outputLimit.admitWhole(parent.msg_id, bundleBytes(content))) return;
      publish(msgType, content, parent, metadata);
    };
    this.recorder = new Recorder({
      cwd: options.cwd,
      env: process.env,
      executor: this.executor,
      warn: (parent, text) => this.streamUnlimited(parent, "stderr", text),
    });
    this.recorder.observe(this.io);
    registerHistory(this.magics, { recorder: this.recorder });
    registerRestore(this.magics, { recorder: this.recorder, executor: this.executor });
    registerExport(this.magics, { recorder: this.recorder });
    registerHistoryComm(this.comms, { recorder: this.recorder });
    registerExportComm(this.comms, { recorder: this.recorder });
    registerNotebookComm(this.comms, { recorder: this.recorder });
    this.pool = registerStepMagics(this.magics, {
      executor: this.executor,
      cells: this.cells,
      cwd: options.cwd,
      packageDir: PACKAGE_DIR,
      log: (t) => this.kernelLog(t),
      knownVersion: (name) => this.recorder.knownVersion(name),
      lazyStore: { location: this.recorder.location, lineage: () => this.recorder.lineage(), recorded: this.recorder.enabled },
    }).pool;
  }

  async start(): Promise<void> {
    const captured = captureOutput((name, text) => {
      if (this.parent) this.io.stream(this.parent.header, name, text);
      else this.kernelLog(text);
    });
    this.kernelLog = captured.kernelLog;
    installDisplaySink({
      display: (data, metadata, displayId, update) => {
        const content: JsonObject = { data, metadata, transient: displayId ? { display_id: displayId } : {} };
        this.io.publish(update ? "update_display_data" : "display_data", content, this.parent?.header ?? {});
      },
      clear: (wait) => this.io.publish("clear_output", { wait }, this.parent?.header ?? {}),
    });
    process.on("SIGINT", () => {
      this.executor.interrupt();
    });
    process.on("unhandledRejection", (reason) => this.reportStray("Unhandled promise rejection", reason));
    process.on("uncaughtException", (err) => this.reportStray("Uncaught exception", err));
    this.exitWithParent();
    await this.io.start((channel, msg, receivedAt) => this.enqueue(channel, msg, receivedAt));
    // The kernel answers first; the compiler loads while the user types, so the first cell is quick too.
    setTimeout(() => {
      if (!this.processing) this.executor.warmUp();
    }, 0);
  }

  /**
   * As ipykernel's parent poller: when the Jupyter server that started this
   * kernel dies without shutting it down (killed, crashed), the kernel exits
   * with its workers instead of lingering on, holding the dead server's
   * output pipes and the workers' memory.
   */
  private exitWithParent(): void {
    const parent = Number(process.env.JPY_PARENT_PID);
    if (!(parent > 1) || process.ppid !== parent) return;
    const poll = setInterval(() => {
      if (process.ppid === parent) return;
      clearInterval(poll);
      this.kernelLog(`[nbscale] the process that started this kernel (pid ${parent}) is gone; the kernel exits\n`);
      void this.exit(0);
    }, 1000);
    poll.unref();
  }

  /**
   * An unhandled rejection or uncaught exception is shown in the cell whose
   * code started the failing work — a timer or promise of cell 1 that fails
   * while cell 2 runs, or after every cell finished, reports in cell 1 — and
   * in the running cell when its origin is unknown.
   */
  private reportStray(what: string, err: unknown): void {
    const text = err instanceof Error ? (err.stack ?? err.message) : String(err);
    const parent = this.origin.getStore() ?? this.parent;
    if (parent) this.io.stream(parent.header, "stderr", `${what} (the kernel keeps running): ${text}\n`);
    else this.kernelLog(`[nbscale] ${what}: ${text}\n`);
  }

  private promptSync(message: string, defaultValue?: string): string | null {
    const parent = this.parent;
    if (!parent || (parent.content as { allow_stdin?: unknown }).allow_stdin === false) {
      throw Object.assign(new Error("this frontend does not support input requests (allow_stdin is false)"), {
        name: "StdinNotImplementedError",
      });
    }
    const value = this.io.inputSync(message, false, parent);
    return value === "" && defaultValue !== undefined ? defaultValue : value;
  }

  private enqueue(channel: RequestChannel, msg: JupyterMessage, receivedAt: number): void {
    this.queue.push({ channel, msg, receivedAt });
    if (!this.processing) void this.drain();
  }

  private async drain(): Promise<void> {
    this.processing = true;
    try {
      while (this.queue.length > 0) {
        const req = this.queue.shift()!;
        try {
          await this.handle(req);
        } catch (e) {
          this.kernelLog(`[nbscale] error handling ${req.msg.header.msg_type}: ${(e as Error).stack ?? e}\n`);
        }
      }
    } finally {
      this.processing = false;
    }
  }

  private async handle(req: QueuedRequest): Promise<void> {
    const { channel, msg } = req;
    const type = msg.header.msg_type;
    this.io.status("busy", msg.header);
    try {
      if (req.aborted) {
        this.io.reply(channel, msg, type.replace(/_request$/, "_reply"), { status: "aborted" }, { status: "aborted" });
        return;
      }
      switch (type) {
        case "kernel_info_request":
          return this.io.reply(channel, msg, "kernel_info_reply", kernelInfo());
        case "execute_request":
          return await this.execute(channel, msg);
        case "complete_request":
          return this.complete(channel, msg);
        case "inspect_request":
          return this.inspect(channel, msg);
        case "is_complete_request":
          return this.isComplete(channel, msg);
        case "history_request":
          return this.historyRequest(channel, msg);
        case "comm_info_request": {
          const target = (msg.content as { target_name?: string }).target_name;
          return this.io.reply(channel, msg, "comm_info_reply", { status: "ok", comms: this.comms.info(target) });
        }
        case "comm_open":
          this.parent = msg;
          return await this.comms.handleOpen(msg.content);
        case "comm_msg":
          this.parent = msg;
          return await this.comms.handleMessage(msg.content, msg.buffers);
        case "comm_close":
          return this.comms.handleClose(msg.content);
        case "shutdown_request":
          return await this.shutdown(channel, msg);
        default:
          this.kernelLog(`[nbscale] ignoring unsupported request ${type}\n`);
          if (type.endsWith("_request")) {
            this.io.reply(channel, msg, type.replace(/_request$/, "_reply"), {
              status: "error",
              ename: "NotImplemented",
              evalue: `${type} is not supported by nbscale`,
              traceback: [],
            });
          }
      }
    } finally {
      this.io.status("idle", msg.header);
    }
  }

  private async execute(channel: RequestChannel, msg: JupyterMessage): Promise<void> {
    const c = msg.content as {
      code?: string;
      silent?: boolean;
      store_history?: boolean;
      user_expressions?: Record<string, string>;
      stop_on_error?: boolean;
    };
    const code = typeof c.code === "string" ? c.code : "";
    const silent = Boolean(c.silent);
    const storeHistory = c.store_history !== false && !silent;
    if (storeHistory) this.executionCount++;
    const count = this.executionCount;
    if (!silent) this.io.publish("execute_input", { code, execution_count: count }, msg.header);
    if (storeHistory) this.history.add(count, code);
    this.parent = msg;
    const started = new Date().toISOString();
    const executionId = newExecutionId(new Date(started));

    // Timers and promises the cell starts carry its request, after it has finished too (reportStray).
    const outcome = await this.origin.run(msg, () => this.runCell(code, msg));
    this.noteHiddenOutput(msg, silent ? null : executionId);
    // Snapshots the cell's values now; the write finishes before the kernel goes idle.
    const recorded = this.recorder.record({
      id: executionId,
      msg,
      code,
      executionCount: storeHistory ? count : null,
      started: new Date(started),
      outcome,
      silent,
    });
    const payload: JsonObject[] = [];
    if (outcome.ok && outcome.page) payload.push({ source: "page", data: { "text/plain": outcome.page }, start: 0 });
    if (outcome.ok && outcome.hasValue && !silent) {
      this.io.publish("execute_result", { execution_count: count, data: formatValue(outcome.value), metadata: {} }, msg.header);
    }
    const meta: JsonObject = { started, dependencies_met: true, engine: this.io.session };
    if (!outcome.ok) {
      const err = outcome.error;
      if (!silent) this.io.publish("error", { ...err }, msg.header);
      const failedAt = Date.now();
      if (!recorded.large) await recorded;
      this.io.reply(channel, msg, "execute_reply", { status: "error", execution_count: count, ...err }, { ...meta, status: "error" });
      await recorded;
      if (c.stop_on_error !== false) await this.abortQueuedExecutions(failedAt);
      return;
    }
    const userExpressions: JsonObject = {};
    for (const [name, expr] of Object.entries(c.user_expressions ?? {})) {
      userExpressions[name] = await this.evaluateExpression(expr);
    }
    // A small record (the usual cell) is committed before the reply, so reply and idle arrive together;
    // a large one replies first and shows its live line while the kernel stays busy writing.
    if (!recorded.large) await recorded;
    this.io.reply(
      channel,
      msg,
      "execute_reply",
      { status: "ok", execution_count: count, payload, user_expressions: userExpressions },
      { ...meta, status: "ok" },
    );
    await recorded;
  }

  /** The end of a cell whose output went over its limit says how much was left out and where it is. */
  private noteHiddenOutput(msg: JupyterMessage, executionId: string | null): void {
    const hidden = this.outputLimit.hidden(msg.header.msg_id);
    if (hidden === 0) return;
    const where = !this.recorder.enabled
      ? "recording is off (NBSCALE_RECORD=0), so it was not kept"
      : executionId
        ? `full log: \`nbscale logs ${executionId}\``
        : "silent executions are not recorded, so it was not kept";
    this.streamUnlimited(msg.header, "stderr", `nbscale: output truncated: ${formatMB(hidden)} more; ${where}\n`);
  }

  /**
   * After a failure with stop_on_error, execute requests that were already
   * waiting when the cell failed are answered "aborted", never run. Requests
   * sent after the client saw the error run normally.
   */
  private async abortQueuedExecutions(failedAt: number): Promise<void> {
    // Let messages that arrived while the cell ran reach the queue first.
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setTimeout(r, 5));
    for (const q of this.queue) {
      if (q.msg.header.msg_type === "execute_request" && q.receivedAt <= failedAt) q.aborted = true;
    }
  }

  private async runCell(code: string, msg: JupyterMessage): Promise<(ExecOutcome & { page?: string }) | { ok: false; error: CellError }> {
    const pager = /^\s*([A-Za-z_$][\w$.]*)\s*\?\s*$/.exec(code);
    if (pager) {
      const expr = pager[1];
      const text = this.executor.inspect(expr, expr.length);
      if (!text) {
        return {
          ok: false,
          error: { ename: "NameError", evalue: `nothing known about ${expr}`, traceback: [heading("NameError", `nothing known about ${expr}`)] },
        };
      }
      return { ok: true, hasValue: false, page: text };
    }
    const magic = this.magics.match(code);
    if (magic) return magic.run({ executor: this.executor, msg, kernel: this });
    try {
      const r = await this.executor.execute(code);
      if (r.ok) {
        const cellId = (msg.metadata as { cellId?: unknown } | undefined)?.cellId;
        this.cells.push({ id: typeof cellId === "string" ? cellId : String(this.executionCount), code });
      }
      return r;
    } catch (e) {
      if (e instanceof InputInterrupted) return { ok: false, error: { ename: "KeyboardInterrupt", evalue: "input interrupted", traceback: [] } };
      throw e;
    }
  }

  private async evaluateExpression(expr: string): Promise<JsonObject> {
    const r = await this.executor.execute(expr, 0, false);
    if (!r.ok) return { status: "error", ...r.error };
    return { status: "ok", data: formatValue(r.hasValue ? r.value : undefined), metadata: {} };
  }

  private complete(channel: RequestChannel, msg: JupyterMessage): void {
    const c = msg.content as { code?: string; cursor_pos?: number };
    const code = c.code ?? "";
    const cursor = clampCursor(code, c.cursor_pos);
    const { body, offset } = this.magics.bodyOf(code);
    let reply: JsonObject = { status: "ok", matches: [], cursor_start: cursor, cursor_end: cursor, metadata: {} };
    if (cursor >= offset) {
      const r = this.executor.complete(body, cursor - offset);
      reply = {
        status: "ok",
        matches: r.matches,
        cursor_start: r.start + offset,
        cursor_end: r.end + offset,
        metadata: {
          _jupyter_types_experimental: r.types.map((t) => ({ ...t, start: t.start + offset, end: t.end + offset })),
        },
      };
    }
    this.io.reply(channel, msg, "complete_reply", reply);
  }

  private inspect(channel: RequestChannel, msg: JupyterMessage): void {
    const c = msg.content as { code?: string; cursor_pos?: number };
    const code = c.code ?? "";
    const cursor = clampCursor(code, c.cursor_pos);
    const { body, offset } = this.magics.bodyOf(code);
    const text = cursor >= offset ? this.executor.inspect(body, cursor - offset) : null;
    this.io.reply(channel, msg, "inspect_reply", {
      status: "ok",
      found: text !== null,
      data: text !== null ? { "text/plain": text, "text/markdown": "```typescript\n" + text + "\n```" } : {},
      metadata: {},
    });
  }

  private isComplete(channel: RequestChannel, msg: JupyterMessage): void {
    const code = (msg.content as { code?: string }).code ?? "";
    const { body } = this.magics.bodyOf(code);
    // `%line` magics and `name?` (the pager) are one line each.
    const r =
      /^\s*%[^%]/.test(code) || /^\s*[A-Za-z_$][\w$.]*\s*\?\s*$/.test(code)
        ? { status: "complete" as const }
        : /^\s*%%/.test(code)
          ? cellMagicCompleteness(body, (b) => this.executor.isComplete(b))
          : this.executor.isComplete(body);
    this.io.reply(channel, msg, "is_complete_reply", r.status === "incomplete" ? { status: r.status, indent: r.indent ?? "" } : { status: r.status });
  }

  private historyRequest(channel: RequestChannel, msg: JupyterMessage): void {
    const c = msg.content as {
      output?: boolean;
      hist_access_type?: string;
      session?: number;
      start?: number;
      stop?: number;
      n?: number;
      pattern?: string;
      unique?: boolean;
    };
    const output = Boolean(c.output);
    let history: unknown[] = [];
    if (c.hist_access_type === "tail") history = this.history.tail(c.n ?? 10, output);
    else if (c.hist_access_type === "range") history = this.history.range(c.session ?? 0, c.start ?? 0, c.stop ?? Number.MAX_SAFE_INTEGER, output);
    else if (c.hist_access_type === "search") history = this.history.search(c.pattern ?? "*", c.n, Boolean(c.unique), output);
    this.io.reply(channel, msg, "history_reply", { status: "ok", history });
  }

  private async shutdown(channel: RequestChannel, msg: JupyterMessage): Promise<void> {
    const restart = Boolean((msg.content as { restart?: unknown }).restart);
    this.io.reply(channel, msg, "shutdown_reply", { status: "ok", restart });
    this.io.status("idle", msg.header);
    await this.exit(0);
  }

  private exiting: Promise<never> | null = null;
  /**
   * The kernel's one way out (shutdown_request, its parent gone): the io
   * thread sends what is queued and ends, the worker pool stops, then the
   * process exits. Exiting while the io thread still holds zeromq sockets
   * aborts the process in zeromq's teardown.
   */
  private exit(code: number): Promise<never> {
    this.exiting ??= (async (): Promise<never> => {
      try {
        this.pool?.close();
      } catch (e) {
        this.kernelLog(`[nbscale] stopping the worker pool failed: ${(e as Error).message}\n`);
      }
      await this.io.close();
      this.executor.close();
      process.exit(code);
    })();
    return this.exiting;
  }

  /** For magics: the header of the request being executed. */
  get currentParent(): Partial<MessageHeader> {
    return this.parent?.header ?? {};
  }
}

/** nbscale's own step status display: small, updated in place, and what tells the user a step is running. */
function isStepStatus(content: unknown): boolean {
  const data = (content as { data?: Record<string, unknown> } | null)?.data;
  return Boolean(data && STEP_STATUS_MIME in data);
}

/** About what a display costs the notebook document: the size of its data. */
function bundleBytes(content: unknown): number {
  const data = (content as { data?: Record<string, unknown> } | null)?.data ?? {};
  let n = 0;
  for (const v of Object.values(data)) n += typeof v === "string" ? v.length : JSON.stringify(v ?? null).length;
  return n;
}

/**
 * As IPython answers for cell magics: a `%%step` line alone, or with a body
 * not yet ended by a blank line, is incomplete, so a terminal client lets the
 * user type the body instead of running an empty step.
 */
function cellMagicCompleteness(
  body: string,
  check: (b: string) => { status: "complete" | "incomplete" | "invalid"; indent?: string },
): { status: "complete" | "incomplete" | "invalid"; indent?: string } {
  if (body.trim() === "") return { status: "incomplete", indent: "" };
  if (!/\n\s*$/.test(body)) {
    const inner = check(body);
    return { status: "incomplete", indent: inner.indent ?? "" };
  }
  return check(body);
}

function clampCursor(code: string, pos: unknown): number {
  // Jupyter counts cursor positions in unicode code points; JS strings in UTF-16 units.
  const n = typeof pos === "number" ? pos : code.length;
  const chars = Array.from(code);
  return chars.slice(0, Math.max(0, Math.min(n, chars.length))).join("").length;
}

export async function runKernel(options: KernelOptions): Promise<void> {
  const kernel = new Kernel(options);
  await kernel.start();
}
