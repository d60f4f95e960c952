/**
 * The step-status renderer, fed deterministic bundles from a plain cell
 * (`display.bundle`, and display handles for in-place updates), and its
 * "Re-run with 2× memory" button.
 */
import { expect, test } from '@jupyterlab/galata';
import { Page } from '@playwright/test';
import { screenshotPath } from './screenshots';

const MIME = 'application/vnd.nbscale.step+json';
const GiB = 2 ** 30;

function bundleCell(payloads: Record<string, unknown>[], pauseMs = 0): string {
  // one display handle, updated in place, like the kernel's step handler
  const lines = [
    'import { display } from "nbscale";',
    'const h = display.create();'
  ];
  payloads.forEach((p, i) => {
    if (i > 0 && pauseMs > 0) {
      lines.push(`await new Promise(r => setTimeout(r, ${pauseMs}));`);
    }
    lines.push(
      `h.bundle({ ${JSON.stringify(MIME)}: ${JSON.stringify(p)}, "text/plain": "step ${p.step}: ${p.state}" });`
    );
  });
  return lines.join('\n');
}

async function cellSource(page: Page, index: number): Promise<string> {
  return page.evaluate(i => {
    const panel = (window as any).jupyterapp.shell.currentWidget;
    return panel.content.widgets[i].model.sharedModel.getSource();
  }, index);
}

test.describe('step status renderer', () => {
  test('renders state, target, worker, memory, elapsed, foreach progress and attempt; updates in place', async ({
    page
  }) => {
    await page.notebook.createNew('status.ipynb', { kernel: 'nbscale' });
    const started = new Date(Date.now() - 3000).toISOString();
    await page.notebook.setCell(
      0,
      'code',
      bundleCell(
        [
          { step: 'train', state: 'queued', target: 'local' },
          {
            step: 'train',
            state: 'running',
            target: 'local',
            worker: 'w1 pid 4242',
            memory: { requestedBytes: 2 * GiB, peakBytes: 0.75 * GiB },
            startedAt: started,
            elapsedMs: 3000,
            attempt: 2,
            retries: 2,
            foreach: { done: 3, running: 2, failed: 1, total: 10 }
          }
        ],
        500
      )
    );
    await page.notebook.runCell(0, { inplace: true });
    const status = page
      .locator('.jp-Cell')
      .nth(0)
      .locator('.jp-nbscale-StepStatus');
    // one output, updated in place (display_id), not two
    await expect(status).toHaveCount(1);
    await expect(status).toHaveAttribute('data-state', 'running');
    await expect(status.locator('.jp-nbscale-StepStatus-state')).toHaveText(
      'Running'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-step')).toHaveText(
      'train'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-target')).toHaveText(
      'on Local workers'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-worker')).toHaveText(
      'worker w1 pid 4242'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-attempt')).toHaveText(
      'attempt 2 of 3'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-memory')).toHaveText(
      'memory 768 MiB peak of 2 GiB requested'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-counts')).toHaveText(
      '3/10 done · 2 running · 1 failed'
    );
    await expect(status.locator('progress')).toHaveJSProperty('value', 0.4);

    // the elapsed time ticks while running (it changes at all; the wait only guards a hang)
    const elapsed = status.locator('.jp-nbscale-StepStatus-elapsed');
    const first = await elapsed.textContent();
    await expect(elapsed).not.toHaveText(first ?? '', { timeout: 60000 });

    await page.sidebar.close('left');
    await status.screenshot({ path: screenshotPath('status.png') });

    // other frontends get the text fallback
    const fallback = await page.evaluate(mime => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      const outputs = panel.content.widgets[0].model.outputs;
      const data = outputs.get(outputs.length - 1).data;
      return { text: data['text/plain'], hasMime: mime in data };
    }, MIME);
    expect(fallback).toEqual({ text: 'step train: running', hasMime: true });
  });

  test('an out-of-memory failure offers "Re-run with 2× memory", which edits the line and runs the cell', async ({
    page
  }) => {
    await page.notebook.createNew('oom.ipynb', { kernel: 'nbscale' });
    // fails the first time it runs in this kernel, succeeds after
    const code = [
      'import { display } from "nbscale";',
      'const tries: number = ((globalThis as any).__tries = ((globalThis as any).__tries ?? 0) + 1);',
      `display.bundle({ ${JSON.stringify(MIME)}: tries === 1`,
      `  ? { step: "fit", state: "failed", target: "kernel", memory: { requestedBytes: ${GiB}, peakBytes: ${GiB} }, elapsedMs: 1200, error: { kind: "oom", message: "JavaScript heap out of memory (1 GiB limit)" } }`,
      `  : { step: "fit", state: "succeeded", target: "kernel", memory: { requestedBytes: ${2 * GiB}, peakBytes: ${1.2 * GiB} }, elapsedMs: 900 },`,
      '  "text/plain": "step fit" });'
    ].join('\n');
    await page.notebook.setCell(0, 'code', code);
    await page.notebook.runCell(0, { inplace: true });
    const cell = page.locator('.jp-Cell').nth(0);
    const status = cell.locator('.jp-nbscale-StepStatus');
    await expect(status).toHaveAttribute('data-state', 'failed');
    await expect(status.locator('.jp-nbscale-StepStatus-errorKind')).toHaveText(
      'Out of memory'
    );
    const rerun = status.getByRole('button', { name: 'Re-run with 2× memory' });
    await expect(rerun).toBeVisible();
    await expect(rerun).toHaveAttribute('title', /--memory 2G/);

    // (the editor may have auto-indented what setCell typed)
    const typed = await cellSource(page, 0);
    const countBefore = await cell
      .locator('.jp-InputPrompt')
      .first()
      .textContent();
    await rerun.click();

    // the line says twice the memory, on the target the status named
    await expect
      .poll(() => cellSource(page, 0))
      .toBe(`%%step --on kernel --memory 2G\n${typed}`);
    // and the cell ran again
    await expect(cell.locator('.jp-InputPrompt').first()).not.toHaveText(
      countBefore ?? '',
      { timeout: 60000 }
    );
    await expect(cell.locator('.jp-InputPrompt').first()).not.toHaveText(
      '[*]:',
      { timeout: 60000 }
    );
    // the step ran in the kernel and succeeded: the kernel's own live status
    // of the step comes first, then what the body displayed
    await expect(status).toHaveCount(2);
    await expect(status.first()).toHaveAttribute('data-state', 'succeeded');
    await expect(
      status.first().locator('.jp-nbscale-StepStatus-target')
    ).toHaveText('on Kernel');
    await expect(status.last()).toHaveAttribute('data-state', 'succeeded');
    await expect(
      status.last().locator('.jp-nbscale-StepStatus-memory')
    ).toHaveText('memory 1.2 GiB peak of 2 GiB requested');
  });

  test('a real out-of-memory step on local workers: failed status with the fix, re-run with more memory succeeds', async ({
    page
  }) => {
    await page.notebook.createNew('oom-real.ipynb', { kernel: 'nbscale' });
    // 320 MB of typed array held for a second and a half: over a 256M limit
    const body = [
      'const n = (() => {',
      'const a = new Float64Array(40_000_000).fill(1);',
      'const until = Date.now() + 1500;',
      'while (Date.now() < until) {}',
      'return a[0] + a.length;',
      '})();'
    ].join('\n');
    await page.notebook.setCell(
      0,
      'code',
      `%%step grow --on local --memory 256M\n${body}`
    );
    await page.notebook.runCell(0, { inplace: true });
    const cell = page.locator('.jp-Cell').nth(0);
    const status = cell.locator('.jp-nbscale-StepStatus');
    await expect(status).toHaveAttribute('data-state', 'failed', {
      timeout: 90000
    });
    await expect(status.locator('.jp-nbscale-StepStatus-errorKind')).toHaveText(
      'Out of memory'
    );
    await expect(status.locator('.jp-nbscale-StepStatus-worker')).toHaveText(
      /worker .+ pid \d+/
    );
    const typed = await page.evaluate(() => {
      const panel = (window as any).jupyterapp.shell.currentWidget;
      return panel.content.widgets[0].model.sharedModel.getSource();
    });
    await status.getByRole('button', { name: 'Re-run with 2× memory' }).click();
    await expect
      .poll(() =>
        page.evaluate(() => {
          const panel = (window as any).jupyterapp.shell.currentWidget;
          return panel.content.widgets[0].model.sharedModel.getSource();
        })
      )
      .toMatch(/^%%step grow --on local --memory (512M|768M|1G)\n/);
    await expect(status).toHaveAttribute('data-state', 'succeeded', {
      timeout: 90000
    });
    expect(typed.split('\n').slice(1).join('\n')).toBe(
      (
        await page.evaluate(() => {
          const panel = (window as any).jupyterapp.shell.currentWidget;
          return panel.content.widgets[0].model.sharedModel.getSource();
        })
      )
        .split('\n')
        .slice(1)
        .join('\n')
    );
    // the value came back into the notebook
    await page.notebook.addCell('code', 'n');
    await page.notebook.runCell(1, { inplace: true });
    expect(await page.notebook.getCellTextOutput(1)).toEqual(['40000001']);
  });

  test('a --foreach step on local workers shows item progress and gathers results in order', async ({
    page
  }) => {
    await page.notebook.createNew('foreach.ipynb', { kernel: 'nbscale' });
    await page.notebook.setCell(0, 'code', 'const items = [1, 2, 3, 4, 5, 6];');
    await page.notebook.runCell(0, { inplace: true });
    await page.notebook.addCell(
      'code',
      '%%step squares --on local --foreach items\nconst sq = item * item;'
    );
    await page.notebook.runCell(1, { inplace: true });
    const status = page
      .locator('.jp-Cell')
      .nth(1)
      .locator('.jp-nbscale-StepStatus');
    await expect(status).toHaveCount(1);
    await expect(status).toHaveAttribute('data-state', 'succeeded', {
      timeout: 90000
    });
    await expect(status.locator('.jp-nbscale-StepStatus-counts')).toHaveText(
      '6/6 done · 0 running · 0 failed'
    );
    await expect(status.locator('progress')).toHaveJSProperty('value', 1);
    await page.notebook.addCell('code', 'sq');
    await page.notebook.runCell(2, { inplace: true });
    const out = ((await page.notebook.getCellTextOutput(2)) ?? []).join('');
    expect(out.replace(/\s+/g, '')).toBe('[1,4,9,16,25,36]');
  });
});
