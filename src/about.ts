import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { Dialog, ICommandPalette, showDialog } from '@jupyterlab/apputils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { Widget } from '@lumino/widgets';

import { IAboutFacts, aboutLines } from './abouttext';
import { CommandIDs, EXTENSION_ID, KERNEL_NAME } from './tokens';
import { EXTENSION_VERSION } from './version';

async function collectFacts(
  app: JupyterFrontEnd,
  tracker: INotebookTracker | null
): Promise<IAboutFacts> {
  const facts: IAboutFacts = { extensionVersion: EXTENSION_VERSION };
  const specs = app.serviceManager.kernelspecs;
  await specs.ready;
  facts.spec = specs.specs?.kernelspecs[KERNEL_NAME] ?? null;
  const kernel = tracker?.currentWidget?.sessionContext.session?.kernel;
  if (kernel && kernel.name === KERNEL_NAME) {
    try {
      facts.info = await kernel.info;
    } catch {
      facts.info = null;
    }
  }
  return facts;
}

/**
 * The `nbscale:about` command: extension and kernel versions.
 */
export const aboutPlugin: JupyterFrontEndPlugin<void> = {
  id: `${EXTENSION_ID}:about`,
  description: 'The "About nbscale" command.',
  autoStart: true,
  optional: [ICommandPalette, INotebookTracker],
  activate: (
    app: JupyterFrontEnd,
    palette: ICommandPalette | null,
    tracker: INotebookTracker | null
  ): void => {
    app.commands.addCommand(CommandIDs.about, {
      label: 'About nbscale',
      caption: 'Show the versions of the nbscale extension and kernel',
      execute: async () => {
        const facts = await collectFacts(app, tracker);
        const body = document.createElement('div');
        body.className = 'jp-nbscale-About';
        for (const line of aboutLines(facts)) {
          const p = document.createElement('p');
          p.textContent = line;
          body.appendChild(p);
        }
        await showDialog({
          title: 'nbscale',
          body: new Widget({ node: body }),
          buttons: [Dialog.okButton()]
        });
      }
    });
    palette?.addItem({ command: CommandIDs.about, category: 'nbscale' });
  }
};
