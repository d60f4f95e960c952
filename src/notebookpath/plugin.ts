/**
 * One NotebookPathReporter per open notebook, so that recording, history
 * and `%export` follow renames and moves (see reporter.ts).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { INotebookTracker } from '@jupyterlab/notebook';

import { EXTENSION_ID } from '../tokens';
import { NotebookPathReporter } from './reporter';

export const notebookPathPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:notebook-path`,
  description:
    'Tells the nbscale kernel when its notebook is renamed or moved.',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker): void => {
    tracker.widgetAdded.connect((_, panel) => {
      const reporter = new NotebookPathReporter(panel);
      panel.disposed.connect(() => reporter.dispose());
    });
  }
};
