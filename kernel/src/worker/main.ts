/**
 * The one worker entrypoint (`nbscale worker`). The local pool starts it with
 * `--connect ENDPOINT --id ID` and writes the session key on its stdin; the
 * worker lives until stdin closes (its kernel is gone) or it is told to stop.
 */
import { Worker } from "node:worker_threads";
import * as path from "node:path";
import { installDisplaySink } from "../client/display";
import { decodeValues, encodeValues } from "./codec";
import type { KernelHeader, StepEvent, TaskHeader, WorkerHeader } from "./events";
import { captureStreams, toRemoteError } from "./streams";
import type { FromIo, ToIo } from "./io-thread";
import { runProgram } from "./runner";
import { piecesOf, releasePieces, spillFrames } from "./spill";
import { stepRequire } from "./require";
import { eagerSpecs, readLazyInputs, storeLazyOutputs } from "./lazy";
import type { ClassResolver } from "../store/serialize";

export interface WorkerOptions {
  endpoint: string;
  id: string;
  cwd: string;
}

async function readKey(): Promise<Buffer> {
  return await new Promise((resolve, reject) => {
    let text = "";
    const onData = (chunk: Buffer) => {
      text += chunk.toString("latin1");
      const nl = text.indexOf("\n");
      if (nl >= 0) {
        process.stdin.off("data", onData);
        resolve(Buffer.from(text.slice(0, nl).trim(), "hex"));
      }
    };
    process.stdin.on("data", onData);
    process.stdin.once("end", () => reject(new Error("stdin closed before the session key arrived")));
  });
}

export async function runWorker(options: WorkerOptions): Promise<void> {
  const key = await readKey();

  const realErr = process.stderr.write.bind(process.stderr);
  const log = (text: string) => void realErr(`[nbscale worker ${options.id}] ${text}\n`);
  const io = new Worker(path.join(__dirname, "io-thread.js"), { workerData: { endpoint: options.endpoint, key, id: options.id } });
  io.unref();
  // The kernel holds our stdin: when it goes away, so do we. The socket
  // thread closes first: exiting under it aborts in zeromq's teardown.
  const shutdown = () => {
    const force = setTimeout(() => process.exit(0), 500);
    io.once("exit", () => {
      clearTimeout(force);
      process.exit(0);
    });
    io.postMessage({ kind: "close" } satisfies ToIo);
  };
  process.stdin.on("end", shutdown);
  process.stdin.resume();
  const post = (header: WorkerHeader, frames: Uint8Array[] = [], transfer: ArrayBuffer[] = []) => {
    const m: ToIo = { kind: "send", header, frames };
    try {
      io.postMessage(m, transfer);
    } catch {
      io.postMessage(m); // memory that can't move (e.g. shared) is copied instead
    }
  };

  let current: TaskHeader | null = null;
  let seq = 0;
  const emit = (event: StepEvent) => {
    if (!current) {
      if (event.type === "stream") realErr(event.text);
      return;
    }
    post({ type: "event", task: current.task, seq: seq++, event });
  };
  captureStreams((name, text) => emit({ type: "stream", name, text }));
  installDisplaySink({
    display: (data, metadata, displayId, update) => emit({ type: "display", data, metadata, displayId, update }),
    clear: (wait) => emit({ type: "clear", wait }),
  });

  let fail: ((e: unknown) => void) | null = null;
  process.on("uncaughtException", (e) => (fail ? fail(e) : log(`uncaught: ${(e as Error)?.stack ?? e}`)));
  process.on("unhandledRejection", (e) => (fail ? fail(e) : log(`unhandled rejection: ${(e as Error)?.stack ?? e}`)));

  const require = stepRequire(options.cwd);
  const baseEnv = { ...process.env };
  let chain = Promise.resolve();

  io.on("message", (m: FromIo) => {
    if (m.kind === "dropped") {
      log(`dropped ${m.reason}`);
      return;
    }
    const header = m.header as unknown as KernelHeader;
    if (header.type === "shutdown") return shutdown();
    if (header.type !== "task") return;
    chain = chain.then(() => runTask(header, m.frames));
  });
  post({ type: "hello", worker: options.id, pid: process.pid });

  async function runTask(task: TaskHeader, frames: Uint8Array[]): Promise<void> {
    current = task;
    seq = 0;
    for (const k of Object.keys(process.env)) if (!(k in baseEnv)) delete process.env[k];
    Object.assign(process.env, baseEnv, task.env, { NBSCALE_STEP: task.step, NBSCALE_ATTEMPT: String(task.attempt) });
    try {
      const failed = new Promise<never>((_, reject) => (fail = reject));
      const inputs = async (resolveClass: ClassResolver) => {
        const pieces = piecesOf(frames, task.spilled, task.spillDir);
        try {
          const values = await decodeValues(eagerSpecs(task.inputs), pieces, resolveClass);
          for (const [n, v] of await readLazyInputs(task.inputs, resolveClass)) values.set(n, v);
          return Object.fromEntries(values);
        } finally {
          releasePieces(pieces);
        }
      };
      const outputs = await Promise.race([runProgram(task.program, { inputs }, { require, cwd: options.cwd }), failed]);
      const kept = await storeLazyOutputs(outputs, task.lazy, task.spillDir);
      const enc = encodeValues(kept.rest, false);
      const out = spillFrames(enc.frames, task.spillDir);
      // Big containers are in their spill files already: one (empty) frame each, after the others.
      for (const s of kept.spilled) {
        enc.specs.push({ name: s.name, type: s.type, frames: 1 });
        out.spilled.push({ frame: out.frames.length, file: s.file, length: s.length });
        out.frames.push(new Uint8Array(0));
      }
      enc.specs.push(...kept.specs);
      const transfer = [...new Set(out.frames.filter((f) => f.byteLength >= 65536).map((f) => f.buffer as ArrayBuffer))];
      post({ type: "done", task: task.task, outputs: enc.specs, stubs: enc.stubs, spilled: out.spilled }, out.frames, transfer);
    } catch (e) {
      post({ type: "failed", task: task.task, error: toRemoteError(e) });
    } finally {
      fail = null;
      current = null;
    }
  }
}
