/**
 * Galata (Playwright) configuration for jupyterlab-nbscale.
 *
 * - Uses Debian's Chromium (`apt-get install chromium`); no Playwright
 *   browser is ever downloaded. Override with NBSCALE_CHROMIUM.
 * - Starts its own JupyterLab on a fixed port (NBSCALE_UI_PORT, default
 *   8765) from the project venv when there is one.
 */
const fs = require('fs');
const path = require('path');

const baseConfig = require('@jupyterlab/galata/lib/playwright-config');

const port = Number(process.env.NBSCALE_UI_PORT || 8765);
const venvJupyter = path.resolve(__dirname, '..', '.venv', 'bin', 'jupyter');
const jupyter = fs.existsSync(venvJupyter) ? venvJupyter : 'jupyter';
const chromium = process.env.NBSCALE_CHROMIUM || '/usr/bin/chromium';

module.exports = {
  ...baseConfig,
  testDir: './tests',
  // a 2-core machine shared with other work: one browser, generous timeouts
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 180 * 1000,
  expect: { timeout: 30 * 1000 },
  reporter: [['list'], ['html', { open: 'never' }]],
  use: {
    ...baseConfig.use,
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    launchOptions: {
      executablePath: chromium,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-dev-shm-usage',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run'
      ]
    },
    actionTimeout: 30 * 1000,
    navigationTimeout: 90 * 1000,
    trace: 'off',
    video: 'off',
    screenshot: 'only-on-failure'
  },
  webServer: {
    command: `${jupyter} lab --config jupyter_server_test_config.py`,
    url: `http://127.0.0.1:${port}/lab`,
    timeout: 180 * 1000,
    reuseExistingServer: !!process.env.NBSCALE_UI_REUSE_SERVER,
    // NBSCALE_PROGRESS_AFTER_MS=0: the live lines of large recordings and restores appear
    // whatever this machine's speed (history.spec.ts waits for them)
    env: {
      ...process.env,
      NBSCALE_UI_PORT: String(port),
      NBSCALE_PROGRESS_AFTER_MS: '0'
    },
    stdout: 'ignore',
    stderr: 'pipe'
  }
};
