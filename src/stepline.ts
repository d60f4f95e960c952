/**
 * Parsing and formatting of the `%%step` cell magic line.
 *
 * The syntax is fixed by the product contract (see PRODUCT.md):
 *
 *   %%step [NAME] [--on kernel|local|batch|slurm] [--memory SIZE] [--cpu N]
 *     [--gpu N] [--foreach EXPR] [--parallel N] [--retries N]
 *     [--timeout DURATION] [--env KEY=VALUE]... [--queue NAME]
 *     [--image IMAGE] [--partition NAME]
 *
 * The kernel reads only the cell source; this module exists so that the
 * frontend (cell toolbar, status badges) can read and rewrite that line
 * without ever producing something the kernel would reject.
 *
 * Values containing whitespace or quotes are quoted shell-style:
 * `'...'` is literal, `"..."` understands `\"` and `\\`.
 * `--opt=value` is accepted as a synonym of `--opt value`.
 */

/** Where a step runs. */
export type StepTarget = 'kernel' | 'local' | 'batch' | 'slurm';

/** The targets, in the order the UI offers them. */
export const STEP_TARGETS: readonly StepTarget[] = [
  'kernel',
  'local',
  'batch',
  'slurm'
];

/** The options of one `%%step` line; absent fields were not given. */
export interface IStepOptions {
  name?: string;
  on?: StepTarget;
  memory?: string;
  cpu?: number;
  gpu?: number;
  foreach?: string;
  parallel?: number;
  retries?: number;
  timeout?: string;
  env?: Record<string, string>;
  queue?: string;
  image?: string;
  partition?: string;
}

/** The result of {@link parseStepLineDetailed}. */
export type StepLineResult =
  { ok: true; options: IStepOptions } | { ok: false; error: string };

/** The magic that starts a step cell. */
export const STEP_MAGIC = '%%step';

const NAME_RE = /^[A-Za-z0-9_-]+$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const SIZE_RE = /^(\d+(?:\.\d+)?)([KMGT])(?:i?B?)?$/i;
const DURATION_RE = /^(?:\d+[smh])+$/;
const DURATION_PART_RE = /(\d+)([smh])/;

type OptionKind =
  | 'target'
  | 'size'
  | 'int>=0'
  | 'int>=1'
  | 'expr'
  | 'duration'
  | 'env'
  | 'name'
  | 'text';

/** Option name -> kind, in canonical output order. */
const OPTIONS: ReadonlyArray<[keyof IStepOptions, OptionKind]> = [
  ['on', 'target'],
  ['memory', 'size'],
  ['cpu', 'int>=1'],
  ['gpu', 'int>=0'],
  ['foreach', 'expr'],
  ['parallel', 'int>=1'],
  ['retries', 'int>=0'],
  ['timeout', 'duration'],
  ['env', 'env'],
  ['queue', 'name'],
  ['image', 'text'],
  ['partition', 'name']
];

const OPTION_KINDS = new Map<string, OptionKind>(
  OPTIONS.map(([k, v]) => [k as string, v])
);

/**
 * Split a magic line into words, honouring quotes.
 * Throws an Error for an unterminated quote.
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && /\s/.test(text[i])) {
      i++;
    }
    if (i >= n) {
      break;
    }
    let word = '';
    while (i < n && !/\s/.test(text[i])) {
      const c = text[i];
      if (c === "'") {
        const end = text.indexOf("'", i + 1);
        if (end < 0) {
          throw new Error('unterminated single quote');
        }
        word += text.slice(i + 1, end);
        i = end + 1;
      } else if (c === '"') {
        i++;
        let closed = false;
        while (i < n) {
          const d = text[i];
          if (
            d === '\\' &&
            i + 1 < n &&
            (text[i + 1] === '"' || text[i + 1] === '\\')
          ) {
            word += text[i + 1];
            i += 2;
          } else if (d === '"') {
            closed = true;
            i++;
            break;
          } else {
            word += d;
            i++;
          }
        }
        if (!closed) {
          throw new Error('unterminated double quote');
        }
      } else {
        word += c;
        i++;
      }
    }
    words.push(word);
  }
  return words;
}

/** Quote a word so that {@link splitWords} gives it back unchanged. */
export function quoteWord(word: string): string {
  if (word !== '' && /^[^\s'"\\]+$/.test(word)) {
    return word;
  }
  if (!word.includes("'")) {
    return `'${word}'`;
  }
  return `"${word.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Bytes in a SIZE such as `512M`, `8G` or `64GiB` (binary units), or null
 * when the text is not a SIZE.
 */
export function parseSize(text: string): number | null {
  const m = SIZE_RE.exec(text.trim());
  if (!m) {
    return null;
  }
  const power = 'KMGT'.indexOf(m[2].toUpperCase()) + 1;
  return Math.round(parseFloat(m[1]) * Math.pow(1024, power));
}

/** Seconds in a DURATION such as `90s`, `10m`, `2h` or `1h30m`, or null. */
export function parseDuration(text: string): number | null {
  const t = text.trim();
  if (!DURATION_RE.test(t)) {
    return null;
  }
  const unit = { s: 1, m: 60, h: 3600 };
  const re = new RegExp(DURATION_PART_RE.source, 'g');
  let seconds = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(t)) !== null) {
    seconds += parseInt(m[1], 10) * unit[m[2] as keyof typeof unit];
  }
  return seconds;
}

/** True when `line` (a cell's first line) is a `%%step` line. */
export function isStepLine(line: string): boolean {
  const t = line.replace(/^\s+/, '');
  return (
    t.startsWith(STEP_MAGIC) &&
    (t.length === STEP_MAGIC.length || /\s/.test(t[STEP_MAGIC.length]))
  );
}

function levenshtein(a: string, b: string): number {
  const d: number[] = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(
        d[j] + 1,
        d[j - 1] + 1,
        prev + (a[i - 1] === b[j - 1] ? 0 : 1)
      );
      prev = tmp;
    }
  }
  return d[b.length];
}

function suggest(option: string): string {
  let best = '';
  let bestDistance = Infinity;
  for (const known of OPTION_KINDS.keys()) {
    const dist = levenshtein(option, known);
    if (dist < bestDistance) {
      best = known;
      bestDistance = dist;
    }
  }
  return bestDistance <= 2 ? ` (did you mean --${best}?)` : '';
}

function checkValue(
  option: string,
  kind: OptionKind,
  value: string
): { value: string | number } | { error: string } {
  switch (kind) {
    case 'target':
      if ((STEP_TARGETS as readonly string[]).includes(value)) {
        return { value };
      }
      return {
        error: `--on ${value}: expected one of ${STEP_TARGETS.join(', ')}`
      };
    case 'size':
      if (parseSize(value) !== null && parseSize(value)! > 0) {
        return { value };
      }
      return {
        error: `--${option} ${value}: expected a size such as 512M, 8G or 64GiB`
      };
    case 'int>=0':
    case 'int>=1': {
      const min = kind === 'int>=0' ? 0 : 1;
      if (/^\d+$/.test(value) && parseInt(value, 10) >= min) {
        return { value: parseInt(value, 10) };
      }
      return {
        error: `--${option} ${value}: expected a whole number >= ${min}`
      };
    }
    case 'duration':
      if (parseDuration(value) !== null) {
        return { value };
      }
      return {
        error: `--${option} ${value}: expected a duration such as 90s, 10m or 2h`
      };
    case 'name':
      if (NAME_RE.test(value)) {
        return { value };
      }
      return {
        error: `--${option} ${value}: expected letters, digits, '_' or '-'`
      };
    case 'expr':
    case 'text':
      if (value.trim() !== '') {
        return { value };
      }
      return { error: `--${option}: the value is empty` };
    case 'env':
      // handled by the caller
      return { value };
  }
}

/**
 * Parse a `%%step` line, explaining what is wrong when it is not valid.
 */
export function parseStepLineDetailed(line: string): StepLineResult {
  if (!isStepLine(line)) {
    return { ok: false, error: `not a ${STEP_MAGIC} line` };
  }
  const rest = line.replace(/^\s+/, '').slice(STEP_MAGIC.length);
  let words: string[];
  try {
    words = splitWords(rest);
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  const options: IStepOptions = {};
  const seen = new Set<string>();
  for (let i = 0; i < words.length; i++) {
    const word = words[i];
    if (!word.startsWith('--')) {
      if (options.name !== undefined) {
        return {
          ok: false,
          error: `unexpected '${word}': the step already has the name '${options.name}'`
        };
      }
      if (!NAME_RE.test(word)) {
        return {
          ok: false,
          error: `step name '${word}': use only letters, digits, '_' and '-'`
        };
      }
      options.name = word;
      continue;
    }
    let option = word.slice(2);
    let value: string | undefined;
    const eq = option.indexOf('=');
    if (eq >= 0) {
      value = option.slice(eq + 1);
      option = option.slice(0, eq);
    }
    const kind = OPTION_KINDS.get(option);
    if (kind === undefined) {
      return {
        ok: false,
        error: `unknown option --${option}${suggest(option)}`
      };
    }
    if (value === undefined) {
      if (i + 1 >= words.length) {
        return { ok: false, error: `--${option} needs a value` };
      }
      value = words[++i];
    }
    if (kind === 'env') {
      const at = value.indexOf('=');
      const key = at < 0 ? '' : value.slice(0, at);
      if (!ENV_KEY_RE.test(key)) {
        return {
          ok: false,
          error: `--env ${value}: expected KEY=VALUE with KEY made of letters, digits and '_'`
        };
      }
      options.env = { ...(options.env ?? {}), [key]: value.slice(at + 1) };
      continue;
    }
    if (seen.has(option)) {
      return { ok: false, error: `--${option} is given twice` };
    }
    seen.add(option);
    const checked = checkValue(option, kind, value);
    if ('error' in checked) {
      return { ok: false, error: checked.error };
    }
    (options as Record<string, unknown>)[option] = checked.value;
  }
  return { ok: true, options };
}

/**
 * Parse a `%%step` line; null when the line is not a valid `%%step` line.
 */
export function parseStepLine(line: string): IStepOptions | null {
  const result = parseStepLineDetailed(line);
  return result.ok ? result.options : null;
}

/**
 * Format options as a `%%step` line, options in a canonical order.
 * Throws an Error when the options would not parse back.
 */
export function formatStepLine(options: IStepOptions): string {
  const parts: string[] = [STEP_MAGIC];
  if (options.name !== undefined) {
    if (!NAME_RE.test(options.name)) {
      throw new Error(
        `step name '${options.name}': use only letters, digits, '_' and '-'`
      );
    }
    parts.push(options.name);
  }
  for (const [key, kind] of OPTIONS) {
    const value = options[key];
    if (value === undefined) {
      continue;
    }
    if (kind === 'env') {
      for (const [k, v] of Object.entries(value as Record<string, string>)) {
        if (!ENV_KEY_RE.test(k)) {
          throw new Error(`--env: '${k}' is not a valid variable name`);
        }
        parts.push('--env', quoteWord(`${k}=${v}`));
      }
      continue;
    }
    const text = String(value);
    const checked = checkValue(key, kind, text);
    if ('error' in checked) {
      throw new Error(checked.error);
    }
    parts.push(`--${key}`, quoteWord(text));
  }
  return parts.join(' ');
}

/** The `%%step` line of a cell source, or null when the cell has none. */
export function getStepLine(source: string): string | null {
  const nl = source.indexOf('\n');
  const first = nl < 0 ? source : source.slice(0, nl);
  return isStepLine(first) ? first.replace(/\r$/, '') : null;
}

/**
 * Return `source` with its `%%step` line replaced by one made from
 * `options`, inserted when there was none, or removed when `options` is null.
 */
export function setStepLine(
  source: string,
  options: IStepOptions | null
): string {
  const nl = source.indexOf('\n');
  const hasLine = getStepLine(source) !== null;
  const body = hasLine ? (nl < 0 ? '' : source.slice(nl + 1)) : source;
  if (options === null) {
    return body;
  }
  return `${formatStepLine(options)}\n${body}`;
}
