import {
  IStepOptions,
  formatStepLine,
  getStepLine,
  isStepLine,
  parseDuration,
  parseSize,
  parseStepLine,
  parseStepLineDetailed,
  quoteWord,
  setStepLine,
  splitWords
} from '../stepline';
import { REJECTED, ROUND_TRIPS } from './fixtures';

describe('parseStepLine', () => {
  it('parses a bare %%step line', () => {
    expect(parseStepLine('%%step')).toEqual({});
    expect(parseStepLine('%%step   ')).toEqual({});
  });

  it('parses the example from the contract', () => {
    expect(parseStepLine('%%step train --on local --memory 16G')).toEqual({
      name: 'train',
      on: 'local',
      memory: '16G'
    });
  });

  it('parses every option', () => {
    const line =
      '%%step fit-model_2 --on slurm --memory 64GiB --cpu 8 --gpu 1 ' +
      '--foreach "models.slice(0, 3)" --parallel 4 --retries 2 --timeout 1h30m ' +
      "--env A=1 --env B='x y' --queue gpu-queue --image repo/img:1.2 --partition long";
    expect(parseStepLine(line)).toEqual({
      name: 'fit-model_2',
      on: 'slurm',
      memory: '64GiB',
      cpu: 8,
      gpu: 1,
      foreach: 'models.slice(0, 3)',
      parallel: 4,
      retries: 2,
      timeout: '1h30m',
      env: { A: '1', B: 'x y' },
      queue: 'gpu-queue',
      image: 'repo/img:1.2',
      partition: 'long'
    });
  });

  it('accepts --opt=value and options before the name', () => {
    expect(parseStepLine('%%step --on=batch --memory=512M prep')).toEqual({
      name: 'prep',
      on: 'batch',
      memory: '512M'
    });
  });

  it('keeps "=" inside --env values and quoted "--" values', () => {
    expect(parseStepLine('%%step --env URL=a=b')).toEqual({
      env: { URL: 'a=b' }
    });
    expect(parseStepLine('%%step --foreach "--x"')).toEqual({
      foreach: '--x'
    });
    expect(parseStepLine('%%step --env K="a b"')).toEqual({
      env: { K: 'a b' }
    });
  });

  it('returns null for lines that are not %%step lines', () => {
    expect(parseStepLine('')).toBeNull();
    expect(parseStepLine('const x = 1')).toBeNull();
    expect(parseStepLine('%%stepper')).toBeNull();
    expect(parseStepLine('%step train')).toBeNull();
    expect(parseStepLine('%%time')).toBeNull();
  });
});

describe('parseStepLine rejects', () => {
  it.each(REJECTED)('%s', (line, message) => {
    expect(parseStepLine(line)).toBeNull();
    const result = parseStepLineDetailed(line);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.error).toMatch(message);
    }
  });
});

describe('formatStepLine', () => {
  it('formats in canonical order', () => {
    expect(
      formatStepLine({ memory: '8G', on: 'batch', name: 'train', cpu: 2 })
    ).toBe('%%step train --on batch --memory 8G --cpu 2');
    expect(formatStepLine({})).toBe('%%step');
  });

  it('quotes values that need it', () => {
    expect(
      formatStepLine({
        foreach: 'xs.map(x => x * 2)',
        env: { MSG: "it's", PLAIN: 'v' }
      })
    ).toBe(
      '%%step --foreach "xs.map(x => x * 2)" --env "MSG=it\'s" --env PLAIN=v'
    );
  });

  it('refuses options that would not parse back', () => {
    expect(() => formatStepLine({ name: 'a/b' })).toThrow(/step name/);
    expect(() => formatStepLine({ memory: 'big' })).toThrow(/size/);
    expect(() => formatStepLine({ cpu: 0.5 })).toThrow(/positive integer/);
    expect(() => formatStepLine({ env: { 'A B': '1' } })).toThrow(/--env/);
    expect(() => formatStepLine({ foreach: 'a\nb' })).toThrow(/one line/);
    expect(() =>
      formatStepLine({ on: 'cloud' as unknown as IStepOptions['on'] })
    ).toThrow(/expected one of/);
  });

  it.each(ROUND_TRIPS)('round-trips %j', options => {
    const line = formatStepLine(options);
    expect(parseStepLine(line)).toEqual(options);
    expect(formatStepLine(parseStepLine(line)!)).toBe(line);
  });
});

describe('words and units', () => {
  it('splits and quotes symmetrically', () => {
    for (const w of [
      'a',
      '',
      'a b',
      "it's",
      'say "x"',
      'back\\slash',
      '\'"',
      '--x'
    ]) {
      expect(splitWords(quoteWord(w))).toEqual([w]);
    }
    expect(splitWords(' a  "b c"d \'e\\\' f\\ g ')).toEqual([
      'a',
      'b cd',
      'e\\',
      'f g'
    ]);
  });

  it('parses sizes in binary units', () => {
    expect(parseSize('512M')).toBe(512 * 1024 ** 2);
    expect(parseSize('8G')).toBe(8 * 1024 ** 3);
    expect(parseSize('8GB')).toBe(8 * 1024 ** 3);
    expect(parseSize('64GiB')).toBe(64 * 1024 ** 3);
    expect(parseSize('1.5T')).toBe(1.5 * 1024 ** 4);
    expect(parseSize('100B')).toBe(100);
    expect(parseSize('16')).toBeNull();
    expect(parseSize('G')).toBeNull();
  });

  it('parses durations to milliseconds', () => {
    expect(parseDuration('90s')).toBe(90000);
    expect(parseDuration('10m')).toBe(600000);
    expect(parseDuration('2h')).toBe(7200000);
    expect(parseDuration('1h30m')).toBe(5400000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('30m1h')).toBeNull();
    expect(parseDuration('10')).toBeNull();
    expect(parseDuration('')).toBeNull();
  });
});

describe('cell source helpers', () => {
  it('finds the %%step line', () => {
    expect(isStepLine('%%step')).toBe(true);
    expect(getStepLine('%%step a --on local\nconst x = 1')).toBe(
      '%%step a --on local'
    );
    expect(getStepLine('%%step a\r\nx')).toBe('%%step a');
    expect(getStepLine('\n  \n%%step a\nx')).toBe('%%step a');
    expect(getStepLine('const x = 1\n%%step a')).toBeNull();
    expect(getStepLine('')).toBeNull();
  });

  it('inserts, replaces and removes the %%step line', () => {
    const body = 'const x = 1;\nx';
    const withStep = setStepLine(body, { name: 'a', on: 'local' });
    expect(withStep).toBe('%%step a --on local\n' + body);
    expect(setStepLine(withStep, { name: 'a', on: 'batch' })).toBe(
      '%%step a --on batch\n' + body
    );
    expect(setStepLine(withStep, null)).toBe(body);
    expect(setStepLine('\n%%step b\n' + body, null)).toBe(body);
    expect(setStepLine(body, null)).toBe(body);
    expect(setStepLine('%%step', null)).toBe('');
    expect(setStepLine('', {})).toBe('%%step\n');
  });
});
