/**
 * The history sidebar plugin: a left-area panel following the current
 * notebook, restored on reload (ILayoutRestorer), with commands to show it
 * and to load a recorded version into the notebook's kernel.
 */
import {
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { KernelMessage } from '@jupyterlab/services';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { historyIcon } from '@jupyterlab/ui-components';

import { CommandIDs, EXTENSION_ID, INbscaleSettings } from '../tokens';
import { HistoryPanel } from './panel';

export const HISTORY_PANEL_ID = 'nbscale-history';

/**
 * Runs `%restore NAME@VERSION` in a notebook's kernel (not stored in the
 * kernel's input history) and resolves with what it printed; rejects with the
 * kernel's error text.
 */
export async function restoreInKernel(
  panel: NotebookPanel,
  name: string,
  version: number
): Promise<string> {
  const kernel = panel.sessionContext.session?.kernel;
  if (!kernel) {
    throw new Error('the notebook has no running kernel');
  }
  const code = `%restore ${name}@${version}`;
  const future = kernel.requestExecute({
    code,
    silent: false,
    store_history: false
  });
  let out = '';
  let error = '';
  future.onIOPub = (msg: KernelMessage.IIOPubMessage) => {
    if (KernelMessage.isStreamMsg(msg)) {
      out += msg.content.text;
    } else if (KernelMessage.isErrorMsg(msg)) {
      error = `${msg.content.ename}: ${msg.content.evalue}`;
    }
  };
  const reply = await future.done;
  if (reply.content.status !== 'ok' || error) {
    throw new Error(error || `${code} failed`);
  }
  return out.trim();
}

export const historyPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:history`,
  description:
    'A sidebar with the notebook’s recorded executions and variable versions.',
  autoStart: true,
  requires: [INotebookTracker, INbscaleSettings],
  optional: [ILayoutRestorer, ITranslator, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settings: INbscaleSettings,
    restorer: ILayoutRestorer | null,
    translator: ITranslator | null,
    palette: ICommandPalette | null
  ): void => {
    const trans = (translator ?? nullTranslator).load('nbscale');

    const restore = async (
      panel: NotebookPanel,
      name: string,
      version: number
    ): Promise<void> => {
      try {
        const said = await restoreInKernel(panel, name, version);
        Notification.success(
          said || trans.__('Loaded %1@%2 into the kernel', name, version),
          { autoClose: 5000 }
        );
      } catch (e) {
        Notification.error(
          trans.__(
            'Could not load %1@%2: %3',
            name,
            version,
            (e as Error).message
          ),
          { autoClose: false }
        );
      }
    };

    const panel = new HistoryPanel({
      trans,
      pageSize: () => settings.values.historyPageSize,
      restore
    });
    panel.id = HISTORY_PANEL_ID;
    panel.title.icon = historyIcon;
    panel.title.caption = trans.__('nbscale: execution history');
    app.shell.add(panel, 'left', { rank: 600 });
    restorer?.add(panel, HISTORY_PANEL_ID);

    tracker.currentChanged.connect((_, current) => {
      // keep showing the last notebook when another kind of tab is focused
      if (current) {
        panel.setNotebook(current);
      }
    });
    void app.restored.then(() => panel.setNotebook(tracker.currentWidget));
    settings.changed.connect(() => void panel.refresh());

    app.commands.addCommand(CommandIDs.openHistory, {
      label: trans.__('Show Execution History'),
      caption: trans.__('Show the nbscale history sidebar'),
      icon: historyIcon,
      execute: () => {
        app.shell.activateById(HISTORY_PANEL_ID);
      }
    });
    app.commands.addCommand(CommandIDs.restoreVersion, {
      label: args =>
        trans.__(
          'Load %1@%2 into Kernel',
          String(args.name),
          String(args.version)
        ),
      isEnabled: () => tracker.currentWidget !== null,
      execute: args => {
        const nb = tracker.currentWidget;
        if (!nb) {
          return;
        }
        return restore(nb, String(args.name), Number(args.version));
      }
    });
    palette?.addItem({ command: CommandIDs.openHistory, category: 'nbscale' });
  }
};
