/**
 * The cell toolbar control and the step badges, driven as a user would:
 * menu clicks, typing, and the settings editor's JSON.
 */
import { expect, test } from '@jupyterlab/galata';
import { Page } from '@playwright/test';
import { screenshotPath } from './screenshots';

const PLUGIN_ID = 'jupyterlab-nbscale:plugin';

/** The source of cell `index` as the notebook model holds it. */
async function cellSource(page: Page, index: number): Promise<string> {
  return page.evaluate(i => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.widgets[i].model.sharedModel.getSource();
  }, index);
}

/** The step control in the toolbar of the active cell. */
function control(page: Page) {
  return page.locator(
    '.jp-Notebook .jp-Cell.jp-mod-active .jp-cell-toolbar .jp-nbscale-StepControl-button'
  );
}

/** Change settings through the application's setting registry (as the editor does). */
export async function setSettings(
  page: Page,
  values: Record<string, unknown>
): Promise<void> {
  await page.evaluate(
    async ({ id, values }) => {
      const registry = await (window as any).galata.getPlugin(
        '@jupyterlab/apputils-extension:settings'
      );
      for (const [key, value] of Object.entries(values)) {
        await registry.set(id, key, value);
      }
    },
    { id: PLUGIN_ID, values }
  );
}

test.describe('cell toolbar step control', () => {
  test.afterEach(async ({ page }) => {
    await setSettings(page, {
      showBadges: true,
      defaultTarget: 'local',
      defaultMemory: ''
    });
  });

  test('choosing "Local workers, 2 GiB" writes the %%step line and shows a badge', async ({
    page
  }) => {
    await page.notebook.createNew('toolbar.ipynb', { kernel: 'nbscale' });
    await page.notebook.setCell(0, 'code', 'const total = 6 * 7;\ntotal');
    await page.notebook.selectCells(0);

    const button = control(page);
    await expect(button).toBeVisible();
    await expect(button).toHaveText('not a step');
    await expect(button).toHaveAttribute('aria-label', /Where this cell runs/);

    // target
    await button.click();
    const menu = page.locator('.lm-Menu.jp-nbscale-StepMenu');
    await expect(menu).toBeVisible();
    await menu.locator('.lm-Menu-item', { hasText: /^Local workers$/ }).click();
    expect(await cellSource(page, 0)).toBe(
      '%%step --on local\nconst total = 6 * 7;\ntotal'
    );
    await expect(button).toHaveText('local');

    // memory, through the submenu
    await button.click();
    await page
      .locator('.lm-Menu.jp-nbscale-StepMenu .lm-Menu-item', {
        hasText: 'Memory'
      })
      .click();
    await page
      .locator('.lm-Menu .lm-Menu-item', { hasText: /^2 GiB$/ })
      .click();
    expect(await cellSource(page, 0)).toBe(
      '%%step --on local --memory 2G\nconst total = 6 * 7;\ntotal'
    );
    await expect(button).toHaveText('local · 2G');

    // the badge on the cell says the same
    const badge = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-nbscale-StepBadge');
    await expect(badge).toHaveText('local · 2G');
    await expect(badge).toHaveAttribute(
      'aria-label',
      'Step on Local workers · 2G'
    );

    // keyboard: Enter on the focused control opens the menu, which
    // reflects the choice
    await button.focus();
    await page.keyboard.press('Enter');
    await expect(
      page.locator('.lm-Menu.jp-nbscale-StepMenu .lm-Menu-item.lm-mod-toggled')
    ).toHaveText(/Local workers/);
    await page.keyboard.press('Escape');

    await page.sidebar.close('left');
    await page.notebook.selectCells(0);
    await page
      .locator('.jp-Cell')
      .nth(0)
      .screenshot({ path: screenshotPath('toolbar.png') });

    // run it: it runs as a step on a local worker, and `total` comes back
    await page.notebook.runCell(0, { inplace: true });
    const status = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-nbscale-StepStatus');
    await expect(status).toHaveAttribute('data-state', 'succeeded', {
      timeout: 90000
    });
    await expect(status.locator('.jp-nbscale-StepStatus-target')).toHaveText(
      'on Local workers'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-worker')).toHaveText(
      /worker .+ pid \d+/
    );
    await expect(status.locator('.jp-nbscale-StepStatus-memory')).toContainText(
      'of 2 GiB requested'
    );
    await page.notebook.addCell('code', 'total + 1');
    await page.notebook.runCell(1, { inplace: true });
    expect(await page.notebook.getCellTextOutput(1)).toEqual(['43']);
  });

  test('a hand-typed %%step line is reflected in the control and the badge', async ({
    page
  }) => {
    await page.notebook.createNew('typed.ipynb', { kernel: 'nbscale' });
    // The body starts on the second line: an Enter typed after the step line
    // would let CodeMirror indent the body as a continuation of it, or not,
    // depending on whether its TypeScript parse has caught up.
    await page.notebook.setCell(0, 'code', '\nlet y = 1;');
    await page.notebook.selectCells(0);
    await expect(control(page)).toHaveText('not a step');

    // type the line into the editor like a user
    await page.notebook.enterCellEditingMode(0);
    await page.keyboard.press('Control+Home');
    await page.keyboard.type('%%step fit --on batch --memory 16G --gpu 1');
    await expect(control(page)).toHaveText('batch · 16G · 1 GPU');
    const badge = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-nbscale-StepBadge');
    await expect(badge).toHaveText('batch · 16G · 1 GPU');

    // a misspelled option shows as invalid
    await page.keyboard.press('Control+Home');
    await page.keyboard.press('End');
    await page.keyboard.type(' --memroy 2G');
    await expect(control(page)).toHaveText('invalid step');

    // JupyterLab hides the cell toolbar when the first line runs under it;
    // the badge is a button that opens the same menu. Keyboard only:
    // focus it, Enter opens the menu, ArrowDown + Enter picks "Not a step".
    await page.keyboard.press('Escape');
    await badge.focus();
    await page.keyboard.press('Enter');
    const menu = page.locator('.lm-Menu.jp-nbscale-StepMenu');
    await expect(menu).toBeVisible();
    await page.keyboard.press('ArrowDown');
    await expect(menu.locator('.lm-Menu-item.lm-mod-active')).toHaveText(
      /Not a step/
    );
    await page.keyboard.press('Enter');
    await expect.poll(() => cellSource(page, 0)).toBe('let y = 1;');
    await expect(badge).toHaveCount(0);
    await page.notebook.selectCells(0);
    await expect(control(page)).toHaveText('not a step');
  });

  test('settings apply live: default target and memory, badges off', async ({
    page
  }) => {
    await setSettings(page, { defaultTarget: 'slurm', defaultMemory: '8G' });
    await page.notebook.createNew('settings.ipynb', { kernel: 'nbscale' });
    await page.notebook.setCell(0, 'code', 'let z = 2;');
    await page.notebook.selectCells(0);

    // choosing only memory on a plain cell makes it a step on the default target
    await control(page).click();
    await page
      .locator('.lm-Menu.jp-nbscale-StepMenu .lm-Menu-item', {
        hasText: 'CPUs'
      })
      .click();
    await page
      .locator('.lm-Menu .lm-Menu-item', { hasText: /^4 CPUs$/ })
      .click();
    expect(await cellSource(page, 0)).toBe(
      '%%step --on slurm --memory 8G --cpu 4\nlet z = 2;'
    );
    const badge = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-nbscale-StepBadge');
    await expect(badge).toHaveText('slurm · 8G · 4 CPU');

    // badges off: gone at once, without reloading
    await setSettings(page, { showBadges: false });
    await expect(badge).toHaveCount(0);
    await setSettings(page, { showBadges: true });
    await expect(badge).toHaveCount(1);
  });

  test('no control on notebooks of other kernels', async ({ page }) => {
    await page.notebook.createNew('python.ipynb', { kernel: 'python3' });
    await page.notebook.setCell(0, 'code', '%%step --on local\nx = 1');
    await page.notebook.selectCells(0);
    await expect(
      page.locator('.jp-Cell.jp-mod-active .jp-cell-toolbar')
    ).toBeVisible();
    await expect(control(page)).toBeHidden();
    await expect(page.locator('.jp-nbscale-StepBadge')).toHaveCount(0);
  });
});
