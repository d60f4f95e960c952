/**
 * Step-status payloads: the kernel's bundles parse in the frontend, and the
 * pure formatting / re-run arithmetic.
 */
import {
  stepStatusBundle,
  stepStatusText
} from '../../kernel/src/session/step-status';

import {
  elapsedNow,
  foreachFraction,
  formatBytes,
  jobStatesText,
  formatElapsed,
  optionsForRerun,
  rerunMemory,
  sizeText
} from '../status/format';
import { STEP_STATUS_MIME, parseStepStatus } from '../status/schema';
import { formatStepLine, parseStepLine } from '../stepline';

const GiB = 2 ** 30;

describe('kernel bundle → frontend payload', () => {
  it('carries both MIME types and parses back field for field', () => {
    const status = {
      step: 'train',
      state: 'failed' as const,
      target: 'local',
      worker: 'w2 pid 4242',
      memory: { requestedBytes: 2 * GiB, peakBytes: 2 * GiB },
      startedAt: '2025-01-02T03:04:05.000Z',
      elapsedMs: 65000,
      attempt: 2,
      retries: 1,
      foreach: { done: 3, running: 1, failed: 1, total: 10 },
      error: {
        kind: 'oom',
        message: 'JavaScript heap out of memory',
        suggestedMemory: '6G'
      }
    };
    const bundle = stepStatusBundle(status);
    expect(Object.keys(bundle).sort()).toEqual(
      [STEP_STATUS_MIME, 'text/plain'].sort()
    );
    expect(parseStepStatus(bundle[STEP_STATUS_MIME])).toEqual(status);
    const text = bundle['text/plain'] as string;
    expect(text).toContain('step train: failed');
    expect(text).toContain('on local');
    expect(text).toContain('attempt 2 of 2');
    expect(text).toContain('memory 2 GiB peak of 2 GiB');
    expect(text).toContain('1 m 05 s');
    expect(text).toContain('3/10 done, 1 running, 1 failed');
    expect(text).toContain('oom: JavaScript heap out of memory');
    expect(text).toContain('--memory 6G');
  });

  it("carries a scheduler job's states and the time in each", () => {
    const status = {
      step: 'train',
      state: 'queued' as const,
      target: 'batch',
      jobId: 'a1b2',
      job: {
        system: 'AWS Batch',
        state: 'RUNNABLE',
        states: [
          { state: 'SUBMITTED', ms: 400 },
          { state: 'RUNNABLE', ms: 12000 }
        ]
      }
    };
    const bundle = stepStatusBundle(status);
    const parsed = parseStepStatus(bundle[STEP_STATUS_MIME]);
    expect(parsed).toEqual(status);
    expect(jobStatesText(parsed!.job!)).toBe('SUBMITTED 0.4 s → RUNNABLE 12 s');
    expect(bundle['text/plain']).toContain('SUBMITTED 0.4 s → RUNNABLE 12 s');
    const ended = parseStepStatus({
      ...status,
      state: 'failed',
      job: {
        ...status.job,
        state: 'FAILED',
        states: [...status.job.states, { state: 'FAILED' }]
      }
    });
    expect(jobStatesText(ended!.job!)).toBe(
      'SUBMITTED 0.4 s → RUNNABLE 12 s → FAILED'
    );
  });

  it('drops undefined fields from the wire', () => {
    const bundle = stepStatusBundle({
      step: 's',
      state: 'queued',
      target: undefined
    });
    expect(bundle[STEP_STATUS_MIME]).toEqual({ step: 's', state: 'queued' });
    expect(stepStatusText({ step: 's', state: 'queued' })).toBe(
      'step s: queued'
    );
  });

  it('refuses what is not a status and ignores mistyped fields', () => {
    expect(parseStepStatus(null)).toBeNull();
    expect(parseStepStatus({ state: 'exploded' })).toBeNull();
    expect(
      parseStepStatus({
        state: 'running',
        elapsedMs: 'soon',
        memory: { peakBytes: -1 },
        foreach: { done: 1 }
      })
    ).toEqual({ step: 'step', state: 'running' });
  });
});

describe('formatting', () => {
  it('formats sizes in binary units', () => {
    expect(formatBytes(900)).toBe('900 B');
    expect(formatBytes(2 * GiB)).toBe('2 GiB');
    expect(formatBytes(1.5 * GiB)).toBe('1.5 GiB');
    expect(formatBytes(12.4 * GiB)).toBe('12 GiB');
    expect(formatBytes(512 * 2 ** 20)).toBe('512 MiB');
  });

  it('formats durations', () => {
    expect(formatElapsed(950)).toBe('0.9 s');
    expect(formatElapsed(12000)).toBe('12 s');
    expect(formatElapsed(65000)).toBe('1 m 05 s');
    expect(formatElapsed(7380000)).toBe('2 h 03 m');
  });

  it('ticks while running, freezes when finished', () => {
    const started = '2025-01-01T00:00:00.000Z';
    const t0 = Date.parse(started);
    expect(
      elapsedNow(
        { step: 's', state: 'running', startedAt: started, elapsedMs: 1000 },
        t0 + 5000
      )
    ).toBe(5000);
    expect(
      elapsedNow(
        { step: 's', state: 'succeeded', startedAt: started, elapsedMs: 1000 },
        t0 + 5000
      )
    ).toBe(1000);
    expect(elapsedNow({ step: 's', state: 'queued' }, t0)).toBeNull();
  });

  it('computes foreach progress', () => {
    expect(foreachFraction({ done: 3, running: 1, failed: 1, total: 10 })).toBe(
      0.4
    );
    expect(foreachFraction(undefined)).toBe(0);
    expect(foreachFraction({ done: 0, running: 0, failed: 0, total: 0 })).toBe(
      0
    );
  });
});

describe('re-run with 2× memory', () => {
  const oom = {
    step: 's',
    state: 'failed' as const,
    error: { kind: 'oom', message: 'heap' }
  };

  it('doubles what the line asked for', () => {
    expect(rerunMemory(parseStepLine('%%step --memory 2G'), oom)).toBe('4G');
    expect(rerunMemory(parseStepLine('%%step --memory 512M'), oom)).toBe('1G');
    expect(rerunMemory(parseStepLine('%%step --memory 1.5GiB'), oom)).toBe(
      '3G'
    );
    expect(rerunMemory(parseStepLine('%%step --memory 768M'), oom)).toBe(
      '1536M'
    );
  });

  it('takes the kernel suggestion when it is more than double', () => {
    const s = { ...oom, error: { ...oom.error, suggestedMemory: '16G' } };
    expect(rerunMemory(parseStepLine('%%step --memory 2G'), s)).toBe('16G');
    const small = { ...oom, error: { ...oom.error, suggestedMemory: '3G' } };
    expect(rerunMemory(parseStepLine('%%step --memory 2G'), small)).toBe('4G');
  });

  it('falls back to the status, then to the assumed default', () => {
    expect(
      rerunMemory(parseStepLine('%%step'), {
        ...oom,
        memory: { requestedBytes: 3 * GiB }
      })
    ).toBe('6G');
    expect(rerunMemory(null, oom)).toBe('8G');
  });

  it('changes only --memory in the line', () => {
    const before = parseStepLine(
      '%%step train --on batch --memory 8G --cpu 4 --env A=1 --queue gpu'
    );
    expect(formatStepLine(optionsForRerun(before, oom))).toBe(
      '%%step train --on batch --memory 16G --cpu 4 --env A=1 --queue gpu'
    );
  });

  it('writes sizes the kernel accepts', () => {
    expect(sizeText(4 * GiB)).toBe('4G');
    expect(sizeText(2 ** 40)).toBe('1T');
    expect(sizeText(1)).toBe('1M');
  });
});
