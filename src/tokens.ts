import { Token } from '@lumino/coreutils';
import { ISignal } from '@lumino/signaling';

import { StepTarget } from './stepline';

/** The npm package name, also the prefix of every plugin id. */
export const EXTENSION_ID = 'jupyterlab-nbscale';

/** The kernelspec name of the nbscale kernel. */
export const KERNEL_NAME = 'nbscale';

/** Command ids, collected here so that plugins and tests agree. */
export namespace CommandIDs {
  export const about = 'nbscale:about';
  /** args: `{target: kernel|local|batch|slurm|none, cellId?}` */
  export const setStepTarget = 'nbscale:set-step-target';
  /** args: `{memory: SIZE | '', cellId?}` ('' removes --memory) */
  export const setStepMemory = 'nbscale:set-step-memory';
  /** args: `{cpu: N, cellId?}` (0 removes --cpu) */
  export const setStepCpu = 'nbscale:set-step-cpu';
  /** args: `{gpu: N, cellId?}` (-1 removes --gpu) */
  export const setStepGpu = 'nbscale:set-step-gpu';
  /** Doubles --memory of the active cell's step and runs it. */
  export const rerunWithMoreMemory = 'nbscale:rerun-with-more-memory';
  /** Shows the history sidebar. */
  export const openHistory = 'nbscale:open-history';
  /** args: `{name, version, path?}`: `%restore NAME@VERSION` in the notebook's kernel. */
  export const restoreVersion = 'nbscale:restore-version';
  /** Saves the notebook, writes its flow file next to it and opens it. */
  export const exportFlow = 'nbscale:export-flow';
}

/** The user settings of nbscale (see schema/plugin.json). */
export interface INbscaleSettingsValues {
  /** Target written by the toolbar when a cell becomes a step. */
  defaultTarget: StepTarget;
  /** Memory written by the toolbar ('' = none). */
  defaultMemory: string;
  /** Whether step-status badges are shown on cells. */
  showBadges: boolean;
  /** How many executions the history sidebar fetches at a time. */
  historyPageSize: number;
}

/** The default values, identical to the defaults in schema/plugin.json. */
export const DEFAULT_SETTINGS: Readonly<INbscaleSettingsValues> = {
  defaultTarget: 'local',
  defaultMemory: '',
  showBadges: true,
  historyPageSize: 50
};

/** The current nbscale settings, kept up to date. */
export interface INbscaleSettings {
  /** The current values (defaults until the registry has answered). */
  readonly values: Readonly<INbscaleSettingsValues>;
  /** Emits after the values changed. */
  readonly changed: ISignal<INbscaleSettings, Readonly<INbscaleSettingsValues>>;
  /** Resolves once the values have been loaded from the setting registry. */
  readonly ready: Promise<void>;
}

export const INbscaleSettings = new Token<INbscaleSettings>(
  `${EXTENSION_ID}:INbscaleSettings`,
  'The nbscale user settings (default step target, badges, history).'
);
