/**
 * "Export Notebook to Flow": saves the notebook, asks its nbscale kernel to
 * write the flow file next to it (comm target `nbscale.export`), and opens
 * the file. Available from the notebook toolbar, the File menu and the
 * command palette.
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, Notification } from '@jupyterlab/apputils';
import { PathExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { ITranslator, nullTranslator } from '@jupyterlab/translation';
import { fileUploadIcon } from '@jupyterlab/ui-components';
import { JSONObject } from '@lumino/coreutils';

import { CommandIDs, EXTENSION_ID, KERNEL_NAME } from '../tokens';

export const EXPORT_TARGET = 'nbscale.export';
const TIMEOUT_MS = 120 * 1000;

/** What the kernel answers: the flow file it wrote, or why it could not. */
export interface IExportReply {
  path: string;
  file: string;
  steps: number;
  warnings: string[];
}

/** One request over a short-lived comm; the kernel answers once. */
export function requestExport(
  kernel: Kernel.IKernelConnection,
  notebookFile: string
): Promise<IExportReply> {
  return new Promise<IExportReply>((resolve, reject) => {
    const comm = kernel.createComm(EXPORT_TARGET);
    let settled = false;
    // Closing a comm runs its own onClose too: settle first, then close.
    const settle = (fn: () => void) => {
      if (settled) {
        return;
      }
      settled = true;
      window.clearTimeout(timer);
      fn();
      if (!comm.isDisposed) {
        comm.close();
      }
    };
    const timer = window.setTimeout(
      () =>
        settle(() =>
          reject(
            new Error('the kernel did not answer (is a cell still running?)')
          )
        ),
      TIMEOUT_MS
    );
    comm.onMsg = (msg: KernelMessage.ICommMsgMsg) => {
      const data = msg.content.data as JSONObject;
      settle(() =>
        typeof data.error === 'string'
          ? reject(new Error(data.error))
          : resolve(data as unknown as IExportReply)
      );
    };
    comm.onClose = (msg: KernelMessage.ICommCloseMsg) => {
      const why = (msg.content.data as JSONObject)?.error;
      settle(() =>
        reject(
          new Error(
            typeof why === 'string' ? why : 'the kernel closed the channel'
          )
        )
      );
    };
    comm.open({});
    comm.send({ request: 'export', notebook: notebookFile, req: 1 });
  });
}

function isNbscale(panel: NotebookPanel | null): panel is NotebookPanel {
  return !!panel && panel.sessionContext.session?.kernel?.name === KERNEL_NAME;
}

export const exportPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:export`,
  description: 'Export an nbscale notebook to a TypeScript flow file.',
  autoStart: true,
  requires: [INotebookTracker, IDocumentManager],
  optional: [ICommandPalette, ITranslator],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    docManager: IDocumentManager,
    palette: ICommandPalette | null,
    translator: ITranslator | null
  ) => {
    const trans = (translator ?? nullTranslator).load('jupyterlab_nbscale');
    app.commands.addCommand(CommandIDs.exportFlow, {
      label: trans.__('Export Notebook to Flow'),
      caption: trans.__(
        'Write this notebook as a TypeScript flow file that `nbscale run` runs and resumes'
      ),
      icon: args => (args.toolbar ? fileUploadIcon : undefined),
      isEnabled: () => isNbscale(tracker.currentWidget),
      execute: async () => {
        const panel = tracker.currentWidget;
        if (!isNbscale(panel)) {
          return;
        }
        const kernel = panel.sessionContext.session!.kernel!;
        try {
          // The kernel exports the file, so what the user sees must be on disk.
          await panel.context.save();
          const reply = await requestExport(
            kernel,
            PathExt.basename(panel.context.path)
          );
          const flowPath = PathExt.join(
            PathExt.dirname(panel.context.path),
            reply.file
          );
          docManager.openOrReveal(flowPath);
          Notification.success(
            trans.__(
              'Exported %1 steps to %2 — run it with: nbscale run %2',
              reply.steps,
              reply.file
            ),
            { autoClose: 5000 }
          );
          for (const w of reply.warnings) {
            Notification.warning(w, { autoClose: 8000 });
          }
        } catch (e) {
          Notification.error(
            trans.__('Export failed: %1', (e as Error).message)
          );
        }
      }
    });
    // The toolbar button's enabled state follows the notebook's kernel.
    const refresh = () =>
      app.commands.notifyCommandChanged(CommandIDs.exportFlow);
    tracker.currentChanged.connect(refresh);
    tracker.widgetAdded.connect((_, panel) => {
      panel.sessionContext.kernelChanged.connect(refresh);
      panel.sessionContext.statusChanged.connect(refresh);
    });
    palette?.addItem({
      command: CommandIDs.exportFlow,
      category: trans.__('nbscale')
    });
  }
};
