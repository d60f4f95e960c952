/**
 * The remote worker's event log, written from a thread of its own: step code
 * that holds the main thread (a tight loop) can't delay its own output, the
 * same guarantee the local worker's io thread gives. The main thread posts
 * records (a postMessage never waits for this thread); this thread batches
 * them into chunks with EventLogWriter.
 */
import { parentPort, workerData, Worker } from "node:worker_threads";
import * as path from "node:path";
import { backendFor } from "../../store/backends";
import { resolveDatastore } from "../../store/location";
import { EventLogWriter } from "./event-log";
import type { RemoteRecord } from "./protocol";

interface ThreadData {
  datastore: string;
  cwd: string;
  task: string;
  flushMs: number;
  attempt?: number;
}

type ToThread = { kind: "record"; record: RemoteRecord } | { kind: "flush"; id: number };
type FromThread = { kind: "flushed"; id: number; chunks: number };

/** Main-thread side: `push` never blocks; `flush` resolves with the number of chunks written. */
export class ThreadedEventLog {
  private readonly thread: Worker;
  private flushes = 0;
  private readonly waiting = new Map<number, (chunks: number) => void>();

  constructor(data: ThreadData) {
    this.thread = new Worker(path.join(__dirname, "event-thread.js"), { workerData: data });
    this.thread.on("message", (m: FromThread) => {
      this.waiting.get(m.id)?.(m.chunks);
      this.waiting.delete(m.id);
    });
    this.thread.unref();
  }

  push(record: RemoteRecord): void {
    this.thread.postMessage({ kind: "record", record } satisfies ToThread);
  }

  flush(): Promise<number> {
    const id = ++this.flushes;
    // Held while a flush is pending: an unref'd thread alone would let the process exit before the answer.
    this.thread.ref();
    return new Promise((resolve) => {
      this.waiting.set(id, (chunks) => {
        if (this.waiting.size <= 1) this.thread.unref();
        resolve(chunks);
      });
      this.thread.postMessage({ kind: "flush", id } satisfies ToThread);
    });
  }
}

if (parentPort && (workerData as ThreadData | undefined)?.task) {
  const data = workerData as ThreadData;
  const port = parentPort;
  const backend = backendFor(resolveDatastore({ flag: data.datastore, env: process.env, cwd: data.cwd }));
  const log = new EventLogWriter(backend, data.task, data.flushMs, data.attempt ?? 1);
  port.on("message", (m: ToThread) => {
    if (m.kind === "record") log.push(m.record);
    else void log.flush().then(() => port.postMessage({ kind: "flushed", id: m.id, chunks: log.chunks } satisfies FromThread));
  });
}
