/**
 * Main-thread side of the io thread: send replies and iopub messages, receive
 * requests, and block for stdin input when user code asks synchronously.
 */
import { Worker } from "node:worker_threads";
import { join } from "node:path";
import type { ConnectionInfo } from "./connection";
import { newHeader, type JsonObject, type JupyterMessage, type MessageHeader } from "./message";
import {
  INPUT_BUFFER_BYTES,
  INPUT_HEADER_BYTES,
  INPUT_LENGTH,
  INPUT_STATE,
  InputState,
  type IoThreadData,
  type IoToMain,
  type MainToIo,
  type RequestChannel,
} from "./io-messages";

export class InputInterrupted extends Error {
  constructor() {
    super("input was interrupted");
    this.name = "KeyboardInterrupt";
  }
}

export class KernelIo {
  private worker: Worker | null = null;
  private ioEnded = false;
  private readonly inputBuffer = new SharedArrayBuffer(INPUT_HEADER_BYTES + INPUT_BUFFER_BYTES);
  private readonly inputState = new Int32Array(this.inputBuffer, 0, 2);
  private readonly inputBytes = new Uint8Array(this.inputBuffer, INPUT_HEADER_BYTES, INPUT_BUFFER_BYTES);
  private flushWaiters = new Map<number, () => void>();
  private flushToken = 0;
  private inputWaiter: (() => void) | null = null;
  /**
   * The process's own stderr, taken before the kernel routes stderr writes
   * to the running cell: protocol diagnostics (dropped messages) belong in
   * the kernel's log, not in whichever cell ran last.
   */
  private readonly logErr = process.stderr.write.bind(process.stderr);

  constructor(
    private readonly connection: ConnectionInfo,
    readonly session: string,
    private readonly kernelInfo: JsonObject,
  ) {}

  start(onRequest: (channel: RequestChannel, msg: JupyterMessage, receivedAt: number) => void): Promise<void> {
    const data: IoThreadData = {
      connection: this.connection,
      session: this.session,
      kernelInfo: this.kernelInfo,
      inputBuffer: this.inputBuffer,
    };
    const worker = new Worker(join(__dirname, "io-thread.js"), { workerData: data });
    this.worker = worker;
    return new Promise((resolve, reject) => {
      worker.on("message", (m: IoToMain) => {
        switch (m.kind) {
          case "ready":
            resolve();
            break;
          case "request":
            onRequest(m.channel, reviveMessage(m.msg), m.receivedAt);
            break;
          case "flushed":
            this.flushWaiters.get(m.token)?.();
            this.flushWaiters.delete(m.token);
            break;
          case "input_done":
            this.inputWaiter?.();
            break;
          case "log":
            this.logErr(`[nbscale] ${m.text}\n`);
            break;
        }
      });
      worker.on("error", (e) => {
        this.logErr(`[nbscale] io thread error: ${e.stack ?? e}\n`);
        reject(e);
        process.exit(1);
      });
      worker.on("exit", (code) => {
        this.ioEnded = true;
        if (code !== 0) process.exit(code);
      });
    });
  }

  private post(m: MainToIo): void {
    this.worker?.postMessage(m);
  }

  reply(channel: RequestChannel, req: JupyterMessage, msgType: string, content: unknown, metadata: JsonObject = {}): void {
    this.post({
      kind: "send",
      channel,
      msg: {
        identities: req.identities,
        header: newHeader(msgType, this.session),
        parent_header: req.header,
        metadata,
        content,
      },
    });
  }

  publish(msgType: string, content: unknown, parent: Partial<MessageHeader>, metadata: JsonObject = {}): void {
    this.post({
      kind: "send",
      channel: "iopub",
      msg: { header: newHeader(msgType, this.session), parent_header: parent, metadata, content },
    });
  }

  status(state: "busy" | "idle", parent: Partial<MessageHeader>): void {
    this.publish("status", { execution_state: state }, parent);
  }

  stream(parent: Partial<MessageHeader>, name: "stdout" | "stderr", text: string): void {
    if (text) this.post({ kind: "stream", parent, name, text });
  }

  /** Resolves once every stream write so far has been published. */
  flush(): Promise<void> {
    const token = ++this.flushToken;
    return new Promise((resolve) => {
      this.flushWaiters.set(token, resolve);
      this.post({ kind: "flush", token });
    });
  }

  /** Blocks the main thread until the frontend answers (prompt()-style input). */
  inputSync(prompt: string, password: boolean, parent: JupyterMessage): string {
    Atomics.store(this.inputState, INPUT_STATE, InputState.Waiting);
    this.post({ kind: "input", prompt, password, parent });
    while (Atomics.load(this.inputState, INPUT_STATE) === InputState.Waiting) {
      Atomics.wait(this.inputState, INPUT_STATE, InputState.Waiting, 1000);
    }
    return this.takeInput();
  }

  async input(prompt: string, password: boolean, parent: JupyterMessage): Promise<string> {
    Atomics.store(this.inputState, INPUT_STATE, InputState.Waiting);
    const done = new Promise<void>((resolve) => (this.inputWaiter = resolve));
    this.post({ kind: "input", prompt, password, parent });
    await done;
    this.inputWaiter = null;
    return this.takeInput();
  }

  private takeInput(): string {
    const state = Atomics.load(this.inputState, INPUT_STATE);
    Atomics.store(this.inputState, INPUT_STATE, InputState.Idle);
    if (state === InputState.Interrupted) throw new InputInterrupted();
    const n = Atomics.load(this.inputState, INPUT_LENGTH);
    return Buffer.from(this.inputBytes.subarray(0, n)).toString("utf8");
  }

  /**
   * Sends what is queued, closes every socket and resolves once the io
   * thread has ended, so that the process can exit: exiting while the
   * thread still holds zeromq sockets aborts the process in zeromq's
   * teardown. Gives up waiting after `timeoutMs`.
   */
  async close(timeoutMs = 3000): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    const ended = new Promise<void>((resolve) => {
      if (this.ioEnded) resolve();
      else worker.once("exit", () => resolve());
    });
    this.post({ kind: "close" });
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)));
    const done = await Promise.race([ended.then(() => true), late]);
    clearTimeout(timer);
    if (!done) this.logErr(`[nbscale] the io thread did not end within ${timeoutMs} ms of closing its sockets\n`);
  }
}

/** Buffers lose their class crossing threads (they arrive as Uint8Array). */
function reviveMessage(msg: JupyterMessage): JupyterMessage {
  return {
    ...msg,
    identities: msg.identities.map((b) => Buffer.from(b)),
    buffers: msg.buffers.map((b) => Buffer.from(b)),
  };
}
