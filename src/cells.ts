/**
 * Helpers shared by the toolbar, the badges, the status renderer's re-run
 * button and the history sidebar: which notebooks are nbscale notebooks, and
 * reading/writing a cell's `%%step` line through the shared model (the cell
 * source is the single source of truth; nothing is kept in metadata).
 */
import { ICellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';

import {
  IStepOptions,
  getStepLine,
  parseStepLine,
  setStepLine
} from './stepline';
import { KERNEL_NAME } from './tokens';

/**
 * Whether a notebook runs (or will run) on the nbscale kernel: the running
 * kernel decides; before one is started, the preferred kernel or the
 * notebook's saved kernelspec does.
 */
export function isNbscalePanel(panel: NotebookPanel | null): boolean {
  if (!panel || panel.isDisposed) {
    return false;
  }
  const ctx = panel.sessionContext;
  const running = ctx.session?.kernel?.name;
  if (running) {
    return running === KERNEL_NAME;
  }
  if (ctx.kernelPreference.name) {
    return ctx.kernelPreference.name === KERNEL_NAME;
  }
  const spec = panel.model?.getMetadata('kernelspec') as
    { name?: string } | undefined;
  return spec?.name === KERNEL_NAME;
}

/** What a code cell's first line says about it as a step. */
export interface ICellStepState {
  /** The `%%step` line, or null when the cell is not a step. */
  line: string | null;
  /** Its parsed options; null when there is no line or it does not parse. */
  options: IStepOptions | null;
}

export function readCellStep(model: ICellModel): ICellStepState {
  const line = getStepLine(model.sharedModel.getSource());
  return { line, options: line === null ? null : parseStepLine(line) };
}

/**
 * Rewrite (or insert, or with null remove) the `%%step` line of a cell.
 * Returns false, changing nothing, when the options can't be written.
 */
export function writeCellStep(
  model: ICellModel,
  options: IStepOptions | null
): boolean {
  const source = model.sharedModel.getSource();
  let next: string;
  try {
    next = setStepLine(source, options);
  } catch (e) {
    console.warn('nbscale: could not write the %%step line', e);
    return false;
  }
  if (next !== source) {
    model.sharedModel.setSource(next);
  }
  return true;
}
