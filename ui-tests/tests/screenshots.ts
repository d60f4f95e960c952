import * as path from 'path';

/**
 * Where a test writes a README screenshot: $NBSCALE_SCREENSHOTS/NAME.
 * `npm run screenshots` (scripts/screenshots.sh) points it at docs/screenshots;
 * scripts/test.sh at .test-reports/screenshots; by default it is
 * ui-tests/test-results/screenshots. A test run never rewrites committed files.
 */
export function screenshotPath(name: string): string {
  const dir =
    process.env.NBSCALE_SCREENSHOTS ||
    path.resolve(__dirname, '..', 'test-results', 'screenshots');
  return path.join(path.resolve(dir), name);
}
