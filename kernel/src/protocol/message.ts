import { randomUUID } from "node:crypto";

export const PROTOCOL_VERSION = "5.3";

export interface MessageHeader {
  msg_id: string;
  msg_type: string;
  session: string;
  username: string;
  date: string;
  version: string;
  subshell_id?: string | null;
}

export type JsonObject = { [key: string]: unknown };

/** A decoded Jupyter message (identities kept for routing the reply). */
export interface JupyterMessage<C = JsonObject> {
  identities: Buffer[];
  header: MessageHeader;
  parent_header: Partial<MessageHeader>;
  metadata: JsonObject;
  content: C;
  buffers: Buffer[];
}

export function newHeader(msgType: string, session: string): MessageHeader {
  return {
    msg_id: randomUUID(),
    msg_type: msgType,
    session,
    username: "nbscale",
    date: new Date().toISOString(),
    version: PROTOCOL_VERSION,
  };
}
