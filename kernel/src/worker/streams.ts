/**
 * How a worker (local or remote) turns a step's console and stdout/stderr
 * writes into events, and its exceptions into something that travels.
 */
import { inspect } from "node:util";
import { captureOutput, type StreamSink } from "../session/output-capture";
import type { RemoteError } from "./events";

/**
 * console.* and process.stdout/stderr.write go to `sink` (and nowhere else):
 * the same capture the kernel uses for its own cells.
 */
export function captureStreams(sink: StreamSink): void {
  captureOutput(sink);
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
