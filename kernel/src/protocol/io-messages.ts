/**
 * Messages between the kernel's main thread (user code) and its io thread
 * (all five zeromq sockets). Kept in one place so both sides agree.
 */
import type { ConnectionInfo } from "./connection";
import type { JupyterMessage, MessageHeader } from "./message";
import type { OutgoingMessage } from "./wire";

export type RequestChannel = "shell" | "control";

export interface IoThreadData {
  connection: ConnectionInfo;
  session: string;
  kernelInfo: unknown;
  /** Shared with the main thread so a blocked `prompt()` can receive its answer. */
  inputBuffer: SharedArrayBuffer;
}

export type MainToIo =
  | { kind: "send"; channel: "shell" | "control" | "iopub" | "stdin"; msg: OutgoingMessage }
  | { kind: "stream"; parent: Partial<MessageHeader>; name: "stdout" | "stderr"; text: string }
  | { kind: "flush"; token: number }
  | { kind: "input"; prompt: string; password: boolean; parent: JupyterMessage }
  | { kind: "close" };

export type IoToMain =
  | { kind: "ready" }
  | { kind: "request"; channel: RequestChannel; msg: JupyterMessage; receivedAt: number }
  | { kind: "input_done" }
  | { kind: "flushed"; token: number }
  | { kind: "log"; text: string };

/** Layout of `inputBuffer`: state word, byte length, then UTF-8 text. */
export const INPUT_STATE = 0;
export const INPUT_LENGTH = 1;
export const INPUT_HEADER_BYTES = 8;
export const INPUT_BUFFER_BYTES = 1 << 20;
export enum InputState {
  Idle = 0,
  Waiting = 1,
  Answered = 2,
  Interrupted = 3,
}
