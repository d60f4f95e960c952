import { JupyterFrontEndPlugin } from '@jupyterlab/application';

import { aboutPlugin } from './about';
import { settingsPlugin } from './settings';

export * from './tokens';
export * from './stepline';

/**
 * Every plugin of the extension. New concerns (cell toolbar, step-status
 * renderer, history sidebar, export command) add their plugin here.
 */
const plugins: JupyterFrontEndPlugin<any>[] = [settingsPlugin, aboutPlugin];

export default plugins;
