/**
 * User-visible names shared by the toolbar, the status renderer and the
 * history sidebar. They go through the translator at the point of use, so
 * every string stays translation-ready (`trans.__` with a literal).
 */
import { TranslationBundle } from '@jupyterlab/translation';

import { StepTarget } from './stepline';

/** The long name of a target, as the toolbar menu and the renderer show it. */
export function targetLabel(trans: TranslationBundle, target: string): string {
  switch (target as StepTarget) {
    case 'kernel':
      return trans.__('Kernel');
    case 'local':
      return trans.__('Local workers');
    case 'batch':
      return trans.__('AWS Batch');
    case 'slurm':
      return trans.__('Slurm');
    default:
      return target;
  }
}

/** The short name used on the compact toolbar button and the badge. */
export function targetShortLabel(
  trans: TranslationBundle,
  target: string
): string {
  switch (target as StepTarget) {
    case 'kernel':
      return trans.__('kernel');
    case 'local':
      return trans.__('local');
    case 'batch':
      return trans.__('batch');
    case 'slurm':
      return trans.__('slurm');
    default:
      return target;
  }
}
