/**
 * Pure formatting and arithmetic for the step-status renderer (jest-tested
 * in src/__tests__/status.spec.ts): sizes, durations, progress, and the
 * memory the "Re-run with 2× memory" button writes.
 */
import { IStepOptions, parseSize } from '../stepline';
import { IJobStates, IStepStatus, isFinalState } from './schema';

const KIB = 1024;
const UNITS: Array<[string, number]> = [
  ['TiB', KIB ** 4],
  ['GiB', KIB ** 3],
  ['MiB', KIB ** 2],
  ['KiB', KIB]
];

/** `2147483648` → `2 GiB`, `1610612736` → `1.5 GiB`, `900` → `900 B`. */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes) || bytes < 0) {
    return '?';
  }
  for (const [unit, size] of UNITS) {
    if (bytes >= size) {
      const v = bytes / size;
      // one decimal below 10 units, none above: "1.5 GiB", "12 GiB"
      const text =
        v >= 10 || Number.isInteger(v)
          ? String(Math.round(v))
          : v.toFixed(1).replace(/\.0$/, '');
      return `${text} ${unit}`;
    }
  }
  return `${Math.round(bytes)} B`;
}

/** `950` → `0.9 s`, `65000` → `1 m 05 s`, `7380000` → `2 h 03 m`. */
export function formatElapsed(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) {
    return '?';
  }
  if (ms < 10000) {
    return `${(Math.floor(ms / 100) / 10).toFixed(1)} s`;
  }
  const s = Math.floor(ms / 1000);
  if (s < 60) {
    return `${s} s`;
  }
  const pad = (n: number): string => String(n).padStart(2, '0');
  const m = Math.floor(s / 60);
  if (m < 60) {
    return `${m} m ${pad(s % 60)} s`;
  }
  return `${Math.floor(m / 60)} h ${pad(m % 60)} m`;
}

/**
 * The run time to show now: while the step runs, counted from `startedAt`
 * (so the display ticks between kernel updates); once it ended, what the
 * kernel reported.
 */
export function elapsedNow(status: IStepStatus, now: number): number | null {
  const live =
    !isFinalState(status.state) && status.state !== 'queued'
      ? status.startedAt
      : undefined;
  if (live) {
    const started = Date.parse(live);
    const counted = Math.max(0, now - started);
    // never show less than the kernel already reported (clock skew)
    return Math.max(counted, status.elapsedMs ?? 0);
  }
  return status.elapsedMs ?? null;
}

/** `SUBMITTED 0.4 s → RUNNABLE 12 s → RUNNING 3.1 s`: a scheduler job's way so far. */
export function jobStatesText(job: IJobStates): string {
  return job.states
    .map(j =>
      j.ms === undefined ? j.state : `${j.state} ${formatElapsed(j.ms)}`
    )
    .join(' → ');
}

/** Fraction of a foreach done (failed items count as finished), 0..1. */
export function foreachFraction(f: IStepStatus['foreach']): number {
  if (!f || f.total <= 0) {
    return 0;
  }
  return Math.min(1, (f.done + f.failed) / f.total);
}

/**
 * Bytes as a `--memory` SIZE the kernel accepts, in the largest binary unit
 * that expresses it exactly, rounded up to a whole MiB: `4G`, `1536M`.
 */
export function sizeText(bytes: number): string {
  const mib = Math.max(1, Math.ceil(bytes / KIB ** 2));
  if (mib % KIB ** 2 === 0) {
    return `${mib / KIB ** 2}T`;
  }
  if (mib % KIB === 0) {
    return `${mib / KIB}G`;
  }
  return `${mib}M`;
}

/**
 * What a step gets when it runs on a local worker and asks for nothing:
 * Node's default heap here is about 4 GiB (PRODUCT.md), so "twice as much"
 * of nothing is 8 GiB.
 */
export const ASSUMED_DEFAULT_MEMORY = 4 * KIB ** 3;

/**
 * The `--memory` to write when re-running after an out-of-memory failure:
 * the kernel's suggestion when it asks for more than twice as much, else
 * twice what the `%%step` line asked for (or, failing that, what the
 * status says was requested, or the peak seen, or the assumed default).
 */
export function rerunMemory(
  options: IStepOptions | null,
  status: IStepStatus | null
): string {
  const fromLine = options?.memory ? parseSize(options.memory) : null;
  const current =
    fromLine ??
    status?.memory?.requestedBytes ??
    status?.memory?.peakBytes ??
    ASSUMED_DEFAULT_MEMORY;
  const doubled = current * 2;
  const suggested = status?.error?.suggestedMemory
    ? parseSize(status.error.suggestedMemory)
    : null;
  return sizeText(
    suggested !== null && suggested > doubled ? suggested : doubled
  );
}

/**
 * The `%%step` options after the re-run button: the same line with only
 * `--memory` changed, so everything else the user wrote stays.
 */
export function optionsForRerun(
  options: IStepOptions | null,
  status: IStepStatus | null
): IStepOptions {
  const base: IStepOptions = options ? { ...options } : {};
  if (!options && status?.target) {
    base.on = status.target as IStepOptions['on'];
  }
  base.memory = rerunMemory(options, status);
  return base;
}
