import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { aboutPlugin } from './about';
import { exportPlugin } from './export/plugin';
import { historyPlugin } from './history/plugin';
import { notebookPathPlugin } from './notebookpath/plugin';
import { settingsPlugin } from './settings';
import { statusPlugin } from './status/plugin';
import { toolbarPlugin } from './toolbar/plugin';

export * from './tokens';
export * from './stepline';
export * from './status/schema';

/**
 * Every plugin of the extension. The step-status renderer itself is a mime
 * extension (src/status/renderer.ts, package.json `mimeExtension`) so that
 * it is in the rendermime registry before any notebook opens.
 */
const plugins: JupyterFrontEndPlugin<any>[] = [
  settingsPlugin,
  aboutPlugin,
  toolbarPlugin,
  statusPlugin,
  historyPlugin,
  notebookPathPlugin,
  exportPlugin
];

export default plugins;
