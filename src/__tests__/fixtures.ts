/** %%step lines shared by the parser tests. */
import { IStepOptions } from '../stepline';

/** Lines the parser must refuse, with the message it gives. */
export const REJECTED: Array<[string, RegExp]> = [
  ['%%step a/b', /step name "a\/b"/],
  ['%%step ../x', /step name/],
  ['%%step -x', /step name "-x"/],
  ['%%step ' + 'n'.repeat(129), /at most 128 characters/],
  ['%%step a b', /already named "a"/],
  ['%%step --on cloud', /expected one of kernel, local, batch, slurm/],
  ['%%step --on lokal', /did you mean local\?/],
  ['%%step --memory 16', /expected a size/],
  ['%%step --memory lots', /expected a size/],
  ['%%step --memory 0G', /expected a size/],
  ['%%step --cpu 0', /expected a positive integer/],
  ['%%step --cpu 1.5', /expected a positive integer/],
  ['%%step --gpu -1', /expected a non-negative integer/],
  ['%%step --retries x', /expected a non-negative integer/],
  ['%%step --timeout 10', /expected a duration/],
  ['%%step --timeout 30m1h', /expected a duration/],
  ['%%step --timeout 0s', /expected a duration/],
  ['%%step --env NOEQUALS', /expected KEY=VALUE/],
  ['%%step --env 1A=2', /expected KEY=VALUE/],
  ['%%step --env A=1 --env A=2', /--env A given twice/],
  ['%%step --queue ""', /--queue: expected a Batch job queue name/],
  ['%%step --memroy 8G', /unknown option --memroy \(did you mean --memory\?\)/],
  ['%%step --frobnicate 1', /unknown option --frobnicate; %%step accepts/],
  ['%%step --on', /--on: missing value/],
  ['%%step --on --memory 8G', /--on: missing value/],
  ['%%step --on local --on batch', /--on given twice/],
  ['%%step --foreach "items', /unterminated " quote/],
  ["%%step --foreach 'items", /unterminated ' quote/],
  ['%%step --foreach ""', /--foreach: expected an expression/],
  [
    '%%step --foreach [1, 2, 3]',
    /--foreach: an expression with spaces must be quoted: --foreach "\[1, 2, 3\]"/
  ],
  [
    '%%step fit --foreach items.map(x => x * 2) --memory 1G',
    /--foreach: an expression with spaces must be quoted: --foreach "items.map\(x => x \* 2\)"/
  ]
];

/** Options that must survive format -> parse unchanged. */
export const ROUND_TRIPS: IStepOptions[] = [
  {},
  { name: 'train' },
  { name: 'train', on: 'local', memory: '16G' },
  { on: 'kernel' },
  { on: 'batch', memory: '1.5G', timeout: '500ms' },
  { foreach: '--weird', image: 'a b' },
  {
    name: 'x',
    on: 'slurm',
    memory: '64GiB',
    cpu: 4,
    gpu: 0,
    foreach: 'range(0, 10).filter(i => i % 2 === 0)',
    parallel: 3,
    retries: 0,
    timeout: '90s',
    env: { A: '', B: 'x y', C: 'say "hi"', D: 'it\'s "both" \\', E: '$HOME' },
    queue: 'q1',
    image: 'public.ecr.aws/x/y:latest',
    partition: 'debug'
  }
];
