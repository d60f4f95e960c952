import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { PromiseDelegate } from '@lumino/coreutils';
import { Signal } from '@lumino/signaling';

import { STEP_TARGETS, StepTarget, parseSize } from './stepline';
import {
  DEFAULT_SETTINGS,
  EXTENSION_ID,
  INbscaleSettings,
  INbscaleSettingsValues
} from './tokens';

/** The id of the settings plugin; its schema is schema/plugin.json. */
export const SETTINGS_PLUGIN_ID = `${EXTENSION_ID}:plugin`;

/**
 * Turn raw composite settings into valid values, falling back to the
 * default for anything missing or invalid.
 */
export function normalizeSettings(
  raw: Partial<Record<keyof INbscaleSettingsValues, unknown>> | null | undefined
): INbscaleSettingsValues {
  const r = raw ?? {};
  const target = r.defaultTarget;
  const memory = r.defaultMemory;
  const pageSize = r.historyPageSize;
  return {
    defaultTarget:
      typeof target === 'string' &&
      (STEP_TARGETS as readonly string[]).includes(target)
        ? (target as StepTarget)
        : DEFAULT_SETTINGS.defaultTarget,
    defaultMemory:
      typeof memory === 'string' &&
      (memory === '' || parseSize(memory) !== null)
        ? memory
        : DEFAULT_SETTINGS.defaultMemory,
    showBadges:
      typeof r.showBadges === 'boolean'
        ? r.showBadges
        : DEFAULT_SETTINGS.showBadges,
    historyPageSize:
      typeof pageSize === 'number' &&
      Number.isInteger(pageSize) &&
      pageSize >= 1
        ? pageSize
        : DEFAULT_SETTINGS.historyPageSize
  };
}

/** An {@link INbscaleSettings} fed from the setting registry. */
export class NbscaleSettings implements INbscaleSettings {
  get values(): Readonly<INbscaleSettingsValues> {
    return this._values;
  }

  get changed(): Signal<this, Readonly<INbscaleSettingsValues>> {
    return this._changed;
  }

  get ready(): Promise<void> {
    return this._ready.promise;
  }

  /** Adopt the composite values of a loaded settings object. */
  connect(settings: ISettingRegistry.ISettings): void {
    const update = (): void => {
      this.update(
        settings.composite as Partial<
          Record<keyof INbscaleSettingsValues, unknown>
        >
      );
    };
    update();
    settings.changed.connect(update);
    this._ready.resolve();
  }

  /** Replace the values (normalized) and emit `changed` if they differ. */
  update(
    raw: Partial<Record<keyof INbscaleSettingsValues, unknown>> | null
  ): void {
    const next = normalizeSettings(raw);
    const prev = this._values;
    const keys = Object.keys(next) as (keyof INbscaleSettingsValues)[];
    if (keys.every(k => prev[k] === next[k])) {
      return;
    }
    this._values = next;
    this._changed.emit(next);
  }

  /** Settle `ready` without registry values (defaults stay in place). */
  giveUp(): void {
    this._ready.resolve();
  }

  private _values: INbscaleSettingsValues = { ...DEFAULT_SETTINGS };
  private _changed = new Signal<this, Readonly<INbscaleSettingsValues>>(this);
  private _ready = new PromiseDelegate<void>();
}

/**
 * Loads the nbscale settings and provides them to the other plugins.
 */
export const settingsPlugin: JupyterFrontEndPlugin<INbscaleSettings> = {
  id: SETTINGS_PLUGIN_ID,
  description: 'The nbscale settings (default step target, badges, history).',
  autoStart: true,
  provides: INbscaleSettings,
  optional: [ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    registry: ISettingRegistry | null
  ): INbscaleSettings => {
    const settings = new NbscaleSettings();
    if (!registry) {
      settings.giveUp();
      return settings;
    }
    registry
      .load(SETTINGS_PLUGIN_ID)
      .then(loaded => settings.connect(loaded))
      .catch(reason => {
        console.warn(
          `nbscale: could not load settings (${SETTINGS_PLUGIN_ID}); using defaults.`,
          reason
        );
        settings.giveUp();
      });
    return settings;
  }
};
