import { KernelMessage, KernelSpec } from '@jupyterlab/services';

import { KERNEL_NAME } from './tokens';

/** What the about dialog shows, one entry per line. */
export interface IAboutFacts {
  extensionVersion: string;
  /** The nbscale kernelspec, when the server has one. */
  spec?: Pick<KernelSpec.ISpecModel, 'display_name' | 'language'> | null;
  /** kernel_info of a running nbscale kernel (the current notebook's). */
  info?: Pick<
    KernelMessage.IInfoReply,
    'implementation' | 'implementation_version' | 'language_info'
  > | null;
}

/** The lines of the about dialog; pure so it can be unit tested. */
export function aboutLines(facts: IAboutFacts): string[] {
  const lines = [
    `JupyterLab extension jupyterlab-nbscale ${facts.extensionVersion}`
  ];
  if (facts.info) {
    const lang = facts.info.language_info;
    lines.push(
      `Kernel: ${facts.info.implementation} ${facts.info.implementation_version}` +
        (lang ? ` (${lang.name}${lang.version ? ' ' + lang.version : ''})` : '')
    );
  } else if (facts.spec) {
    lines.push(
      `Kernel: "${facts.spec.display_name}" is installed; open a notebook on it to see its version.`
    );
  } else {
    lines.push(
      `Kernel: no "${KERNEL_NAME}" kernelspec found. Install it with "pip install jupyterlab-nbscale" or "nbscale kernel install".`
    );
  }
  return lines;
}
