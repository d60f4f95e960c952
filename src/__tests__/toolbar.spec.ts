/**
 * What the toolbar control writes into a cell, and how it reads it back.
 */
import {
  memoryLabel,
  newStepOptions,
  sameSize,
  stepSummary,
  withResource,
  withTarget
} from '../toolbar/model';
import {
  IStepOptions,
  getStepLine,
  parseStepLine,
  setStepLine
} from '../stepline';

const defaults = { defaultTarget: 'local' as const, defaultMemory: '' };

/** Apply one toolbar choice to a cell source, as the command does. */
function choose(
  source: string,
  change: (o: IStepOptions | null) => IStepOptions | null
): string {
  const line = getStepLine(source);
  const options = line === null ? null : parseStepLine(line);
  return setStepLine(source, change(options));
}

describe('toolbar choices → %%step line', () => {
  it('turns a plain cell into a step on the chosen target', () => {
    const src = choose('x = 1', o => withTarget(o, 'local', defaults));
    expect(src).toBe('%%step --on local\nx = 1');
    expect(choose(src, o => withResource(o, 'memory', '2G', defaults))).toBe(
      '%%step --on local --memory 2G\nx = 1'
    );
  });

  it('uses the default target and memory for a new step', () => {
    const d = { defaultTarget: 'batch' as const, defaultMemory: '8G' };
    expect(choose('x', o => withResource(o, 'cpu', 4, d))).toBe(
      '%%step --on batch --memory 8G --cpu 4\nx'
    );
    expect(newStepOptions(d, 'slurm')).toEqual({ on: 'slurm', memory: '8G' });
    expect(newStepOptions({ ...d, defaultMemory: 'lots' })).toEqual({
      on: 'batch'
    });
  });

  it('keeps everything else a hand-written line says', () => {
    const src =
      '%%step train --on local --memory 4G --foreach "items.slice(0, 3)" --retries 2\nbody';
    expect(choose(src, o => withTarget(o, 'slurm', defaults))).toBe(
      '%%step train --on slurm --memory 4G --foreach "items.slice(0, 3)" --retries 2\nbody'
    );
    expect(
      choose(src, o => withResource(o, 'memory', undefined, defaults))
    ).toBe(
      '%%step train --on local --foreach "items.slice(0, 3)" --retries 2\nbody'
    );
  });

  it('"Not a step" removes the line', () => {
    expect(
      choose('%%step --on batch\n\nbody', o => withTarget(o, null, defaults))
    ).toBe('\nbody');
  });

  it('summarizes options for the button and the badge', () => {
    const name = (t: string): string => t;
    expect(stepSummary(parseStepLine('%%step')!, 'local', name)).toBe('local');
    expect(
      stepSummary(
        parseStepLine('%%step --on batch --memory 16G --cpu 4 --gpu 1')!,
        'local',
        name
      )
    ).toBe('batch · 16G · 4 CPU · 1 GPU');
    expect(stepSummary(parseStepLine('%%step --gpu 0')!, 'kernel', name)).toBe(
      'kernel'
    );
  });

  it('names and compares sizes', () => {
    expect(memoryLabel('2G')).toBe('2 GiB');
    expect(memoryLabel('512M')).toBe('512 MiB');
    expect(sameSize('2G', '2048MiB')).toBe(true);
    expect(sameSize('2G', '4G')).toBe(false);
    expect(sameSize(undefined, '4G')).toBe(false);
  });
});
