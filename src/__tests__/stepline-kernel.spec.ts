/**
 * The frontend's %%step parser must agree with the kernel's, which is the
 * authority (kernel/src/magics). Both are run on the same lines.
 */
import * as kernelMagics from '../../kernel/src/magics';

import {
  IStepOptions,
  formatStepLine,
  parseDuration,
  parseSize,
  parseStepLine
} from '../stepline';
import { REJECTED, ROUND_TRIPS } from './fixtures';

function kernelParse(line: string): Record<string, unknown> | null {
  try {
    const parsed = kernelMagics.parseCellMagic(`${line}\nx`);
    return parsed
      ? (parsed.options as unknown as Record<string, unknown>)
      : null;
  } catch (e) {
    if (e instanceof kernelMagics.MagicError) {
      return null;
    }
    throw e;
  }
}

/** The frontend options in the kernel's normalized form. */
function normalized(o: IStepOptions): Record<string, unknown> {
  const out: Record<string, unknown> = {
    ...o,
    on: o.on ?? 'local',
    env: o.env ?? {}
  };
  if (o.memory !== undefined) {
    out.memory = parseSize(o.memory);
  }
  if (o.timeout !== undefined) {
    out.timeout = parseDuration(o.timeout);
  }
  return out;
}

const ACCEPTED = [
  '%%step',
  '%%step train --on local --memory 16G',
  '%%step --on=batch --memory=512M prep',
  '%%step --env URL=a=b --env K="a b" --foreach "--x"',
  "%%step x --foreach 'a \\\"b' --image a\\ b --timeout 1d2h3m4s5ms",
  '%%step x --memory .5G --cpu 2 --gpu 0 --parallel 2 --retries 0 --queue q --partition p'
];

describe('the frontend and kernel %%step parsers agree', () => {
  it.each(ACCEPTED)('both accept %s with the same meaning', line => {
    const mine = parseStepLine(line);
    expect(mine).not.toBeNull();
    expect(kernelParse(line)).toEqual(normalized(mine!));
  });

  it.each(REJECTED.map(([line]) => line))('both reject %s', line => {
    expect(parseStepLine(line)).toBeNull();
    expect(kernelParse(line)).toBeNull();
  });

  it.each(ROUND_TRIPS)('the kernel reads formatted %j the same', options => {
    const line = formatStepLine(options);
    expect(kernelParse(line)).toEqual(normalized(options));
  });

  it('formats exactly like the kernel for canonical spellings', () => {
    const options: IStepOptions = {
      name: 'train',
      on: 'batch',
      memory: '8G',
      cpu: 2,
      foreach: 'items.slice(0, 3)',
      timeout: '1h30m',
      env: { MSG: 'hello world' },
      queue: 'q1'
    };
    const kernelOptions = kernelParse(formatStepLine(options));
    expect(kernelOptions).not.toBeNull();
    expect(
      kernelMagics.formatStepLine(
        kernelOptions as unknown as kernelMagics.StepOptions
      )
    ).toBe(formatStepLine(options));
  });
});
