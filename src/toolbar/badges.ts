/**
 * Step badges: a small label (`local · 2G`) in the prompt column of every
 * step cell of an nbscale notebook, so that which cells run elsewhere is
 * visible without selecting them (the toolbar shows on the active cell only).
 *
 * The badge is a plain DOM node inside the cell's input area, derived from
 * the cell source on every change; the `showBadges` setting adds or removes
 * them live.
 */
import { Cell } from '@jupyterlab/cells';
import type { CommandRegistry } from '@lumino/commands';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';

import { isNbscalePanel, readCellStep } from '../cells';
import { targetLabel, targetShortLabel } from '../labels';
import { INbscaleSettings } from '../tokens';
import { stepSummary } from './model';
import { openStepMenu } from './widget';

const BADGE_CLASS = 'jp-nbscale-StepBadge';
const HOST_CLASS = 'jp-nbscale-mod-badged';

/** Keeps the badges of one notebook in step with its cells. */
export class NotebookBadges {
  constructor(
    private readonly _panel: NotebookPanel,
    private readonly _settings: INbscaleSettings,
    private readonly _trans: TranslationBundle,
    private readonly _commands: CommandRegistry
  ) {
    const notebook = _panel.content;
    notebook.model?.cells.changed.connect(this._scheduleAll, this);
    notebook.modelChanged.connect(this._scheduleAll, this);
    _panel.sessionContext.kernelChanged.connect(this._scheduleAll, this);
    _settings.changed.connect(this._scheduleAll, this);
    void _panel.revealed.then(() => this._updateAll());
    _panel.disposed.connect(() => this.dispose());
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._panel.content.model?.cells.changed.disconnect(
      this._scheduleAll,
      this
    );
    this._settings.changed.disconnect(this._scheduleAll, this);
  }

  /** Coalesce bursts (a paste of 100 cells) into one pass per frame. */
  private _scheduleAll(): void {
    if (this._scheduled || this._disposed) {
      return;
    }
    this._scheduled = true;
    requestAnimationFrame(() => {
      this._scheduled = false;
      this._updateAll();
    });
  }

  private _updateAll(): void {
    if (this._disposed || this._panel.isDisposed) {
      return;
    }
    const show =
      this._settings.values.showBadges && isNbscalePanel(this._panel);
    for (const cell of this._panel.content.widgets) {
      if (!this._watched.has(cell)) {
        this._watched.add(cell);
        cell.model.contentChanged.connect(() => this._update(cell));
        cell.disposed.connect(() => this._watched.delete(cell));
      }
      this._update(cell, show);
    }
  }

  private _update(cell: Cell, show?: boolean): void {
    if (cell.isDisposed || !cell.model) {
      return;
    }
    const visible =
      show ?? (this._settings.values.showBadges && isNbscalePanel(this._panel));
    const host = cell.inputArea?.node;
    if (!host) {
      return;
    }
    let badge = host.querySelector<HTMLElement>(`:scope > .${BADGE_CLASS}`);
    const { line, options } =
      cell.model.type === 'code'
        ? readCellStep(cell.model)
        : { line: null, options: null };
    if (!visible || line === null) {
      badge?.remove();
      host.classList.remove(HOST_CLASS);
      return;
    }
    if (!badge) {
      // a button: it opens the step menu, also when JupyterLab hides the
      // cell toolbar because a long %%step line would run under it
      const b = document.createElement('button');
      b.type = 'button';
      b.className = BADGE_CLASS;
      b.setAttribute('data-lm-suppress-shortcuts', 'true');
      b.setAttribute('aria-haspopup', 'menu');
      b.addEventListener('click', event => {
        event.stopPropagation();
        openStepMenu({
          commands: this._commands,
          trans: this._trans,
          cellId: cell.model.id,
          anchor: b
        });
      });
      badge = b;
      host.appendChild(badge);
      host.classList.add(HOST_CLASS);
    }
    const trans = this._trans;
    const defaultTarget = this._settings.values.defaultTarget;
    const text = options
      ? stepSummary(options, defaultTarget, t => targetShortLabel(trans, t))
      : trans.__('invalid step');
    badge.textContent = text;
    badge.dataset.target = options ? (options.on ?? defaultTarget) : 'invalid';
    const long = options
      ? trans.__(
          'Step on %1',
          stepSummary(options, defaultTarget, t => targetLabel(trans, t))
        )
      : trans.__('The %1 line does not parse', '%%step');
    badge.title = trans.__('%1 — click to change', long);
    badge.setAttribute('aria-label', long);
  }

  private _watched = new Set<Cell>();
  private _scheduled = false;
  private _disposed = false;
}
