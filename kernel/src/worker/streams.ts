/**
 * How a worker turns a step's console and stdout/stderr writes into events,
 * and its exceptions into something that travels. The remote worker uses
 * these; the local worker (main.ts) has its own copies from before and can
 * switch to these.
 */
import { Console } from "node:console";
import { Writable } from "node:stream";
import { inspect } from "node:util";
import type { RemoteError } from "./events";

/** console.* and process.stdout/stderr.write go to `sink` (and nowhere else). */
export function captureStreams(sink: (name: "stdout" | "stderr", text: string) => void): void {
  const toText = (chunk: unknown, encoding?: unknown): string =>
    typeof chunk === "string"
      ? chunk
      : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" && Buffer.isEncoding(encoding) ? encoding : "utf8");
  for (const name of ["stdout", "stderr"] as const) {
    const stream = process[name];
    stream.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
      sink(name, toText(chunk, encoding));
      const done = typeof encoding === "function" ? encoding : cb;
      if (typeof done === "function") process.nextTick(done as () => void);
      return true;
    }) as typeof stream.write;
  }
  const writable = (name: "stdout" | "stderr") =>
    new Writable({
      decodeStrings: false,
      write(chunk, encoding, cb) {
        sink(name, toText(chunk, encoding));
        cb();
      },
    });
  globalThis.console = new Console({ stdout: writable("stdout"), stderr: writable("stderr"), colorMode: false });
}

export function toRemoteError(e: unknown): RemoteError {
  if (e instanceof Error) return { name: e.name || "Error", message: e.message, stack: e.stack };
  let text: string;
  try {
    text = typeof e === "string" ? e : inspect(e);
  } catch {
    text = String(e);
  }
  return { name: "Uncaught", message: text };
}
