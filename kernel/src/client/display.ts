/**
 * Rich output from cells: `import { display } from "nbscale"`.
 * The kernel (or a step worker) installs a sink on globalThis; without one,
 * e.g. in a plain Node script, displays fall back to text on stdout.
 */
import { randomBytes } from "node:crypto";

export type MimeBundle = Record<string, unknown>;

export interface DisplaySink {
  display(data: MimeBundle, metadata: Record<string, unknown>, displayId: string | undefined, update: boolean): void;
  clear(wait: boolean): void;
}

const SINK_KEY = Symbol.for("nbscale.displaySink");

export function installDisplaySink(sink: DisplaySink | undefined): void {
  (globalThis as Record<symbol, unknown>)[SINK_KEY] = sink;
}

function currentSink(): DisplaySink | undefined {
  return (globalThis as Record<symbol, unknown>)[SINK_KEY] as DisplaySink | undefined;
}

function encodeBinary(b: Uint8Array | string): string {
  if (typeof b === "string") return b; // already base64
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

function emit(data: MimeBundle, metadata: Record<string, unknown>, id: string | undefined, update: boolean): void {
  const sink = currentSink();
  if (sink) return sink.display(data, metadata, id, update);
  const text = data["text/plain"] ?? data["text/markdown"] ?? data["text/html"] ?? JSON.stringify(Object.keys(data));
  process.stdout.write(`${typeof text === "string" ? text : JSON.stringify(text)}\n`);
}

/**
 * One output area entry. Created by `display.create()`: the first call shows
 * the output, later calls replace it in place (progress, live status).
 */
export class DisplayHandle {
  private shown = false;
  constructor(readonly id: string | undefined) {}

  raw(mime: string, data: unknown, metadata: Record<string, unknown> = {}): void {
    this.bundle({ [mime]: data }, metadata);
  }
  /** Several representations at once; the frontend picks the richest it can render. */
  bundle(data: MimeBundle, metadata: Record<string, unknown> = {}): void {
    emit(data, metadata, this.id, this.id !== undefined && this.shown);
    this.shown = true;
  }
  text(s: string): void {
    this.raw("text/plain", s);
  }
  html(s: string): void {
    this.bundle({ "text/html": s, "text/plain": stripTags(s) });
  }
  markdown(s: string): void {
    this.bundle({ "text/markdown": s, "text/plain": s });
  }
  latex(s: string): void {
    this.bundle({ "text/latex": s, "text/plain": s });
  }
  svg(s: string): void {
    this.bundle({ "image/svg+xml": s, "text/plain": "<svg image>" });
  }
  javascript(s: string): void {
    this.raw("application/javascript", s);
  }
  png(b: Uint8Array | string): void {
    this.bundle({ "image/png": encodeBinary(b), "text/plain": "<PNG image>" });
  }
  jpeg(b: Uint8Array | string): void {
    this.bundle({ "image/jpeg": encodeBinary(b), "text/plain": "<JPEG image>" });
  }
  gif(b: Uint8Array | string): void {
    this.bundle({ "image/gif": encodeBinary(b), "text/plain": "<GIF image>" });
  }
  pdf(b: Uint8Array | string): void {
    this.raw("application/pdf", encodeBinary(b));
  }
  json(value: unknown): void {
    this.bundle({ "application/json": value, "text/plain": JSON.stringify(value, null, 2) });
  }
}

function stripTags(html: string): string {
  return html.replace(/<[^>]*>/g, "").trim() || html;
}

class Display extends DisplayHandle {
  constructor() {
    super(undefined);
  }
  /** A handle whose later calls update the same output in place. */
  create(): DisplayHandle {
    return new DisplayHandle(randomBytes(8).toString("hex"));
  }
  /** Clears the cell's output; with `wait`, only when the next output arrives (no flicker). */
  clear(wait = false): void {
    const sink = currentSink();
    if (sink) sink.clear(wait);
  }
}

export const display = new Display();

/** tslab's name for `display.create()`, so tslab notebooks run unchanged. */
export function newDisplay(): DisplayHandle {
  return display.create();
}
