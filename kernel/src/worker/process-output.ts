/**
 * Routes everything user code prints (console.*, process.stdout/stderr.write)
 * to a sink: the kernel's (stream messages of the running cell, or of the last
 * cell when a timer prints after its cell finished, as ipykernel does) and every
 * worker's (events back to the kernel) use this one capture.
 */
import { Console } from "node:console";
import { Writable } from "node:stream";

export type StreamSink = (name: "stdout" | "stderr", text: string) => void;

export interface CapturedStreams {
  /** The process's real stderr, for kernel diagnostics that must not reach a cell. */
  kernelLog(text: string): void;
  /** Writes to the process's real stdout or stderr, past the capture. */
  real(name: "stdout" | "stderr", text: string): void;
}

export function captureOutput(sink: StreamSink): CapturedStreams {
  const realErrWrite = process.stderr.write.bind(process.stderr);
  const realOutWrite = process.stdout.write.bind(process.stdout);
  const toText = (chunk: unknown, encoding?: unknown): string =>
    typeof chunk === "string"
      ? chunk
      : Buffer.from(chunk as Uint8Array).toString(typeof encoding === "string" && Buffer.isEncoding(encoding) ? (encoding as BufferEncoding) : "utf8");

  const patch = (stream: NodeJS.WriteStream, name: "stdout" | "stderr") => {
    stream.write = ((chunk: unknown, encoding?: unknown, cb?: unknown) => {
      sink(name, toText(chunk, encoding));
      const done = typeof encoding === "function" ? encoding : cb;
      if (typeof done === "function") process.nextTick(done as () => void);
      return true;
    }) as typeof stream.write;
  };
  patch(process.stdout, "stdout");
  patch(process.stderr, "stderr");

  const writable = (name: "stdout" | "stderr") =>
    new Writable({
      decodeStrings: false,
      write(chunk, encoding, cb) {
        sink(name, toText(chunk, encoding));
        cb();
      },
    });
  globalThis.console = new Console({ stdout: writable("stdout"), stderr: writable("stderr"), colorMode: false });
  return {
    kernelLog: (text) => void realErrWrite(text),
    real: (name, text) => void (name === "stdout" ? realOutWrite : realErrWrite)(text),
  };
}
