/**
 * The worker's socket lives on this thread so that output keeps flowing to
 * the kernel while a step's synchronous code holds the main thread.
 * Messages from the main thread are signed and sent in order; messages from
 * the kernel are verified, then handed to the main thread.
 */
import { parentPort, workerData } from "node:worker_threads";
import * as zmq from "zeromq";
import { SendQueue, WireChannel, type WireHeader } from "./wire";
import { StreamJoiner } from "./streams";

export interface IoThreadData {
  endpoint: string;
  key: Uint8Array;
  id: string;
}

/** main → io thread */
export type ToIo = { kind: "send"; header: WireHeader; frames: Uint8Array[] } | { kind: "close" };
/** io thread → main */
export type FromIo = { kind: "message"; header: WireHeader; frames: Uint8Array[] } | { kind: "dropped"; reason: string };

async function main(): Promise<void> {
  const port = parentPort!;
  const { endpoint, key, id } = workerData as IoThreadData;
  const sock = new zmq.Dealer({ routingId: id, linger: 2000 });
  sock.connect(endpoint);
  const queue = new SendQueue((parts) => sock.send(parts));
  const channel = new WireChannel(key);
  const joiner = new StreamJoiner((m) => void queue.push(channel.encode(m)));
  port.on("message", (m: ToIo) => {
    if (m.kind === "close") {
      joiner.flush();
      sock.close();
      port.close();
      return;
    }
    joiner.send({ header: m.header, frames: m.frames });
  });
  for await (const parts of sock) {
    const msg = channel.decode(parts);
    if (!msg) {
      port.postMessage({ kind: "dropped", reason: "a message with a bad signature" } satisfies FromIo);
      continue;
    }
    // Copies into fresh, transferable memory: zeromq's buffers are external
    // and can't move to another thread.
    const frames = msg.frames.map((f) => new Uint8Array(f));
    port.postMessage(
      { kind: "message", header: msg.header, frames } satisfies FromIo,
      frames.map((f) => f.buffer),
    );
  }
}

void main();
