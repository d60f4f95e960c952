/**
 * What an execution tells the history beyond its code and output. Plain cells
 * leave most of it empty; `%%step` handlers fill in where and how it ran.
 */
export interface ExecutionMeta {
  /** The step's name and parsed `%%step` options, for step cells. */
  step?: { name: string; options: Record<string, unknown> };
  /** kernel | local | batch | slurm. */
  target?: string;
  /** Names read from the session, with the artifact versions they had. */
  inputs?: Record<string, { version: number | string; sha256: string }>;
  /** Values the execution produced, by name (recorded as new versions when their bytes changed). */
  outputs?: Record<string, unknown>;
  /** TypeScript type text of outputs, so a restore can rebind with the type. */
  outputTypes?: Record<string, string>;
  /** Where it ran: worker id, host, pid, or a job id. */
  worker?: { id?: string; host?: string; pid?: number; job?: string };
  /** Requested and peak resident memory in bytes. */
  memory?: { requestedBytes?: number; peakBytes?: number };
  /** Retry attempts made (1 = first try succeeded). */
  attempts?: number;
  /** `--foreach`: its items, each recorded as an execution of its own linked to this one. */
  items?: ItemExecution[];
}

/** One `--foreach` item as it ran: what the history records about it. */
export interface ItemExecution {
  index: number;
  status: "ok" | "error";
  error?: { ename: string; evalue: string; traceback: string[] } | null;
  started: Date;
  finished: Date;
  /** The item's own values of the names the body declares. */
  outputs: Record<string, unknown>;
  outputTypes: Record<string, string>;
  worker?: { id?: string; host?: string; pid?: number };
  memory?: { requestedBytes?: number; peakBytes?: number };
  attempts: number;
  stdout: string;
  stderr: string;
}
