/**
 * Kernel-side comms: frontends (the nbscale JupyterLab extension) open a comm
 * to a registered target and exchange JSON messages with it.
 */
import { randomUUID } from "node:crypto";
import type { JsonObject } from "../protocol/message";

export interface Comm {
  readonly id: string;
  readonly target: string;
  send(data: JsonObject, buffers?: Buffer[]): void;
  close(data?: JsonObject): void;
  onMessage?: (data: JsonObject, buffers: Buffer[]) => void | Promise<void>;
  onClose?: (data: JsonObject) => void;
}

export type CommTarget = (comm: Comm, data: JsonObject) => void | Promise<void>;

export interface CommTransport {
  publish(msgType: "comm_open" | "comm_msg" | "comm_close", content: JsonObject, buffers?: Buffer[]): void;
}

export class CommManager {
  private readonly targets = new Map<string, CommTarget>();
  private readonly comms = new Map<string, Comm>();

  constructor(private readonly transport: CommTransport) {}

  registerTarget(name: string, target: CommTarget): void {
    this.targets.set(name, target);
  }

  private make(id: string, target: string): Comm {
    const comm: Comm = {
      id,
      target,
      send: (data, buffers) => this.transport.publish("comm_msg", { comm_id: id, data }, buffers),
      close: (data = {}) => {
        if (!this.comms.delete(id)) return;
        this.transport.publish("comm_close", { comm_id: id, data });
      },
    };
    this.comms.set(id, comm);
    return comm;
  }

  /** Kernel-initiated comm (e.g. pushing step status to the extension). */
  open(target: string, data: JsonObject = {}): Comm {
    const comm = this.make(randomUUID(), target);
    this.transport.publish("comm_open", { comm_id: comm.id, target_name: target, data });
    return comm;
  }

  async handleOpen(content: JsonObject): Promise<void> {
    const id = String(content.comm_id ?? "");
    const targetName = String(content.target_name ?? "");
    const target = this.targets.get(targetName);
    if (!id) return;
    if (!target) {
      // The protocol's answer to an unknown target: close it right back.
      this.transport.publish("comm_close", { comm_id: id, data: { error: `no comm target "${targetName}"` } });
      return;
    }
    await target(this.make(id, targetName), (content.data ?? {}) as JsonObject);
  }

  async handleMessage(content: JsonObject, buffers: Buffer[]): Promise<void> {
    const comm = this.comms.get(String(content.comm_id ?? ""));
    await comm?.onMessage?.((content.data ?? {}) as JsonObject, buffers);
  }

  handleClose(content: JsonObject): void {
    const id = String(content.comm_id ?? "");
    const comm = this.comms.get(id);
    if (!comm) return;
    this.comms.delete(id);
    comm.onClose?.((content.data ?? {}) as JsonObject);
  }

  info(targetName?: string): Record<string, { target_name: string }> {
    const out: Record<string, { target_name: string }> = {};
    for (const c of this.comms.values()) {
      if (!targetName || c.target === targetName) out[c.id] = { target_name: c.target };
    }
    return out;
  }
}
