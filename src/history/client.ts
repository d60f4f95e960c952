/**
 * Talks to the kernel's `nbscale.history` comm target
 * (kernel/src/session/comm-handlers/history.ts): one comm per kernel,
 * opened on first use and reopened after the kernel restarted; requests
 * carry a `req` number that the kernel echoes, so replies find their caller.
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

import { IExecutionDetail, IExecutionsPage, IVersionsReply } from './types';

export const HISTORY_TARGET = 'nbscale.history';

/** No kernel answer for this long means the kernel is busy or gone. */
const TIMEOUT_MS = 120 * 1000;

interface IPending {
  resolve: (data: JSONObject) => void;
  reject: (e: Error) => void;
  timer: number;
}

export class HistoryClient {
  constructor(readonly kernel: Kernel.IKernelConnection) {}

  get isDisposed(): boolean {
    return this._disposed;
  }

  executions(
    offset: number,
    limit: number,
    variable?: string
  ): Promise<IExecutionsPage> {
    const data: JSONObject = { request: 'executions', offset, limit };
    if (variable) {
      data.variable = variable;
    }
    return this._request(data) as unknown as Promise<IExecutionsPage>;
  }

  execution(id: string): Promise<IExecutionDetail> {
    return this._request({ request: 'execution', id }).then(
      r => r.execution as unknown as IExecutionDetail
    );
  }

  versions(name: string): Promise<IVersionsReply> {
    return this._request({
      request: 'versions',
      name
    }) as unknown as Promise<IVersionsReply>;
  }

  variables(): Promise<string[]> {
    return this._request({ request: 'variables' }).then(
      r => (r.names as string[]) ?? []
    );
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._failAll(new Error('closed'));
    if (this._comm && !this._comm.isDisposed) {
      try {
        this._comm.close();
      } catch {
        // the kernel may already be gone
      }
    }
    this._comm = null;
  }

  private _ensureComm(): Kernel.IComm {
    if (this._comm && !this._comm.isDisposed) {
      return this._comm;
    }
    const comm = this.kernel.createComm(HISTORY_TARGET);
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as JSONObject;
      const req = data.req as number;
      const pending = this._pending.get(req);
      if (!pending) {
        return;
      }
      this._pending.delete(req);
      window.clearTimeout(pending.timer);
      if (typeof data.error === 'string') {
        pending.reject(new Error(data.error));
      } else {
        pending.resolve(data);
      }
    };
    comm.onClose = (msg: KernelMessage.ICommCloseMsg) => {
      const why = (msg.content.data as JSONObject)?.error;
      this._failAll(
        new Error(
          typeof why === 'string'
            ? why
            : 'the kernel closed the history channel'
        )
      );
      this._comm = null;
    };
    comm.open({});
    this._comm = comm;
    return comm;
  }

  private _request(data: JSONObject): Promise<JSONObject> {
    if (this._disposed || this.kernel.isDisposed) {
      return Promise.reject(new Error('no kernel'));
    }
    const req = ++this._counter;
    return new Promise<JSONObject>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        this._pending.delete(req);
        reject(
          new Error('the kernel did not answer (is a cell still running?)')
        );
      }, TIMEOUT_MS);
      this._pending.set(req, { resolve, reject, timer });
      try {
        this._ensureComm().send({ ...data, req });
      } catch (e) {
        this._pending.delete(req);
        window.clearTimeout(timer);
        reject(e as Error);
      }
    });
  }

  private _failAll(e: Error): void {
    for (const p of this._pending.values()) {
      window.clearTimeout(p.timer);
      p.reject(e);
    }
    this._pending.clear();
  }

  private _comm: Kernel.IComm | null = null;
  private _counter = 0;
  private _pending = new Map<number, IPending>();
  private _disposed = false;
}
