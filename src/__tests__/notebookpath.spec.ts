/**
 * NotebookPathReporter against a stand-in session (a Jupyter kernel can't
 * run under jest; the kernel side of the comm is tested for real in
 * tests/test_notebook_rename.py).
 */
import { Signal } from '@lumino/signaling';

import {
  IReportedNotebook,
  NOTEBOOK_TARGET,
  NotebookPathReporter
} from '../notebookpath/reporter';

class FakeComm {
  opened: unknown[] = [];
  closed = false;
  onMsg: ((msg: unknown) => void) | null = null;
  constructor(readonly target: string) {}
  get isDisposed(): boolean {
    return this.closed;
  }
  open(data: unknown): void {
    this.opened.push(data);
  }
  close(): void {
    this.closed = true;
  }
  answer(data: unknown): void {
    this.onMsg?.({ content: { data } });
  }
}

class FakeKernel {
  comms: FakeComm[] = [];
  isDisposed = false;
  constructor(
    public name: string,
    public status: string
  ) {}
  createComm(target: string): FakeComm {
    const c = new FakeComm(target);
    this.comms.push(c);
    return c;
  }
}

class FakePanel {
  kernel: FakeKernel | null;
  path: string;
  readonly kernelChanged = new Signal<any, unknown>(this);
  readonly statusChanged = new Signal<any, string>(this);
  readonly pathChanged = new Signal<any, string>(this);
  constructor(kernel: FakeKernel | null, path: string) {
    this.kernel = kernel;
    this.path = path;
  }
  get asNotebook(): IReportedNotebook {
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const self = this;
    return {
      sessionContext: {
        get session() {
          return self.kernel ? { kernel: self.kernel } : null;
        },
        kernelChanged: this.kernelChanged,
        statusChanged: this.statusChanged
      } as any,
      context: {
        get path() {
          return self.path;
        },
        pathChanged: this.pathChanged
      } as any
    };
  }
  sentPaths(): unknown[] {
    return (this.kernel?.comms ?? []).flatMap(c => c.opened);
  }
}

describe('NotebookPathReporter', () => {
  it('tells an nbscale kernel the path on start, after renames, and after restarts', () => {
    const panel = new FakePanel(new FakeKernel('nbscale', 'idle'), 'a.ipynb');
    const reporter = new NotebookPathReporter(panel.asNotebook);
    expect(panel.kernel!.comms.map(c => c.target)).toEqual([NOTEBOOK_TARGET]);
    expect(panel.sentPaths()).toEqual([{ path: 'a.ipynb' }]);

    // Same path again (an idle status): nothing new is sent.
    panel.statusChanged.emit('idle');
    expect(panel.sentPaths()).toHaveLength(1);

    panel.path = 'dir/b.ipynb';
    panel.pathChanged.emit('dir/b.ipynb');
    expect(panel.sentPaths()).toEqual([
      { path: 'a.ipynb' },
      { path: 'dir/b.ipynb' }
    ]);

    // A restart starts a kernel that knows only the server's name: report again.
    panel.statusChanged.emit('restarting');
    panel.statusChanged.emit('idle');
    expect(panel.sentPaths()).toHaveLength(3);
    expect(reporter.reported).toBe('dir/b.ipynb');
    reporter.dispose();
  });

  it('closes the comm on the answer and surfaces a refusal', () => {
    const errors: string[] = [];
    const panel = new FakePanel(new FakeKernel('nbscale', 'idle'), 'a.ipynb');
    const reporter = new NotebookPathReporter(panel.asNotebook, m =>
      errors.push(m)
    );
    const comm = panel.kernel!.comms[0];
    comm.answer({ error: 'not a notebook path' });
    expect(comm.closed).toBe(true);
    expect(errors).toEqual([
      'the kernel kept its notebook name: not a notebook path'
    ]);
    reporter.dispose();
  });

  it('leaves other kernels alone and waits for a connected kernel', () => {
    const panel = new FakePanel(new FakeKernel('python3', 'idle'), 'a.ipynb');
    const reporter = new NotebookPathReporter(panel.asNotebook);
    expect(panel.sentPaths()).toEqual([]);

    panel.kernel = new FakeKernel('nbscale', 'starting');
    panel.kernelChanged.emit(null);
    expect(panel.sentPaths()).toEqual([]);
    panel.kernel.status = 'idle';
    panel.statusChanged.emit('idle');
    expect(panel.sentPaths()).toEqual([{ path: 'a.ipynb' }]);

    reporter.dispose();
    panel.path = 'b.ipynb';
    panel.pathChanged.emit('b.ipynb');
    expect(panel.sentPaths()).toHaveLength(1);
  });
});
