/**
 * Keeps the nbscale kernel told which notebook it serves.
 *
 * The kernel records every execution under the notebook's path, but the
 * server hands it that path only once, at start (`JPY_SESSION_NAME`), and
 * again unchanged after a restart. So after a rename or a move — and after
 * every (re)start, to cover a rename that happened before it — the current
 * path goes to the kernel's `nbscale.notebook` comm, which records the
 * rename so the notebook's history follows it
 * (kernel/src/session/comm-handlers/notebook.ts).
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { IDisposable } from '@lumino/disposable';
import { JSONObject } from '@lumino/coreutils';

import { KERNEL_NAME } from '../tokens';

export const NOTEBOOK_TARGET = 'nbscale.notebook';

/** How long to wait for the kernel's answer before closing the comm anyway. */
const ANSWER_TIMEOUT_MS = 60 * 1000;

/** The parts of a notebook panel the reporter needs (a panel has them). */
export interface IReportedNotebook {
  readonly sessionContext: ISessionContext;
  readonly context: Pick<
    DocumentRegistry.IContext<any>,
    'path' | 'pathChanged'
  >;
}

export class NotebookPathReporter implements IDisposable {
  constructor(
    private readonly _panel: IReportedNotebook,
    private readonly _onError: (message: string) => void = message =>
      console.warn(`nbscale: ${message}`)
  ) {
    const sc = _panel.sessionContext;
    sc.kernelChanged.connect(this._onKernelChanged, this);
    sc.statusChanged.connect(this._onStatus, this);
    _panel.context.pathChanged.connect(this._report, this);
    this._report();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  /** The path last sent to the current kernel process (null: none yet). */
  get reported(): string | null {
    return this._reported;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    const sc = this._panel.sessionContext;
    sc.kernelChanged.disconnect(this._onKernelChanged, this);
    sc.statusChanged.disconnect(this._onStatus, this);
    this._panel.context.pathChanged.disconnect(this._report, this);
  }

  private _onKernelChanged(): void {
    this._reported = null;
    this._report();
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (
      status === 'starting' ||
      status === 'restarting' ||
      status === 'autorestarting'
    ) {
      // A new kernel process starts with the server's (possibly stale) name.
      this._reported = null;
    } else if (status === 'idle') {
      this._report();
    }
  }

  private _report(): void {
    if (this._disposed) {
      return;
    }
    const kernel = this._panel.sessionContext.session?.kernel;
    if (!kernel || kernel.isDisposed || kernel.name !== KERNEL_NAME) {
      return;
    }
    if (kernel.status !== 'idle' && kernel.status !== 'busy') {
      return; // not connected yet: the next 'idle' reports
    }
    const path = this._panel.context.path;
    if (this._reported === path) {
      return;
    }
    this._reported = path;
    this._send(kernel, path);
  }

  private _send(kernel: Kernel.IKernelConnection, path: string): void {
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(NOTEBOOK_TARGET);
    } catch (e) {
      this._reported = null;
      this._onError(`could not tell the kernel the notebook's path: ${e}`);
      return;
    }
    const done = () => {
      window.clearTimeout(timer);
      if (!comm.isDisposed) {
        comm.close();
      }
    };
    const timer = window.setTimeout(done, ANSWER_TIMEOUT_MS);
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as JSONObject;
      if (typeof data.error === 'string') {
        this._onError(`the kernel kept its notebook name: ${data.error}`);
      }
      done();
    };
    comm.open({ path });
  }

  private _disposed = false;
  private _reported: string | null = null;
}
