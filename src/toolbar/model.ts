/**
 * What the cell toolbar control does to a cell's `%%step` options, as pure
 * functions (jest-tested in src/__tests__/toolbar.spec.ts). The control
 * never keeps state of its own: it reads the options from the cell's first
 * line and writes new options back with `setStepLine`.
 */
import { IStepOptions, StepTarget, parseSize } from '../stepline';
import { INbscaleSettingsValues } from '../tokens';

/** The memory sizes offered in the menu (values as written in the line). */
export const MEMORY_CHOICES: readonly string[] = [
  '512M',
  '1G',
  '2G',
  '4G',
  '8G',
  '16G',
  '32G',
  '64G',
  '128G'
];

export const CPU_CHOICES: readonly number[] = [1, 2, 4, 8, 16, 32];

export const GPU_CHOICES: readonly number[] = [0, 1, 2, 4, 8];

/** `2G` → `2 GiB`, `512M` → `512 MiB` (how the menu names a size). */
export function memoryLabel(size: string): string {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT])/i.exec(size.trim());
  return m ? `${m[1]} ${m[2].toUpperCase()}iB` : size;
}

/** Whether two SIZEs are the same amount (`2G` and `2048MiB` are). */
export function sameSize(
  a: string | undefined,
  b: string | undefined
): boolean {
  if (a === undefined || b === undefined) {
    return a === b;
  }
  const x = parseSize(a);
  return x !== null && x === parseSize(b);
}

type Defaults = Pick<INbscaleSettingsValues, 'defaultTarget' | 'defaultMemory'>;

/** The options of a cell that the toolbar has just turned into a step. */
export function newStepOptions(
  defaults: Defaults,
  target?: StepTarget
): IStepOptions {
  const options: IStepOptions = { on: target ?? defaults.defaultTarget };
  if (defaults.defaultMemory && parseSize(defaults.defaultMemory) !== null) {
    options.memory = defaults.defaultMemory;
  }
  return options;
}

/**
 * Choosing a target: null ("Not a step") removes the line; a target on a
 * plain cell makes it a step with the default memory; on a step it changes
 * only `--on`, keeping everything else the user wrote.
 */
export function withTarget(
  options: IStepOptions | null,
  target: StepTarget | null,
  defaults: Defaults
): IStepOptions | null {
  if (target === null) {
    return null;
  }
  if (options === null) {
    return newStepOptions(defaults, target);
  }
  return { ...options, on: target };
}

/** The resources the control sets; undefined removes the option. */
export interface IResourceChoice {
  memory?: string;
  cpu?: number;
  gpu?: number;
}

/**
 * Choosing memory / CPUs / GPUs: on a plain cell this also makes it a step
 * (on the default target); `undefined` values remove that option.
 */
export function withResource<K extends keyof IResourceChoice>(
  options: IStepOptions | null,
  key: K,
  value: IResourceChoice[K],
  defaults: Defaults
): IStepOptions {
  const next: IStepOptions = options
    ? { ...options }
    : newStepOptions(defaults);
  if (value === undefined) {
    delete next[key];
  } else {
    (next as Record<string, unknown>)[key] = value;
  }
  return next;
}

/**
 * The short text of the control and of a badge: `local · 2G · 4 CPU`.
 * `defaultTarget` fills in a line that has no `--on` (the kernel defaults
 * the same way).
 */
export function stepSummary(
  options: IStepOptions,
  defaultTarget: StepTarget,
  targetName: (t: string) => string
): string {
  const parts = [targetName(options.on ?? defaultTarget)];
  if (options.memory) {
    parts.push(options.memory);
  }
  if (options.cpu !== undefined) {
    parts.push(`${options.cpu} CPU`);
  }
  if (options.gpu) {
    parts.push(`${options.gpu} GPU`);
  }
  return parts.join(' · ');
}
