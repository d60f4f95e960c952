import { normalizeSettings, NbscaleSettings } from '../settings';
import { aboutLines } from '../abouttext';
import { DEFAULT_SETTINGS } from '../tokens';

// Keep the defaults in the code and in the schema identical.
// eslint-disable-next-line @typescript-eslint/no-var-requires
const schema = require('../../schema/plugin.json');

describe('settings', () => {
  it('has the same defaults as schema/plugin.json', () => {
    const fromSchema: Record<string, unknown> = {};
    for (const [key, prop] of Object.entries<any>(schema.properties)) {
      fromSchema[key] = prop.default;
    }
    expect(fromSchema).toEqual(DEFAULT_SETTINGS);
    expect(schema.title).toBe('nbscale');
  });

  it('normalizes invalid values to the defaults', () => {
    expect(normalizeSettings(null)).toEqual(DEFAULT_SETTINGS);
    expect(
      normalizeSettings({
        defaultTarget: 'cloud',
        defaultMemory: 'lots',
        showBadges: 'yes',
        historyPageSize: 0
      })
    ).toEqual(DEFAULT_SETTINGS);
    expect(
      normalizeSettings({
        defaultTarget: 'slurm',
        defaultMemory: '8G',
        showBadges: false,
        historyPageSize: 10
      })
    ).toEqual({
      defaultTarget: 'slurm',
      defaultMemory: '8G',
      showBadges: false,
      historyPageSize: 10
    });
  });

  it('emits changed only when a value changes', () => {
    const settings = new NbscaleSettings();
    const seen: unknown[] = [];
    settings.changed.connect((_, v) => seen.push(v));
    settings.update({ ...DEFAULT_SETTINGS });
    expect(seen).toHaveLength(0);
    settings.update({ ...DEFAULT_SETTINGS, defaultTarget: 'batch' });
    expect(seen).toHaveLength(1);
    expect(settings.values.defaultTarget).toBe('batch');
  });
});

describe('about', () => {
  it('shows the kernel implementation version when a kernel runs', () => {
    const lines = aboutLines({
      extensionVersion: '0.1.0',
      info: {
        implementation: 'nbscale',
        implementation_version: '0.1.0',
        language_info: { name: 'typescript', version: '5.5.4' }
      }
    });
    expect(lines).toEqual([
      'JupyterLab extension jupyterlab-nbscale 0.1.0',
      'Kernel: nbscale 0.1.0 (typescript 5.5.4)'
    ]);
  });

  it('says how to install the kernel when there is no kernelspec', () => {
    const lines = aboutLines({ extensionVersion: '0.1.0', spec: null });
    expect(lines[1]).toMatch(/no "nbscale" kernelspec found/);
  });
});
