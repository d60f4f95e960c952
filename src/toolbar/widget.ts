/**
 * The cell toolbar control: a compact button on the active code cell of an
 * nbscale notebook that says where the cell runs (`local · 2G`, or "not a
 * step") and opens a menu to change target, memory, CPUs and GPUs.
 *
 * The menu items are the `nbscale:set-step-*` commands with the cell's id as
 * an argument, so the same actions are in the command palette (on the active
 * cell) and toggled items show the cell's current choice. The control reads
 * the cell's `%%step` line on every content change, so a hand-typed line is
 * reflected at once.
 */
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { TranslationBundle } from '@jupyterlab/translation';
import { MenuSvg } from '@jupyterlab/ui-components';
import type { CommandRegistry } from '@lumino/commands';
import type { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import { isNbscalePanel, readCellStep } from '../cells';
import { targetLabel, targetShortLabel } from '../labels';
import { STEP_TARGETS } from '../stepline';
import { CommandIDs, INbscaleSettings } from '../tokens';
import {
  CPU_CHOICES,
  GPU_CHOICES,
  MEMORY_CHOICES,
  memoryLabel,
  stepSummary
} from './model';

export interface IStepControlOptions {
  cell: Cell;
  /** The notebook the cell belongs to (null when it can't be found). */
  panel: NotebookPanel | null;
  commands: CommandRegistry;
  settings: INbscaleSettings;
  trans: TranslationBundle;
}

export class StepControl extends Widget {
  constructor(options: IStepControlOptions) {
    super({ node: document.createElement('div') });
    this.addClass('jp-nbscale-StepControl');
    this._cell = options.cell;
    this._panel = options.panel;
    this._commands = options.commands;
    this._settings = options.settings;
    this._trans = options.trans;

    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'jp-nbscale-StepControl-button';
    button.setAttribute('aria-haspopup', 'menu');
    button.setAttribute('aria-expanded', 'false');
    // Enter/Space on the focused button must press it, not trigger the
    // notebook's command-mode shortcuts (Enter = edit mode)
    button.setAttribute('data-lm-suppress-shortcuts', 'true');
    this._button = button;
    this.node.appendChild(button);

    this._cell.model.contentChanged.connect(this._refresh, this);
    this._settings.changed.connect(this._refresh, this);
    this._panel?.sessionContext.kernelChanged.connect(this._refresh, this);
    this._refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._menu?.dispose();
    // the model outlives this widget (the toolbar is rebuilt per activation)
    this._cell.model?.contentChanged.disconnect(this._refresh, this);
    this._settings.changed.disconnect(this._refresh, this);
    this._panel?.sessionContext.kernelChanged.disconnect(this._refresh, this);
    super.dispose();
  }

  handleEvent(event: Event): void {
    if (event.type === 'click') {
      this._openMenu();
    } else if (event.type === 'keydown') {
      const key = (event as KeyboardEvent).key;
      if (key === 'ArrowDown') {
        event.preventDefault();
        this._openMenu();
      }
    }
  }

  protected onAfterAttach(msg: Message): void {
    super.onAfterAttach(msg);
    this._button.addEventListener('click', this);
    this._button.addEventListener('keydown', this);
  }

  protected onBeforeDetach(msg: Message): void {
    this._button.removeEventListener('click', this);
    this._button.removeEventListener('keydown', this);
    super.onBeforeDetach(msg);
  }

  /** Show the cell's current choice; hide where nbscale doesn't apply. */
  private _refresh(): void {
    if (this.isDisposed || !this._cell.model) {
      return;
    }
    const applies =
      this._cell.model.type === 'code' &&
      (this._panel === null || isNbscalePanel(this._panel));
    this.setHidden(!applies);
    if (!applies) {
      return;
    }
    const trans = this._trans;
    const { line, options } = readCellStep(this._cell.model);
    const button = this._button;
    button.classList.toggle('jp-mod-step', line !== null);
    button.classList.toggle('jp-mod-invalid', line !== null && !options);
    let text: string;
    let description: string;
    if (line === null) {
      text = trans.__('not a step');
      description = trans.__('runs in the kernel, not as a step');
    } else if (!options) {
      text = trans.__('invalid step');
      description = trans.__(
        'the %1 line does not parse; run the cell to see why',
        '%%step'
      );
    } else {
      const defaultTarget = this._settings.values.defaultTarget;
      text = stepSummary(options, defaultTarget, t =>
        targetShortLabel(trans, t)
      );
      description = trans.__(
        'runs on %1',
        stepSummary(options, defaultTarget, t => targetLabel(trans, t))
      );
    }
    button.textContent = text;
    button.dataset.target =
      line === null
        ? 'none'
        : (options?.on ?? this._settings.values.defaultTarget);
    button.setAttribute(
      'aria-label',
      trans.__('Where this cell runs: %1. Change…', description)
    );
    button.title = trans.__('Where this cell runs: %1', description);
  }

  private _openMenu(): void {
    this._menu?.dispose();
    this._button.setAttribute('aria-expanded', 'true');
    this._menu = openStepMenu({
      commands: this._commands,
      trans: this._trans,
      cellId: this._cell.model.id,
      anchor: this._button,
      onClose: () => {
        this._button.setAttribute('aria-expanded', 'false');
        return !this.isDisposed && this.isVisible;
      }
    });
  }

  private _cell: Cell;
  private _panel: NotebookPanel | null;
  private _commands: CommandRegistry;
  private _settings: INbscaleSettings;
  private _trans: TranslationBundle;
  private _button: HTMLButtonElement;
  private _menu: MenuSvg | null = null;
}

/**
 * The step menu for one cell: "Not a step", the targets, and submenus for
 * memory, CPUs and GPUs. Used by the toolbar control and by the badges
 * (which stay visible when JupyterLab hides the cell toolbar because a long
 * first line would run under it).
 */
export function buildStepMenu(
  commands: CommandRegistry,
  trans: TranslationBundle,
  cellId: string
): MenuSvg {
  const menu = new MenuSvg({ commands });
  menu.addClass('jp-nbscale-StepMenu');
  menu.title.label = trans.__('Where this cell runs');

  menu.addItem({
    command: CommandIDs.setStepTarget,
    args: { target: 'none', cellId }
  });
  for (const target of STEP_TARGETS) {
    menu.addItem({
      command: CommandIDs.setStepTarget,
      args: { target, cellId }
    });
  }
  menu.addItem({ type: 'separator' });

  const memory = new MenuSvg({ commands });
  memory.title.label = trans.__('Memory');
  memory.addItem({
    command: CommandIDs.setStepMemory,
    args: { memory: '', cellId }
  });
  for (const size of MEMORY_CHOICES) {
    memory.addItem({
      command: CommandIDs.setStepMemory,
      args: { memory: size, cellId, label: memoryLabel(size) }
    });
  }
  menu.addItem({ type: 'submenu', submenu: memory });

  const cpu = new MenuSvg({ commands });
  cpu.title.label = trans.__('CPUs');
  cpu.addItem({ command: CommandIDs.setStepCpu, args: { cpu: 0, cellId } });
  for (const n of CPU_CHOICES) {
    cpu.addItem({ command: CommandIDs.setStepCpu, args: { cpu: n, cellId } });
  }
  menu.addItem({ type: 'submenu', submenu: cpu });

  const gpu = new MenuSvg({ commands });
  gpu.title.label = trans.__('GPUs');
  gpu.addItem({ command: CommandIDs.setStepGpu, args: { gpu: -1, cellId } });
  for (const n of GPU_CHOICES) {
    gpu.addItem({ command: CommandIDs.setStepGpu, args: { gpu: n, cellId } });
  }
  menu.addItem({ type: 'submenu', submenu: gpu });

  // submenus are not children of the menu: dispose them with it
  menu.disposed.connect(() => {
    memory.dispose();
    cpu.dispose();
    gpu.dispose();
  });
  return menu;
}

export interface IOpenStepMenuOptions {
  commands: CommandRegistry;
  trans: TranslationBundle;
  cellId: string;
  /** The element the menu opens under, and gets the focus back after. */
  anchor: HTMLElement;
  /** Called when the menu closes; return false to not refocus the anchor. */
  onClose?: () => boolean;
}

/** Open the step menu under `anchor`; it disposes itself once closed. */
export function openStepMenu(options: IOpenStepMenuOptions): MenuSvg {
  const { anchor } = options;
  const menu = buildStepMenu(options.commands, options.trans, options.cellId);
  menu.aboutToClose.connect(() => {
    const refocus = options.onClose ? options.onClose() : true;
    requestAnimationFrame(() => {
      if (refocus && anchor.isConnected) {
        anchor.focus();
      }
      // after a chosen item's command ran
      menu.dispose();
    });
  });
  const rect = anchor.getBoundingClientRect();
  menu.open(rect.left, rect.bottom);
  return menu;
}
