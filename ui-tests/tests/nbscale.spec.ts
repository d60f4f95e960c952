import { expect, test } from '@jupyterlab/galata';
import { screenshotPath } from './screenshots';

const PLUGIN_ID = 'jupyterlab-nbscale:plugin';

test.describe('jupyterlab-nbscale extension', () => {
  test('loads without console errors', async ({ page }) => {
    const errors: string[] = [];
    page.on('console', message => {
      if (message.type() === 'error') {
        errors.push(message.text());
      }
    });
    page.on('pageerror', error => errors.push(String(error)));

    // The fixture already opened JupyterLab; load it again while listening.
    await page.reload();

    const activated = await page.evaluate(
      (ids: string[]) =>
        ids.map(id => (window as any).jupyterapp.isPluginActivated(id)),
      [PLUGIN_ID, 'jupyterlab-nbscale:about']
    );
    expect(activated).toEqual([true, true]);
    expect(errors).toEqual([]);
  });

  test('has an "nbscale" settings entry with the documented defaults', async ({
    page
  }) => {
    const plugin = await page.evaluate(
      (id: string) =>
        (window as any).jupyterapp.serviceManager.settings.fetch(id),
      PLUGIN_ID
    );
    expect(plugin.schema.title).toBe('nbscale');
    const defaults = Object.fromEntries(
      Object.entries<any>(plugin.schema.properties).map(([k, v]) => [
        k,
        v.default
      ])
    );
    expect(defaults).toEqual({
      defaultTarget: 'local',
      defaultMemory: '',
      showBadges: true,
      historyPageSize: 50
    });

    // and the settings editor lists it
    await page.evaluate(() =>
      (window as any).jupyterapp.commands.execute('settingeditor:open')
    );
    await expect(
      page.locator('.jp-PluginList-entry-label-text', { hasText: /^nbscale$/ })
    ).toBeVisible();
  });

  test('offers the nbscale kernel in the launcher and the about command', async ({
    page
  }) => {
    await expect(
      page.locator('.jp-LauncherCard[title="TypeScript (nbscale)"]').first()
    ).toBeVisible();

    await page.keyboard.press('Control+Shift+C');
    await page.locator('#modal-command-palette input').fill('About nbscale');
    await page
      .locator('#modal-command-palette .lm-CommandPalette-item', {
        hasText: 'About nbscale'
      })
      .click();
    const dialog = page.locator('.jp-Dialog');
    await expect(dialog).toContainText('jupyterlab-nbscale 0.1.0');
    await expect(dialog).toContainText('TypeScript (nbscale)');
    await dialog.locator('.jp-mod-accept').click();
    await expect(dialog).toHaveCount(0);
  });
});

test.describe('the nbscale kernel', () => {
  test('runs a TypeScript cell and shows its result', async ({ page }) => {
    const name = await page.notebook.createNew('nbscale.ipynb', {
      kernel: 'nbscale'
    });
    expect(name).toBe('nbscale.ipynb');
    await expect(
      page.locator('.jp-NotebookPanel-toolbar .jp-KernelName')
    ).toHaveText('TypeScript (nbscale)');

    await page.notebook.setCell(0, 'code', 'const x: number = 6 * 7; x');
    await page.notebook.runCell(0, { inplace: true });
    expect(await page.notebook.getCellTextOutput(0)).toEqual(['42']);

    await page.notebook.addCell(
      'code',
      'const greet = (who: string): string => `hello, ${who}`;\n' +
        'interface Model { name: string; memory: string }\n' +
        "const models: Model[] = ['a', 'b'].map(n => ({ name: n, memory: '8G' }));\n" +
        '[greet("nbscale"), models.length * x]'
    );
    await page.notebook.runCell(1, { inplace: true });
    const out = ((await page.notebook.getCellTextOutput(1)) ?? []).join('\n');
    expect(out).toContain('hello, nbscale');
    expect(out).toContain('84');

    // the kernel reports itself
    const info = await page.evaluate(async () => {
      const app = (window as any).jupyterapp;
      const panel = app.shell.currentWidget;
      const reply = await panel.sessionContext.session.kernel.info;
      return {
        implementation: reply.implementation,
        language: reply.language_info.name
      };
    });
    expect(info).toEqual({ implementation: 'nbscale', language: 'typescript' });

    await page.sidebar.close('left');
    await page.notebook.selectCells(1);
    await page.screenshot({ path: screenshotPath('notebook.png') });
  });

  test('console.log and Node globals work in a notebook outside the repository', async ({
    page
  }) => {
    // Galata serves notebooks from a temporary directory with no
    // node_modules: the kernel must bring its own Node typings.
    await page.notebook.createNew('globals.ipynb', { kernel: 'nbscale' });
    await page.notebook.setCell(
      0,
      'code',
      'console.log("from console.log");\ntypeof process.version'
    );
    await page.notebook.runCell(0, { inplace: true });
    const out = ((await page.notebook.getCellTextOutput(0)) ?? []).join('\n');
    expect(out).not.toMatch(/error/);
    expect(out).toMatch(/^from console\.log$/m);
    expect(out).toContain("'string'");
  });
});
