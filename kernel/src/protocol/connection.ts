import { readFileSync } from "node:fs";

/** The contents of a Jupyter connection file, as written by jupyter_client. */
export interface ConnectionInfo {
  transport: "tcp" | "ipc";
  ip: string;
  key: string;
  signature_scheme: string;
  shell_port: number;
  iopub_port: number;
  stdin_port: number;
  control_port: number;
  hb_port: number;
  kernel_name?: string;
}

export type ChannelName = "shell" | "control" | "stdin" | "iopub" | "hb";

export function readConnectionFile(path: string): ConnectionInfo {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, "utf8"));
  } catch (e) {
    throw new Error(`cannot read connection file ${path}: ${(e as Error).message}`);
  }
  const info = raw as Partial<ConnectionInfo>;
  for (const port of ["shell_port", "iopub_port", "stdin_port", "control_port", "hb_port"] as const) {
    if (typeof info[port] !== "number") {
      throw new Error(`connection file ${path} has no numeric "${port}"`);
    }
  }
  return {
    transport: info.transport === "ipc" ? "ipc" : "tcp",
    ip: info.ip ?? "127.0.0.1",
    key: info.key ?? "",
    signature_scheme: info.signature_scheme ?? "hmac-sha256",
    shell_port: info.shell_port!,
    iopub_port: info.iopub_port!,
    stdin_port: info.stdin_port!,
    control_port: info.control_port!,
    hb_port: info.hb_port!,
    kernel_name: info.kernel_name,
  };
}

/** The zeromq endpoint for one channel. ipc uses `<ip>-<port>` as jupyter_client does. */
export function endpoint(info: ConnectionInfo, channel: ChannelName): string {
  const port = info[`${channel}_port` as const];
  if (info.transport === "ipc") return `ipc://${info.ip}-${port}`;
  return `tcp://${info.ip}:${port}`;
}
