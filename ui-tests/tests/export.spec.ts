/**
 * "Export Notebook to Flow" from the notebook toolbar: the notebook is
 * saved, its flow file is written next to it and opened in an editor tab.
 */
import { expect, test } from '@jupyterlab/galata';

test.describe('export to flow', () => {
  test('the toolbar button writes the flow file next to the notebook and opens it', async ({
    page,
    tmpPath
  }) => {
    await page.notebook.createNew('pipeline.ipynb', { kernel: 'nbscale' });
    await page.notebook.setCell(0, 'code', 'const base = 10;');
    await page.notebook.addCell(
      'code',
      '%%step train --memory 512M\nconst total = base * 4;'
    );
    await page.notebook.runCell(0, { inplace: true });

    const button = page.locator(
      '.jp-NotebookPanel-toolbar [data-command="nbscale:export-flow"]'
    );
    await expect(button).toBeVisible();
    // Enabled once the notebook's kernel is known to be nbscale.
    await expect(button).toBeEnabled();
    await button.click();

    // The flow opens in a new tab and reads like the notebook.
    const tab = page.locator('.lm-TabBar-tab', { hasText: 'pipeline.flow.ts' });
    await expect(tab).toBeVisible({ timeout: 60 * 1000 });
    const editor = page.locator('.jp-FileEditor .cm-content');
    await expect(editor).toContainText('step(');
    await expect(editor).toContainText('"train"');
    await expect(editor).toContainText('const total = base * 4;');
    expect(
      await page.filebrowser.contents.fileExists(`${tmpPath}/pipeline.flow.ts`)
    ).toBeTruthy();
  });

  test('the command is in the File menu and the palette', async ({ page }) => {
    await page.notebook.createNew('menu.ipynb', { kernel: 'nbscale' });
    await page.menu.open('File');
    await expect(
      page.locator('.lm-Menu-itemLabel', { hasText: 'Export Notebook to Flow' })
    ).toBeVisible();
    await page.keyboard.press('Escape');
    const inPalette = await page.evaluate(() =>
      (window as any).jupyterapp.commands.hasCommand('nbscale:export-flow')
    );
    expect(inPalette).toBe(true);
  });
});
