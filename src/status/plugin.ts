/**
 * The application side of the step-status renderer: acts on its
 * "Re-run with 2× memory" button (see ./renderer.ts for why the renderer
 * itself can't), and offers the same action as a command on the active cell.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';

import { readCellStep, writeCellStep } from '../cells';
import { CommandIDs, EXTENSION_ID } from '../tokens';
import { optionsForRerun } from './format';
import { IRerunEventDetail, RERUN_EVENT } from './renderer';
import { IStepStatus, STEP_STATUS_MIME, parseStepStatus } from './schema';

/** The last step status shown in a cell's outputs, if any. */
function lastStatus(cell: Cell): IStepStatus | null {
  const outputs =
    cell.model.type === 'code' ? (cell.model as any).outputs : null;
  if (!outputs) {
    return null;
  }
  for (let i = outputs.length - 1; i >= 0; i--) {
    const data = outputs.get(i).data as Record<string, unknown>;
    if (data && STEP_STATUS_MIME in data) {
      return parseStepStatus(data[STEP_STATUS_MIME]);
    }
  }
  return null;
}

/**
 * Rewrite the cell's `%%step` line with more memory and run just that cell
 * (the command `notebook:run-cell`, so it behaves like Shift+Enter without
 * moving on).
 */
async function rerunWithMoreMemory(
  app: JupyterFrontEnd,
  tracker: INotebookTracker,
  panel: NotebookPanel,
  cell: Cell,
  status: IStepStatus | null
): Promise<boolean> {
  const notebook = panel.content;
  const index = notebook.widgets.indexOf(cell);
  if (index < 0 || cell.model.type !== 'code') {
    return false;
  }
  const { options } = readCellStep(cell.model);
  if (!writeCellStep(cell.model, optionsForRerun(options, status))) {
    return false;
  }
  if (tracker.currentWidget !== panel) {
    app.shell.activateById(panel.id);
  }
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await app.commands.execute('notebook:run-cell');
  return true;
}

export const statusPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:step-status`,
  description:
    'Acts on the step-status output: re-runs a step that ran out of memory with twice the memory.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ITranslator, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('nbscale');

    tracker.widgetAdded.connect((_, panel) => {
      const onRerun = (event: Event): void => {
        const detail = (event as CustomEvent<IRerunEventDetail>).detail;
        const target = event.target as Node;
        const cell = panel.content.widgets.find(c => c.node.contains(target));
        if (!cell || !detail) {
          return;
        }
        detail.handled = true;
        event.stopPropagation();
        void rerunWithMoreMemory(app, tracker, panel, cell, detail.status);
      };
      panel.content.node.addEventListener(RERUN_EVENT, onRerun);
      panel.disposed.connect(() =>
        panel.content.node.removeEventListener(RERUN_EVENT, onRerun)
      );
    });

    app.commands.addCommand(CommandIDs.rerunWithMoreMemory, {
      label: trans.__('Re-run Step with 2× Memory'),
      caption: trans.__(
        'Double --memory in the active cell’s step line and run it again'
      ),
      isEnabled: () =>
        tracker.activeCell?.model.type === 'code' &&
        tracker.currentWidget !== null,
      execute: async () => {
        const panel = tracker.currentWidget;
        const cell = tracker.activeCell;
        if (!panel || !cell) {
          return false;
        }
        return rerunWithMoreMemory(app, tracker, panel, cell, lastStatus(cell));
      }
    });
    palette?.addItem({
      command: CommandIDs.rerunWithMoreMemory,
      category: 'nbscale'
    });
  }
};
