/**
 * The io thread owns every zeromq socket so that the kernel stays reachable
 * while user code blocks the main thread: heartbeats are answered, interrupts
 * are delivered (as SIGINT, which breaks a running `vm` script), output written
 * during a synchronous loop is published at once, and `prompt()` can block the
 * main thread on a shared buffer while this thread does the stdin exchange.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { endpoint } from "./connection";
import { newHeader, type JupyterMessage, type MessageHeader } from "./message";
import { decode, encode, Signer, type OutgoingMessage } from "./wire";
import { INPUT_BUFFER_BYTES, INPUT_HEADER_BYTES, INPUT_LENGTH, INPUT_STATE, InputState, type IoThreadData, type IoToMain, type MainToIo } from "./io-messages";

const data = workerData as IoThreadData;
const MAX_MESSAGE_BYTES = 256 * 1024 * 1024;

/**
 * Signatures seen recently. A message is signed over its header, which holds
 * a fresh msg_id and date, so a repeated signature means a captured message
 * being replayed: it is dropped like a forged one.
 */
class ReplayGuard {
  private readonly seen = new Set<string>();
  private readonly order: string[] = [];
  constructor(private readonly capacity: number) {}
  /** False when the signature was already used. */
  admit(signature: string): boolean {
    if (!signature) return true; // signing disabled: nothing to compare
    if (this.seen.has(signature)) return false;
    this.seen.add(signature);
    this.order.push(signature);
    if (this.order.length > this.capacity) this.seen.delete(this.order.shift()!);
    return true;
  }
}
const replayGuard = new ReplayGuard(65536);
const port = parentPort!;
const signer = new Signer(data.connection.key, data.connection.signature_scheme);
const inputState = new Int32Array(data.inputBuffer, 0, 2);
const inputBytes = new Uint8Array(data.inputBuffer, INPUT_HEADER_BYTES, INPUT_BUFFER_BYTES);

const shell = new zmq.Router();
const control = new zmq.Router();
const stdin = new zmq.Router();
const iopub = new zmq.XPublisher();
const hb = new zmq.Reply();
for (const s of [shell, control, stdin, iopub, hb]) s.linger = 1000;
// A request larger than this is a mistake or an attack; zeromq drops the
// connection instead of buffering it (comm buffers stay well below it).
for (const s of [shell, control, stdin]) s.maxMessageSize = MAX_MESSAGE_BYTES;
iopub.verbosity = "allSubs";

function post(m: IoToMain): void {
  port.postMessage(m);
}
function log(text: string): void {
  post({ kind: "log", text });
}

// zeromq sockets allow one send at a time; queue per socket.
const sendChains = new Set<() => Promise<void>>();
function sender(sock: zmq.Router | zmq.XPublisher) {
  let chain: Promise<void> = Promise.resolve();
  sendChains.add(() => chain);
  return (frames: Buffer[]) => {
    chain = chain.then(() => sock.send(frames)).catch((e) => log(`send failed: ${(e as Error).message}`));
    return chain;
  };
}
/** Resolves when every message queued so far has been handed to zeromq. */
async function sendsDone(): Promise<void> {
  for (;;) {
    const chains = [...sendChains].map((c) => c());
    await Promise.all(chains);
    if ([...sendChains].every((c, i) => c() === chains[i])) return;
  }
}
const sendShell = sender(shell);
const sendControl = sender(control);
const sendStdin = sender(stdin);
const sendIopubRaw = sender(iopub);

// --- iopub with stream coalescing -----------------------------------------

interface PendingStream {
  parent: Partial<MessageHeader>;
  name: "stdout" | "stderr";
  text: string;
}
let pending: PendingStream | null = null;
let flushTimer: NodeJS.Timeout | null = null;

function publish(msg: OutgoingMessage): Promise<void> {
  flushStream();
  return publishNow(msg);
}
function publishNow(msg: OutgoingMessage): Promise<void> {
  const topic = Buffer.from(`kernel.${data.session}.${msg.header.msg_type}`);
  return sendIopubRaw(encode({ ...msg, identities: [topic] }, signer));
}
function flushStream(): void {
  if (flushTimer) {
    clearTimeout(flushTimer);
    flushTimer = null;
  }
  if (!pending) return;
  const p = pending;
  pending = null;
  void publishNow({
    header: newHeader("stream", data.session),
    parent_header: p.parent,
    metadata: {},
    content: { name: p.name, text: p.text },
  });
}
/** Many small writes become one message; order with other iopub messages is kept. */
function queueStream(parent: Partial<MessageHeader>, name: "stdout" | "stderr", text: string): void {
  if (pending && (pending.name !== name || pending.parent.msg_id !== parent.msg_id)) flushStream();
  if (!pending) pending = { parent, name, text: "" };
  pending.text += text;
  if (pending.text.length > 64 * 1024) return flushStream();
  if (!flushTimer) flushTimer = setTimeout(flushStream, 8);
}

function status(state: "busy" | "idle" | "starting", parent: Partial<MessageHeader>): Promise<void> {
  return publish({
    header: newHeader("status", data.session),
    parent_header: parent,
    metadata: {},
    content: { execution_state: state },
  });
}

function reply(sendFn: (f: Buffer[]) => Promise<void>, req: JupyterMessage, type: string, content: unknown) {
  return sendFn(
    encode(
      {
        identities: req.identities,
        header: newHeader(type, data.session),
        parent_header: req.header,
        metadata: {},
        content,
      },
      signer,
    ),
  );
}

// --- stdin -------------------------------------------------------------------

let inputWaiting = false;
function answerInput(state: InputState, text = ""): void {
  const bytes = Buffer.from(text, "utf8");
  const n = Math.min(bytes.length, INPUT_BUFFER_BYTES);
  inputBytes.set(bytes.subarray(0, n));
  Atomics.store(inputState, INPUT_LENGTH, n);
  Atomics.store(inputState, INPUT_STATE, state);
  Atomics.notify(inputState, INPUT_STATE);
  inputWaiting = false;
  post({ kind: "input_done" });
}

async function serveStdin(): Promise<void> {
  await receiveForever(stdin, "stdin", (frames) => {
    let msg: JupyterMessage;
    try {
      msg = decode(frames, signer);
    } catch (e) {
      log(`dropped message on stdin: ${(e as Error).message}`);
      return;
    }
    if (msg.header.msg_type === "input_reply" && inputWaiting) {
      const value = (msg.content as { value?: unknown }).value;
      answerInput(InputState.Answered, typeof value === "string" ? value : "");
    }
  });
}

// --- shell and control -----------------------------------------------------

async function serveRequests(sock: zmq.Router, channel: "shell" | "control"): Promise<void> {
  await receiveForever(sock, channel, (frames) => {
    const receivedAt = Date.now();
    let msg: JupyterMessage;
    try {
      msg = decode(frames, signer);
    } catch (e) {
      log(`dropped message on ${channel}: ${(e as Error).message}`);
      return;
    }
    if (!replayGuard.admit(signatureOf(frames))) {
      log(`dropped message on ${channel}: replayed signature (msg_id ${msg.header.msg_id})`);
      return;
    }
    if (channel === "control" && handleControlHere(msg)) return;
    if (channel === "shell" && shellPending === 0 && msg.header.msg_type === "kernel_info_request") {
      // Nothing queued before it, so answering here keeps shell order — and a client waiting for
      // the kernel to be ready is answered while the main thread still loads the type checker.
      answerKernelInfo(sendShell, msg);
      return;
    }
    if (channel === "shell") shellPending++;
    post({ kind: "request", channel, msg, receivedAt });
  });
}

/**
 * Receives until the socket closes. A receive error (e.g. a peer's oversized
 * message) is logged and receiving goes on: one bad client must not deafen
 * the kernel to everyone else.
 */
async function receiveForever(sock: zmq.Router, channel: string, handle: (frames: Buffer[]) => void): Promise<void> {
  while (!sock.closed) {
    try {
      for await (const frames of sock) handle(frames as Buffer[]);
      return;
    } catch (e) {
      if (sock.closed) return;
      log(`receive error on ${channel}: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/**
 * zeromq drops a message over `maxMessageSize` by closing the sender's
 * connection, and tells no one but the socket monitor why; a closed
 * connection is therefore logged with the limit, so an oversized message
 * never vanishes without a trace (clients leaving are logged the same way).
 */
async function logDisconnects(sock: zmq.Router, channel: string): Promise<void> {
  for await (const event of sock.events) {
    if (event.type === "disconnect") {
      log(
        `${channel}: a client connection closed (the client left, or sent a message over ${MAX_MESSAGE_BYTES >> 20} MiB, which is dropped with its connection)`,
      );
    }
  }
}

/** Shell requests passed to the main thread and not answered yet. */
let shellPending = 0;

function answerKernelInfo(send: typeof sendShell, msg: JupyterMessage): void {
  void (async () => {
    await status("busy", msg.header);
    await reply(send, msg, "kernel_info_reply", data.kernelInfo);
    await status("idle", msg.header);
  })();
}

/** Requests this thread answers itself, because the main thread may be busy. */
function handleControlHere(msg: JupyterMessage): boolean {
  switch (msg.header.msg_type) {
    case "interrupt_request":
      void (async () => {
        await status("busy", msg.header);
        // Code blocked in prompt() is woken by the interrupted answer alone; a
        // SIGINT as well would land after it and break the *next* cell.
        if (inputWaiting) answerInput(InputState.Interrupted);
        else process.kill(process.pid, "SIGINT");
        await reply(sendControl, msg, "interrupt_reply", { status: "ok" });
        await status("idle", msg.header);
      })();
      return true;
    case "kernel_info_request":
      answerKernelInfo(sendControl, msg);
      return true;
    case "shutdown_request":
      // The main thread does the orderly shutdown; if user code keeps it busy,
      // stop that code first and, failing that, end the process ourselves.
      setTimeout(() => process.kill(process.pid, "SIGINT"), 200).unref();
      setTimeout(() => {
        void reply(sendControl, msg, "shutdown_reply", {
          status: "ok",
          restart: Boolean((msg.content as { restart?: unknown }).restart),
        }).then(() => process.kill(process.pid, "SIGKILL"));
      }, 3000).unref();
      return false;
    default:
      return false;
  }
}

function signatureOf(frames: Buffer[]): string {
  const at = frames.findIndex((f) => f.toString() === "<IDS|MSG>");
  return at >= 0 && frames[at + 1] ? frames[at + 1].toString("utf8") : "";
}

async function serveHeartbeat(): Promise<void> {
  for await (const frames of hb) await hb.send(frames as Buffer[]);
}

/** JEP 65: tell each new subscriber its subscription is live, so it knows no output is lost. */
async function serveSubscriptions(): Promise<void> {
  for await (const frames of iopub) {
    const f = frames[0] as Buffer;
    if (f.length === 0 || f[0] !== 1) continue;
    await publish({
      header: newHeader("iopub_welcome", data.session),
      parent_header: {},
      metadata: {},
      content: { subscription: f.subarray(1).toString("utf8") },
    });
  }
}

port.on("message", (m: MainToIo) => {
  switch (m.kind) {
    case "send": {
      const msg = { ...m.msg, identities: (m.msg.identities ?? []).map((b) => Buffer.from(b)) };
      if (m.channel === "iopub") void publish(msg);
      else {
        if (m.channel === "shell") {
          flushStream();
          if (m.msg.header.msg_type.endsWith("_reply") && shellPending > 0) shellPending--;
        }
        void (m.channel === "shell" ? sendShell : m.channel === "control" ? sendControl : sendStdin)(encode(msg, signer));
      }
      break;
    }
    case "stream":
      queueStream(m.parent, m.name, m.text);
      break;
    case "flush":
      flushStream();
      post({ kind: "flushed", token: m.token });
      break;
    case "input":
      inputWaiting = true;
      flushStream();
      void sendStdin(
        encode(
          {
            identities: m.parent.identities.map((b) => Buffer.from(b)),
            header: newHeader("input_request", data.session),
            parent_header: m.parent.header,
            metadata: {},
            content: { prompt: m.prompt, password: m.password },
          },
          signer,
        ),
      );
      break;
    case "close":
      void close();
      break;
  }
});

/**
 * The end of the kernel: the queued replies and output go out, then every
 * socket closes (linger lets zeromq deliver what it holds) and the thread
 * ends by itself. The main thread waits for that before `process.exit`: a
 * thread that still holds sockets when the process exits is torn down under
 * zeromq, which aborts the process ("terminate called after throwing an
 * instance of 'Napi::Error'").
 */
let closing = false;
async function close(): Promise<void> {
  if (closing) return;
  closing = true;
  flushStream();
  await Promise.race([sendsDone(), new Promise((r) => setTimeout(r, 1000))]);
  for (const s of [shell, control, stdin, iopub, hb]) s.close();
  port.close();
}

async function main(): Promise<void> {
  const c = data.connection;
  await Promise.all([
    shell.bind(endpoint(c, "shell")),
    control.bind(endpoint(c, "control")),
    stdin.bind(endpoint(c, "stdin")),
    iopub.bind(endpoint(c, "iopub")),
    hb.bind(endpoint(c, "hb")),
  ]);
  post({ kind: "ready" });
  for (const [sock, channel] of [
    [shell, "shell"],
    [control, "control"],
    [stdin, "stdin"],
  ] as const) {
    logDisconnects(sock, channel).catch((e) => log(`cannot watch ${channel} connections: ${String(e)}`));
  }
  await status("starting", {});
  await Promise.all([serveRequests(shell, "shell"), serveRequests(control, "control"), serveStdin(), serveHeartbeat(), serveSubscriptions()]).catch((e) => {
    if (!(e instanceof Error && /closed|terminated/i.test(e.message))) log(`io thread failed: ${String(e)}`);
  });
}

void main().catch((e) => {
  log(`io thread could not start: ${(e as Error).message}`);
  process.exit(1);
});
