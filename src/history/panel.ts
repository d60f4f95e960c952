/**
 * The history sidebar: the current notebook's recorded executions, newest
 * first, a page at a time (so 1,000+ executions cost one page of DOM), with
 * a variable filter; an execution's detail (code, inputs and outputs with
 * versions, sizes and where each input came from, logs); and a variable's
 * versions, each with "Load into kernel".
 *
 * It holds no data of its own: every view is a request to the kernel's
 * `nbscale.history` comm, which reads the datastore, so the history is the
 * same after a kernel restart.
 */
import { Time } from '@jupyterlab/coreutils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { isNbscalePanel } from '../cells';
import { targetLabel } from '../labels';
import { formatBytes, formatElapsed } from '../status/format';
import { HistoryClient } from './client';
import {
  IExecutionDetail,
  IExecutionRow,
  IExecutionsPage,
  IVersionsReply
} from './types';

export interface IHistoryPanelOptions {
  trans: TranslationBundle;
  pageSize: () => number;
  /** Runs `%restore NAME@VERSION` in the notebook's kernel. */
  restore: (
    panel: NotebookPanel,
    name: string,
    version: number
  ) => Promise<void>;
}

type View =
  | { kind: 'list' }
  | { kind: 'execution'; id: string }
  | { kind: 'versions'; name: string };

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  className = '',
  text?: string
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  if (className) {
    node.className = className;
  }
  if (text !== undefined) {
    node.textContent = text;
  }
  return node;
}

function button(
  label: string,
  className: string,
  onClick: () => void,
  aria?: string
): HTMLButtonElement {
  const b = el('button', `jp-Button jp-mod-minimal ${className}`, label);
  b.type = 'button';
  if (aria) {
    // a description, not a label: the accessible name stays the visible text
    b.title = aria;
  }
  b.addEventListener('click', onClick);
  return b;
}

/** The short form of an execution id: its random suffix. */
export function shortId(id: string): string {
  return id.slice(id.lastIndexOf('-') + 1);
}

export class HistoryPanel extends Widget {
  constructor(options: IHistoryPanelOptions) {
    super();
    this._trans = options.trans;
    this._options = options;
    this.addClass('jp-nbscale-History');
    const trans = this._trans;
    this.title.caption = trans.__('nbscale execution history');

    const header = el('div', 'jp-nbscale-History-header');
    header.appendChild(
      el('h2', 'jp-nbscale-History-title', trans.__('Execution history'))
    );
    this._notebookLabel = el('div', 'jp-nbscale-History-notebook');
    header.appendChild(this._notebookLabel);
    header.appendChild(
      button(
        trans.__('Refresh'),
        'jp-nbscale-History-refresh',
        () => void this.refresh(),
        trans.__('Reload the history from the datastore')
      )
    );
    this.node.appendChild(header);

    const filter = el('div', 'jp-nbscale-History-filter');
    const input = el('input', 'jp-mod-styled jp-nbscale-History-filterInput');
    input.type = 'search';
    input.placeholder = trans.__('Filter by variable');
    input.setAttribute('aria-label', trans.__('Filter executions by variable'));
    input.setAttribute('list', `${this.id || 'nbscale-history'}-variables`);
    const datalist = el('datalist');
    datalist.id = `${this.id || 'nbscale-history'}-variables`;
    input.addEventListener('change', () => this._setFilter(input.value));
    input.addEventListener('keydown', e => {
      if (e.key === 'Enter') {
        this._setFilter(input.value);
      }
    });
    filter.appendChild(input);
    filter.appendChild(datalist);
    this._filterInput = input;
    this._datalist = datalist;
    this.node.appendChild(filter);

    this._body = el('div', 'jp-nbscale-History-body');
    this.node.appendChild(this._body);
  }

  /** Follow a notebook (null: none is current). */
  setNotebook(panel: NotebookPanel | null): void {
    if (panel === this._notebook) {
      return;
    }
    if (this._notebook) {
      this._notebook.sessionContext.iopubMessage.disconnect(
        this._onIopub,
        this
      );
      this._notebook.sessionContext.kernelChanged.disconnect(
        this._onKernelChanged,
        this
      );
    }
    this._notebook = panel;
    this._view = { kind: 'list' };
    this._offset = 0;
    this._resetClient();
    if (panel) {
      panel.sessionContext.iopubMessage.connect(this._onIopub, this);
      panel.sessionContext.kernelChanged.connect(this._onKernelChanged, this);
    }
    void this.refresh();
  }

  /** Re-read the current view from the kernel. */
  async refresh(): Promise<void> {
    if (!this.isVisible) {
      this._stale = true;
      return;
    }
    this._stale = false;
    const trans = this._trans;
    const panel = this._notebook;
    this._notebookLabel.textContent = panel ? panel.context.path : '';
    if (!panel) {
      return this._message(trans.__('Open a notebook to see its history.'));
    }
    await panel.sessionContext.ready;
    if (!isNbscalePanel(panel)) {
      return this._message(
        trans.__(
          'This notebook does not use the nbscale kernel; nbscale records executions of "TypeScript (nbscale)" notebooks only.'
        )
      );
    }
    const client = this._clientFor(panel);
    if (!client) {
      return this._message(trans.__('Waiting for the kernel…'));
    }
    const token = ++this._generation;
    const view = this._view;
    this.node.setAttribute('aria-busy', 'true');
    try {
      if (view.kind === 'list') {
        const page = await client.executions(
          this._offset,
          this._options.pageSize(),
          this._filter || undefined
        );
        if (token === this._generation) {
          this._renderList(page);
        }
        void client.variables().then(names => this._fillDatalist(names));
      } else if (view.kind === 'execution') {
        const detail = await client.execution(view.id);
        if (token === this._generation) {
          this._renderExecution(detail);
        }
      } else {
        const versions = await client.versions(view.name);
        if (token === this._generation) {
          this._renderVersions(versions);
        }
      }
    } catch (e) {
      if (token === this._generation) {
        this._message(
          trans.__('Could not read the history: %1', (e as Error).message),
          true
        );
      }
    } finally {
      if (token === this._generation) {
        this.node.removeAttribute('aria-busy');
      }
    }
  }

  /** Show the list filtered by a variable ('' for all). */
  filterBy(variable: string): void {
    this._filterInput.value = variable;
    this._setFilter(variable);
  }

  showExecution(id: string): void {
    this._go({ kind: 'execution', id });
  }

  showVersions(name: string): void {
    this._go({ kind: 'versions', name });
  }

  dispose(): void {
    this._client?.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    if (this._stale) {
      void this.refresh();
    }
  }

  private _go(view: View): void {
    this._back.push(this._view);
    this._view = view;
    void this.refresh();
  }

  private _goBack(): void {
    this._view = this._back.pop() ?? { kind: 'list' };
    void this.refresh();
  }

  private _setFilter(value: string): void {
    const v = value.trim();
    if (v === this._filter && this._view.kind === 'list') {
      return;
    }
    this._filter = v;
    this._offset = 0;
    this._view = { kind: 'list' };
    this._back = [];
    void this.refresh();
  }

  private _resetClient(): void {
    this._client?.dispose();
    this._client = null;
  }

  private _clientFor(panel: NotebookPanel): HistoryClient | null {
    const kernel = panel.sessionContext.session?.kernel ?? null;
    if (!kernel) {
      return null;
    }
    if (!this._client || this._client.kernel !== kernel) {
      this._resetClient();
      this._client = new HistoryClient(kernel);
    }
    return this._client;
  }

  private _onKernelChanged(): void {
    this._resetClient();
    void this.refresh();
  }

  /** A cell finished (the kernel is idle after an execute): new history. */
  private _onIopub(_: unknown, msg: any): void {
    if (
      msg.header?.msg_type === 'status' &&
      msg.content?.execution_state === 'idle' &&
      msg.parent_header?.msg_type === 'execute_request'
    ) {
      if (this._refreshTimer !== null) {
        window.clearTimeout(this._refreshTimer);
      }
      this._refreshTimer = window.setTimeout(() => {
        this._refreshTimer = null;
        if (this._view.kind === 'list' || this._view.kind === 'versions') {
          void this.refresh();
        }
      }, 300);
    }
  }

  private _fillDatalist(names: string[]): void {
    this._datalist.textContent = '';
    for (const name of names.slice(0, 1000)) {
      const option = el('option');
      option.value = name;
      this._datalist.appendChild(option);
    }
  }

  private _message(text: string, error = false): void {
    this._body.textContent = '';
    this._body.appendChild(
      el('p', `jp-nbscale-History-message${error ? ' jp-mod-error' : ''}`, text)
    );
  }

  private _renderList(page: IExecutionsPage): void {
    const trans = this._trans;
    const body = this._body;
    body.textContent = '';
    // where the kernel reads from: shown in the tooltip, handy in bug reports
    this._notebookLabel.title = trans.__(
      '%1 — recorded in %2',
      page.notebook,
      page.datastore
    );
    this.node.dataset.notebook = page.notebook;
    this.node.dataset.datastore = page.datastore;
    this.node.dataset.total = String(page.total);
    if (page.total === 0) {
      this._message(
        this._filter
          ? trans.__('No execution read or wrote %1.', this._filter)
          : trans.__('No executions recorded yet. Run a cell.')
      );
      return;
    }
    const list = el('ul', 'jp-nbscale-History-list');
    list.setAttribute('aria-label', trans.__('Executions, newest first'));
    for (const row of page.executions) {
      list.appendChild(this._renderRow(row));
    }
    body.appendChild(list);

    const pager = el('div', 'jp-nbscale-History-pager');
    const first = page.offset + 1;
    const last = page.offset + page.executions.length;
    pager.appendChild(
      el(
        'span',
        'jp-nbscale-History-range',
        trans.__('%1–%2 of %3', first, last, page.total)
      )
    );
    const size = this._options.pageSize();
    const prev = button(trans.__('Newer'), 'jp-nbscale-History-prev', () => {
      this._offset = Math.max(0, this._offset - size);
      void this.refresh();
    });
    prev.disabled = page.offset === 0;
    const next = button(trans.__('Older'), 'jp-nbscale-History-next', () => {
      this._offset = this._offset + size;
      void this.refresh();
    });
    next.disabled = last >= page.total;
    pager.appendChild(prev);
    pager.appendChild(next);
    body.appendChild(pager);
  }

  private _renderRow(row: IExecutionRow): HTMLElement {
    const trans = this._trans;
    const li = el('li', 'jp-nbscale-History-row');
    li.dataset.status = row.status;
    li.dataset.id = row.id;
    const open = el('button', 'jp-nbscale-History-open');
    open.type = 'button';
    const when = new Date(row.started);
    const label =
      row.step ??
      (row.executionCount !== null
        ? trans.__('cell [%1]', row.executionCount)
        : trans.__('cell'));
    open.appendChild(
      el(
        'span',
        `jp-nbscale-History-status jp-mod-${row.status}`,
        row.status === 'ok' ? '✓' : row.status === 'error' ? '✗' : '–'
      )
    );
    open.appendChild(el('span', 'jp-nbscale-History-cell', label));
    open.appendChild(
      el('span', 'jp-nbscale-History-target', targetLabel(trans, row.target))
    );
    open.appendChild(
      el(
        'span',
        'jp-nbscale-History-duration',
        row.durationMs === null ? '' : formatElapsed(row.durationMs)
      )
    );
    const time = el('time', 'jp-nbscale-History-when', Time.formatHuman(when));
    time.dateTime = row.started;
    time.title = Time.format(when);
    open.appendChild(time);
    open.appendChild(el('code', 'jp-nbscale-History-code', row.firstLine));
    const outs = Object.entries(row.outputs);
    if (outs.length > 0) {
      open.appendChild(
        el(
          'span',
          'jp-nbscale-History-outputs',
          outs.map(([n, o]) => `${n}@${o.version}`).join(' ')
        )
      );
    }
    open.setAttribute(
      'aria-label',
      trans.__(
        '%1 on %2, %3, %4: %5',
        label,
        targetLabel(trans, row.target),
        row.status === 'ok' ? trans.__('succeeded') : trans.__('failed'),
        Time.formatHuman(when),
        row.firstLine
      )
    );
    open.addEventListener('click', () => this.showExecution(row.id));
    li.appendChild(open);
    return li;
  }

  private _nav(title: string): HTMLElement {
    const trans = this._trans;
    const nav = el('div', 'jp-nbscale-History-nav');
    nav.appendChild(
      button('‹ ' + trans.__('Back'), 'jp-nbscale-History-back', () =>
        this._goBack()
      )
    );
    nav.appendChild(el('h3', 'jp-nbscale-History-subtitle', title));
    return nav;
  }

  private _varButton(name: string, version: number): HTMLElement {
    const trans = this._trans;
    return button(
      `${name}@${version}`,
      'jp-nbscale-History-var',
      () => this.showVersions(name),
      trans.__('Versions of %1', name)
    );
  }

  private _renderExecution(d: IExecutionDetail): void {
    const trans = this._trans;
    const body = this._body;
    body.textContent = '';
    const title =
      d.step ??
      (d.executionCount !== null
        ? trans.__('cell [%1]', d.executionCount)
        : trans.__('cell'));
    body.appendChild(this._nav(title));
    const detail = el('div', 'jp-nbscale-History-detail');
    detail.dataset.id = d.id;

    const facts = el('dl', 'jp-nbscale-History-facts');
    const fact = (k: string, v: string): void => {
      facts.appendChild(el('dt', '', k));
      facts.appendChild(el('dd', '', v));
    };
    fact(trans.__('Status'), d.error ? d.error : d.status);
    fact(trans.__('Target'), targetLabel(trans, d.target));
    fact(
      trans.__('Started'),
      `${Time.format(new Date(d.started))} (${Time.formatHuman(new Date(d.started))})`
    );
    if (d.durationMs !== null) {
      fact(trans.__('Duration'), formatElapsed(d.durationMs));
    }
    const worker = [d.worker.host, d.worker.pid, d.worker.id]
      .filter(x => x !== null && x !== undefined && x !== '')
      .join(' · ');
    if (worker) {
      fact(trans.__('Worker'), worker);
    }
    if (d.memory.requestedBytes !== null || d.memory.peakBytes !== null) {
      fact(
        trans.__('Memory'),
        [
          d.memory.peakBytes !== null
            ? trans.__('%1 peak', formatBytes(d.memory.peakBytes))
            : null,
          d.memory.requestedBytes !== null
            ? trans.__('%1 requested', formatBytes(d.memory.requestedBytes))
            : null
        ]
          .filter(Boolean)
          .join(' · ')
      );
    }
    fact(trans.__('Execution'), d.id);
    detail.appendChild(facts);

    detail.appendChild(el('h4', '', trans.__('Code')));
    detail.appendChild(el('pre', 'jp-nbscale-History-source', d.code));

    // lineage: inputs (with the execution that produced them) → outputs
    detail.appendChild(el('h4', '', trans.__('Inputs')));
    if (d.inputs.length === 0) {
      detail.appendChild(el('p', 'jp-nbscale-History-none', trans.__('none')));
    } else {
      const table = el('table', 'jp-nbscale-History-vars');
      for (const i of d.inputs) {
        const tr = el('tr');
        const name = el('td');
        name.appendChild(this._varButton(i.name, i.version));
        tr.appendChild(name);
        tr.appendChild(
          el('td', '', i.size === null ? '' : formatBytes(i.size))
        );
        tr.appendChild(el('td', 'jp-nbscale-History-type', i.type ?? ''));
        const from = el('td');
        if (i.producedBy) {
          const producedBy = i.producedBy;
          from.appendChild(
            button(
              trans.__('from %1', shortId(producedBy)),
              'jp-nbscale-History-from',
              () => this.showExecution(producedBy),
              trans.__(
                'Show the execution that produced %1@%2',
                i.name,
                i.version
              )
            )
          );
        }
        tr.appendChild(from);
        table.appendChild(tr);
      }
      detail.appendChild(table);
    }
    detail.appendChild(el('h4', '', trans.__('Outputs')));
    if (d.outputs.length === 0) {
      detail.appendChild(el('p', 'jp-nbscale-History-none', trans.__('none')));
    } else {
      const table = el('table', 'jp-nbscale-History-vars');
      for (const o of d.outputs) {
        const tr = el('tr');
        const name = el('td');
        name.appendChild(this._varButton(o.name, o.version));
        tr.appendChild(name);
        tr.appendChild(el('td', '', formatBytes(o.size)));
        tr.appendChild(el('td', 'jp-nbscale-History-type', o.type));
        tr.appendChild(
          el('td', '', o.newVersion ? trans.__('new') : trans.__('unchanged'))
        );
        table.appendChild(tr);
      }
      detail.appendChild(table);
    }

    for (const [label, log] of [
      [trans.__('Output (stdout)'), d.stdout],
      [trans.__('Errors (stderr)'), d.stderr]
    ] as const) {
      if (log.size === 0) {
        continue;
      }
      detail.appendChild(el('h4', '', label));
      detail.appendChild(el('pre', 'jp-nbscale-History-log', log.text));
      if (log.cut) {
        detail.appendChild(
          el(
            'p',
            'jp-nbscale-History-none',
            trans.__(
              'Cut at %1 of %2; `nbscale show %3` prints it all.',
              formatBytes(log.text.length),
              formatBytes(log.size),
              shortId(d.id)
            )
          )
        );
      }
    }
    if (d.displayCount > 0) {
      detail.appendChild(
        el(
          'p',
          'jp-nbscale-History-none',
          trans._n(
            '%1 rich output recorded',
            '%1 rich outputs recorded',
            d.displayCount
          )
        )
      );
    }
    body.appendChild(detail);
  }

  private _renderVersions(reply: IVersionsReply): void {
    const trans = this._trans;
    const body = this._body;
    body.textContent = '';
    body.appendChild(this._nav(trans.__('Versions of %1', reply.name)));
    const actions = el('div', 'jp-nbscale-History-actions');
    actions.appendChild(
      button(
        trans.__('Executions using %1', reply.name),
        'jp-nbscale-History-filterBy',
        () => this.filterBy(reply.name)
      )
    );
    body.appendChild(actions);
    if (reply.versions.length === 0) {
      this._body.appendChild(
        el('p', 'jp-nbscale-History-message', trans.__('No versions recorded.'))
      );
      return;
    }
    if (reply.scope === 'all') {
      body.appendChild(
        el(
          'p',
          'jp-nbscale-History-none',
          trans.__('Recorded by other notebooks (none by this one).')
        )
      );
    }
    const list = el('ul', 'jp-nbscale-History-versions');
    for (const v of reply.versions) {
      const li = el('li', 'jp-nbscale-History-version');
      li.dataset.version = String(v.version);
      const head = el('div', 'jp-nbscale-History-versionHead');
      head.appendChild(
        el(
          'span',
          'jp-nbscale-History-versionName',
          `${reply.name}@${v.version}`
        )
      );
      head.appendChild(el('span', '', formatBytes(v.size)));
      head.appendChild(el('span', 'jp-nbscale-History-type', v.type));
      const time = el(
        'time',
        'jp-nbscale-History-when',
        Time.formatHuman(new Date(v.created))
      );
      time.dateTime = v.created;
      time.title = Time.format(new Date(v.created));
      head.appendChild(time);
      li.appendChild(head);
      const row = el('div', 'jp-nbscale-History-versionActions');
      const load = button(
        trans.__('Load into kernel'),
        'jp-nbscale-History-load',
        () => {
          const panel = this._notebook;
          if (!panel) {
            return;
          }
          load.disabled = true;
          void this._options
            .restore(panel, reply.name, v.version)
            .finally(() => (load.disabled = false));
        },
        trans.__(
          'Run %1 in the notebook’s kernel',
          `%restore ${reply.name}@${v.version}`
        )
      );
      // the one action here that changes something: a real button
      load.className =
        'jp-Button jp-mod-styled jp-mod-accept jp-nbscale-History-load';
      row.appendChild(load);
      if (v.execution) {
        const execution = v.execution;
        row.appendChild(
          button(
            trans.__('Produced by %1', shortId(execution)),
            'jp-nbscale-History-from',
            () => this.showExecution(execution)
          )
        );
      }
      li.appendChild(row);
      list.appendChild(li);
    }
    body.appendChild(list);
  }

  private _trans: TranslationBundle;
  private _options: IHistoryPanelOptions;
  private _notebookLabel: HTMLElement;
  private _filterInput: HTMLInputElement;
  private _datalist: HTMLDataListElement;
  private _body: HTMLElement;
  private _notebook: NotebookPanel | null = null;
  private _client: HistoryClient | null = null;
  private _view: View = { kind: 'list' };
  private _back: View[] = [];
  private _filter = '';
  private _offset = 0;
  private _generation = 0;
  private _stale = false;
  private _refreshTimer: number | null = null;
}
