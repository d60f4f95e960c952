/**
 * How a worker (local or remote) turns a step's console and stdout/stderr
 * writes into events, and its exceptions into something that travels.
 */
import { inspect } from "node:util";
import { captureOutput, type CapturedStreams, type StreamSink } from "./process-output";
import type { RemoteError, StepEvent } from "./events";
import type { WireHeader, WireMessage } from "./wire";

/**
 * console.* and process.stdout/stderr.write go to `sink` (and nowhere else):
 * the same capture the kernel uses for its own cells.
 */
export function captureStreams(sink: StreamSink): CapturedStreams {
  return captureOutput(sink);
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

type StreamEvent = Extract<StepEvent, { type: "stream" }>;
interface StreamHeader {
  type: "event";
  task: string;
  seq: number;
  event: StreamEvent;
}

function isStreamEvent(m: WireMessage): m is WireMessage<WireHeader & StreamHeader> {
  const event = m.header.event as StepEvent | undefined;
  return m.header.type === "event" && m.frames.length === 0 && event?.type === "stream";
}

/**
 * Joins a step's consecutive writes to one stream into one message on the
 * worker's socket thread. A loop printing a million lines would otherwise
 * cost a million signed messages (and the kernel a million events); joined,
 * they are ~64 KiB apiece. The join waits at most `delayMs`, on a thread user
 * code does not block, so output still appears live; any other message
 * (display, done, failed) goes out only after the text before it.
 */
export class StreamJoiner {
  private pending: (WireHeader & StreamHeader) | null = null;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly out: (m: WireMessage) => void,
    private readonly maxChars = 64 * 1024,
    private readonly delayMs = 5,
  ) {}

  send(m: WireMessage): void {
    if (!isStreamEvent(m)) {
      this.flush();
      this.out(m);
      return;
    }
    const h = m.header;
    const p = this.pending;
    if (p && p.task === h.task && p.event.name === h.event.name) p.event.text += h.event.text;
    else {
      this.flush();
      this.pending = { ...h, event: { ...h.event } };
    }
    if (this.pending!.event.text.length >= this.maxChars) this.flush();
    else if (!this.timer) this.timer = setTimeout(() => this.flush(), this.delayMs);
  }

  flush(): void {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const p = this.pending;
    if (!p) return;
    this.pending = null;
    this.out({ header: p, frames: [] });
  }
}
