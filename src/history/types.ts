/**
 * The JSON the kernel's `nbscale.history` comm target answers with
 * (kernel/src/session/comm-handlers/history.ts).
 */

export interface IExecutionRow {
  id: string;
  cell: string;
  executionCount: number | null;
  /** The step's name; null for unnamed steps and plain cells. */
  step: string | null;
  isStep: boolean;
  target: string;
  status: 'ok' | 'error' | 'aborted' | string;
  /** `Ename: evalue` of a failed execution. */
  error: string | null;
  started: string;
  finished: string;
  durationMs: number | null;
  firstLine: string;
  inputs: Record<string, number>;
  outputs: Record<string, { version: number; newVersion: boolean }>;
}

export interface IExecutionsPage {
  notebook: string;
  datastore: string;
  offset: number;
  total: number;
  executions: IExecutionRow[];
}

export interface ILog {
  text: string;
  size: number;
  cut: boolean;
}

export interface IInputRef {
  name: string;
  version: number;
  sha256: string;
  size: number | null;
  type: string | null;
  /** Lineage: the execution that produced this version. */
  producedBy: string | null;
  producedByCell: string | null;
}

export interface IOutputRef {
  name: string;
  version: number;
  sha256: string;
  size: number;
  type: string;
  newVersion: boolean;
}

export interface IExecutionDetail extends Omit<
  IExecutionRow,
  'inputs' | 'outputs'
> {
  notebook: string | null;
  code: string;
  stdout: ILog;
  stderr: ILog;
  displayCount: number;
  errorDetail: { ename: string; evalue: string } | null;
  stepOptions: Record<string, unknown> | null;
  worker: { host: string; pid: number | null; id: string | null };
  memory: { requestedBytes: number | null; peakBytes: number | null };
  inputs: IInputRef[];
  outputs: IOutputRef[];
}

export interface IVersionRow {
  version: number;
  sha256: string;
  size: number;
  type: string;
  cell: string | null;
  execution: string | null;
  created: string;
  notebook: string | null;
}

export interface IVersionsReply {
  name: string;
  /** "all" when this notebook has no version and other notebooks' are shown. */
  scope: 'notebook' | 'all';
  versions: IVersionRow[];
}
