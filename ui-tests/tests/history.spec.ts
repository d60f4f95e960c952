/**
 * The history sidebar: lists the notebook's recorded executions, shows one
 * execution's detail, a variable's versions, loads an old version into the
 * kernel, survives a kernel restart, and pages through 1,000+ executions.
 */
import { expect, test } from '@jupyterlab/galata';
import { Page } from '@playwright/test';
import * as path from 'path';
import { screenshotPath } from './screenshots';

const STORE = path.resolve(
  __dirname,
  '..',
  '..',
  'kernel',
  'dist',
  'src',
  'store'
);

async function openHistory(page: Page) {
  await page.evaluate(() =>
    (window as any).jupyterapp.commands.execute('nbscale:open-history')
  );
  const panel = page.locator('#nbscale-history');
  await expect(panel).toBeVisible();
  return panel;
}

async function run(page: Page, index: number, code: string) {
  if (index > 0) {
    await page.notebook.addCell('code', code);
  } else {
    await page.notebook.setCell(0, 'code', code);
  }
  await page.notebook.runCell(index, { inplace: true });
}

test.describe('history sidebar', () => {
  test('lists executions, shows detail and versions, and "Load into kernel" restores an old version', async ({
    page
  }) => {
    await page.notebook.createNew('history.ipynb', { kernel: 'nbscale' });
    await run(page, 0, 'let model: string = "v1-small";');
    await run(page, 1, 'model = "v2-large";');
    await run(page, 2, 'const score = model.length * 10;');

    const panel = await openHistory(page);
    const rows = panel.locator('.jp-nbscale-History-row');
    await expect(rows).toHaveCount(3);
    await expect(panel.locator('.jp-nbscale-History-range')).toHaveText(
      '1–3 of 3'
    );
    // newest first, with target and status
    await expect(rows.nth(0)).toContainText('const score = model.length * 10;');
    await expect(rows.nth(0)).toContainText('Kernel');
    await expect(rows.nth(0).locator('.jp-nbscale-History-status')).toHaveText(
      '✓'
    );

    // detail of the newest: code, input model@2 (with lineage), output score@1
    await rows.nth(0).locator('button').click();
    const detail = panel.locator('.jp-nbscale-History-detail');
    await expect(detail.locator('.jp-nbscale-History-source')).toHaveText(
      'const score = model.length * 10;'
    );
    await expect(detail).toContainText('model@2');
    await expect(detail).toContainText('score@1');
    await expect(detail.locator('.jp-nbscale-History-from')).toHaveCount(1);

    // the versions of model, from the input's button
    await detail
      .locator('.jp-nbscale-History-var', { hasText: 'model@2' })
      .click();
    const versions = panel.locator('.jp-nbscale-History-version');
    await expect(versions).toHaveCount(2);
    await expect(versions.nth(0)).toHaveAttribute('data-version', '2');

    // load model@1 back into the kernel, then read it in a cell
    await versions
      .nth(1)
      .getByRole('button', { name: 'Load into kernel' })
      .click();
    await expect(page.locator('.Toastify__toast')).toContainText(
      'restored model@1',
      { timeout: 60000 }
    );
    await run(page, 3, 'model');
    expect(await page.notebook.getCellTextOutput(3)).toEqual(["'v1-small'"]);

    // filter by variable
    await panel.locator('.jp-nbscale-History-back').click();
    await panel.locator('.jp-nbscale-History-back').click();
    const filter = panel.locator('.jp-nbscale-History-filterInput');
    await filter.fill('score');
    await filter.press('Enter');
    await expect(rows).toHaveCount(1);
    await filter.fill('');
    await filter.press('Enter');
    // the %restore is not an execution; `model` is
    await expect(rows).toHaveCount(4);
    await page.sidebar.setWidth(400, 'left');
    await panel.screenshot({ path: screenshotPath('history.png') });

    // still there after a kernel restart (read from the datastore)
    await page.evaluate(async () => {
      const nb = (window as any).jupyterapp.shell.currentWidget;
      await nb.sessionContext.restartKernel();
    });
    await panel.locator('.jp-nbscale-History-refresh').click();
    await expect(rows).toHaveCount(4, { timeout: 60000 });
  });

  test('pages through 1,200 executions', async ({ page }) => {
    await page.notebook.createNew('many.ipynb', { kernel: 'nbscale' });
    await run(page, 0, 'let i = 0;');
    const panel = await openHistory(page);
    await expect(panel.locator('.jp-nbscale-History-row')).toHaveCount(1);
    const notebook = await panel.getAttribute('data-notebook');
    const datastore = await panel.getAttribute('data-datastore');
    expect(notebook).toBeTruthy();
    expect(datastore).toBeTruthy();

    // 1,200 more executions of this notebook, written through the store API
    // (running 1,200 cells through the browser would take minutes)
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const store = require(STORE);
    const ds = await store.Datastore.open(datastore, { create: true });
    const t0 = Date.now() - 3600 * 1000;
    for (let n = 0; n < 1200; n++) {
      await ds.recordExecution({
        notebook,
        cell: `bulk-${n % 7}`,
        executionCount: n + 2,
        code: `i = ${n + 1};`,
        outputs: {},
        status: n % 50 === 49 ? 'error' : 'ok',
        error:
          n % 50 === 49
            ? { ename: 'Error', evalue: `bulk ${n}`, traceback: [] }
            : null,
        started: new Date(t0 + n * 1000),
        finished: new Date(t0 + n * 1000 + 250),
        target: n % 3 === 0 ? 'local' : 'kernel'
      });
    }

    const began = Date.now();
    await panel.locator('.jp-nbscale-History-refresh').click();
    await expect(panel.locator('.jp-nbscale-History-range')).toHaveText(
      '1–50 of 1201',
      { timeout: 60000 }
    );
    const firstPageMs = Date.now() - began;
    await expect(panel.locator('.jp-nbscale-History-row')).toHaveCount(50);

    const t1 = Date.now();
    await panel.locator('.jp-nbscale-History-next').click();
    // the timings are reported, not asserted (they are this machine's speed); the wait only guards a hang
    await expect(panel.locator('.jp-nbscale-History-range')).toHaveText(
      '51–100 of 1201',
      { timeout: 60000 }
    );
    const nextPageMs = Date.now() - t1;
    test.info().annotations.push({
      type: 'timing',
      description: `first page ${firstPageMs} ms (cold read of 1201 records), next page ${nextPageMs} ms`
    });

    // the page size setting applies live
    await page.evaluate(async () => {
      const registry = await (window as any).galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      await registry.set('jupyterlab-nbscale:plugin', 'historyPageSize', 200);
    });
    await expect(panel.locator('.jp-nbscale-History-range')).toHaveText(
      '51–250 of 1201'
    );
    await expect(panel.locator('.jp-nbscale-History-row')).toHaveCount(200);
    await page.evaluate(async () => {
      const registry = await (window as any).galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      await registry.remove('jupyterlab-nbscale:plugin', 'historyPageSize');
    });
  });

  test('recording and restoring a 1 GiB value show their live line in the cell', async ({
    page
  }) => {
    await page.notebook.createNew('big.ipynb', { kernel: 'nbscale' });
    // Recording runs after the reply while the kernel stays busy; its line lands in the cell all the same
    // (shown whatever the machine's speed: the server runs with NBSCALE_PROGRESS_AFTER_MS=0, playwright.config.js).
    await run(
      page,
      0,
      'let huge = new Float64Array(2 ** 27).map((_, i) => i / 3);'
    );
    const made = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-OutputArea-output');
    await expect(made).toHaveText(/recorded huge@1 \(1\.0 GiB\) in [\d.]+ s/, {
      timeout: 60000
    });
    await run(page, 1, '%restore huge@1');
    const restored = page.locator('.jp-Cell').nth(1).locator('.jp-OutputArea');
    await expect(restored).toContainText(
      /read huge@1: 1\.0 GiB in [\d.]+ s \([\d.]+ [MG]iB\/s\), every chunk verified/,
      { timeout: 60000 }
    );
    await expect(restored).toContainText('restored huge@1: Float64Array');
    await page
      .locator('.jp-NotebookPanel .jp-Notebook')
      .screenshot({ path: screenshotPath('large-values.png') });
  });

  test('the sidebar is restored on reload', async ({ page }) => {
    await page.notebook.createNew('restored.ipynb', { kernel: 'nbscale' });
    await page.notebook.save();
    // the layout is saved to the workspace shortly after it changes
    const saved = page.waitForRequest(
      r => r.url().includes('/api/workspaces') && r.method() === 'PUT'
    );
    await openHistory(page);
    await saved;
    // (galata's default readiness check waits for a Launcher tab)
    await page.reload({ waitForIsReady: false });
    await expect(page.locator('#nbscale-history')).toBeVisible();
    await expect(
      page.locator('.jp-SideBar [data-id="nbscale-history"]')
    ).toHaveClass(/lm-mod-current/);
  });

  test('history follows the notebook through a rename', async ({ page }) => {
    await page.notebook.createNew('before-rename.ipynb', { kernel: 'nbscale' });
    await run(page, 0, 'let model: string = "v1";');
    await page.notebook.save();
    // The rename the file browser does (docmanager → contents service).
    await page.evaluate(async () => {
      const app = (window as any).jupyterapp;
      const from: string = app.shell.currentWidget.context.path;
      const to = from.replace(/before-rename\.ipynb$/, 'after-rename.ipynb');
      await app.serviceManager.contents.rename(from, to);
    });
    await expect(page.locator('.jp-mod-current[role="tab"]')).toContainText(
      'after-rename.ipynb'
    );
    await run(page, 1, 'model = "v2";');
    await run(page, 2, '%history');
    const output = page.locator('.jp-Cell').nth(2).locator('.jp-OutputArea');
    await expect(output).toContainText('after-rename.ipynb');
    await expect(output).not.toContainText('before-rename.ipynb');
    const panel = await openHistory(page);
    // Both executions, the one from before the rename included.
    await expect(panel.locator('.jp-nbscale-History-row')).toHaveCount(2);
  });
});
