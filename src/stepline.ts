/**
 * Reading and writing the `%%step` line of a cell, in the frontend.
 *
 * The syntax is fixed by the product contract (PRODUCT.md):
 *
 *   %%step [NAME] [--on kernel|local|batch|slurm] [--memory SIZE] [--cpu N]
 *     [--gpu N] [--foreach EXPR] [--parallel N] [--retries N]
 *     [--timeout DURATION] [--env KEY=VALUE]... [--queue NAME]
 *     [--image IMAGE] [--partition NAME]
 *
 * The kernel reads only the cell source and is the authority on this
 * grammar (kernel/src/magics). This module accepts and rejects exactly the
 * same lines (src/__tests__/stepline.spec.ts checks that against the
 * kernel's parser) and quotes values the same way, so the cell toolbar can
 * never write a line the kernel refuses. Unlike the kernel it keeps sizes
 * and durations as the user spelled them, so rewriting one option leaves the
 * others untouched.
 *
 * Words are split shell-style: `'...'` is literal, `"..."` and bare words
 * take `\x` as an escaped `x`; `--opt=value` is the same as `--opt value`.
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
  /** As written, e.g. `8G` or `64GiB`. */
  memory?: string;
  cpu?: number;
  gpu?: number;
  foreach?: string;
  parallel?: number;
  retries?: number;
  /** As written, e.g. `90s` or `1h30m`. */
  timeout?: string;
  /** In the order written; keys are unique. */
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

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const NAME_MAX = 128;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;
const BARE_WORD_RE = /^[A-Za-z0-9_\-.,:/@+=%^]+$/;

type OptionKind =
  'target' | 'size' | 'int>=0' | 'int>=1' | 'duration' | 'env' | 'text';

/** Option -> kind, in the canonical order of the kernel's formatter. */
const OPTIONS: ReadonlyArray<[keyof IStepOptions, OptionKind]> = [
  ['on', 'target'],
  ['memory', 'size'],
  ['cpu', 'int>=1'],
  ['gpu', 'int>=0'],
  ['foreach', 'text'],
  ['parallel', 'int>=1'],
  ['retries', 'int>=0'],
  ['timeout', 'duration'],
  ['env', 'env'],
  ['queue', 'text'],
  ['image', 'text'],
  ['partition', 'text']
];

const OPTION_KINDS = new Map<string, OptionKind>(
  OPTIONS.map(([k, v]) => [k as string, v])
);

const TEXT_WHAT: Record<string, string> = {
  foreach: 'an expression such as items',
  queue: 'a Batch job queue name',
  image: 'a container image',
  partition: 'a Slurm partition name'
};

/** One word of a magic line. */
export interface IWord {
  /** The word with quotes removed and escapes resolved. */
  value: string;
  /** True when the word starts with an unquoted `--`. */
  isOption: boolean;
  /** Index in `value` of the first unquoted `=` of an option, or -1. */
  equalsAt: number;
}

/**
 * Split a magic line into words, honouring quotes and backslashes.
 * Throws an Error for an unterminated quote.
 */
export function tokenize(text: string): IWord[] {
  const words: IWord[] = [];
  let i = 0;
  const n = text.length;
  while (i < n) {
    while (i < n && /\s/.test(text[i])) {
      i++;
    }
    if (i >= n) {
      break;
    }
    let value = '';
    let equalsAt = -1;
    const isOption = text.startsWith('--', i);
    while (i < n && !/\s/.test(text[i])) {
      const ch = text[i];
      if (ch === '"' || ch === "'") {
        const start = i;
        i++;
        let closed = false;
        while (i < n) {
          const c = text[i];
          if (c === ch) {
            closed = true;
            i++;
            break;
          }
          if (c === '\\' && ch === '"' && i + 1 < n) {
            value += text[i + 1];
            i += 2;
            continue;
          }
          value += c;
          i++;
        }
        if (!closed) {
          throw new Error(
            `unterminated ${ch} quote starting at column ${start + 1}`
          );
        }
        continue;
      }
      if (ch === '\\' && i + 1 < n) {
        value += text[i + 1];
        i += 2;
        continue;
      }
      if (ch === '=' && isOption && equalsAt < 0) {
        equalsAt = value.length;
      }
      value += ch;
      i++;
    }
    words.push({ value, isOption, equalsAt });
  }
  return words;
}

/** The plain values of {@link tokenize}. */
export function splitWords(text: string): string[] {
  return tokenize(text).map(w => w.value);
}

/**
 * Quote a value only when reading it back would otherwise change it
 * (the same rule as the kernel's formatter).
 */
export function quoteWord(value: string): string {
  if (value !== '' && BARE_WORD_RE.test(value) && !value.startsWith('--')) {
    return value;
  }
  return `"${value.replace(/["\\]/g, c => `\\${c}`)}"`;
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  K: 2 ** 10,
  M: 2 ** 20,
  G: 2 ** 30,
  T: 2 ** 40
};

/**
 * Bytes in a SIZE such as `512M`, `8G`, `64GiB` or `1.5G` (binary units
 * whatever the spelling), or null when the text is not a SIZE. A bare
 * number is refused: nobody can tell bytes from megabytes.
 */
export function parseSize(text: string): number | null {
  const t = text.trim();
  const m =
    /^(\d+(?:\.\d+)?|\.\d+)\s*([KMGT])(?:i?B)?$/i.exec(t) ??
    /^(\d+)\s*B$/i.exec(t);
  if (!m) {
    return null;
  }
  const bytes = Math.round(
    Number(m[1]) * SIZE_UNITS[(m[2] ?? '').toUpperCase()]
  );
  return Number.isFinite(bytes) && bytes > 0 ? bytes : null;
}

const DURATION_UNITS: Array<[string, number]> = [
  ['d', 86400000],
  ['h', 3600000],
  ['m', 60000],
  ['s', 1000],
  ['ms', 1]
];

/**
 * Milliseconds in a DURATION such as `90s`, `10m`, `2h`, `1h30m` or
 * `500ms` (units largest first), or null.
 */
export function parseDuration(text: string): number | null {
  const re = /(\d+(?:\.\d+)?)(ms|d|h|m|s)/y;
  const s = text.trim().toLowerCase();
  if (s === '') {
    return null;
  }
  let total = 0;
  let lastRank = -1;
  let consumed = 0;
  let m: RegExpExecArray | null;
  while ((m = re.exec(s)) !== null) {
    const unit = m[2];
    const rank = DURATION_UNITS.findIndex(([u]) => u === unit);
    if (rank <= lastRank) {
      return null;
    }
    lastRank = rank;
    total += Number(m[1]) * DURATION_UNITS[rank][1];
    consumed = re.lastIndex;
  }
  if (consumed !== s.length) {
    return null;
  }
  const ms = Math.round(total);
  return ms > 0 ? ms : null;
}

/** True when `name` is a valid step name. */
export function isValidStepName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= NAME_MAX;
}

/** True when `line` (a cell's first line) is a `%%step` line. */
export function isStepLine(line: string): boolean {
  const t = line.replace(/^\s+/, '');
  return (
    t.startsWith(STEP_MAGIC) &&
    (t.length === STEP_MAGIC.length || /\s/.test(t[STEP_MAGIC.length]))
  );
}

function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) =>
      i === 0 ? j : j === 0 ? i : 0
    )
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(
        d[i - 1][j] + 1,
        d[i][j - 1] + 1,
        d[i - 1][j - 1] + cost
      );
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        best = Math.min(best, d[i - 2][j - 2] + 1);
      }
      d[i][j] = best;
    }
  }
  return d[a.length][b.length];
}

function didYouMean(word: string, candidates: readonly string[]): string {
  const limit = Math.min(3, Math.max(1, Math.floor(word.length / 3)));
  let best = '';
  let bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(word.toLowerCase(), c.toLowerCase());
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return bestDistance <= limit ? ` (did you mean ${best}?)` : '';
}

/** Check one option value; returns the value to store, or an error. */
function checkValue(
  option: string,
  kind: OptionKind,
  raw: string
): { value: string | number } | { error: string } {
  switch (kind) {
    case 'target':
      if ((STEP_TARGETS as readonly string[]).includes(raw)) {
        return { value: raw };
      }
      return {
        error: `--on ${quoteWord(raw)}: expected one of ${STEP_TARGETS.join(', ')}${didYouMean(raw, STEP_TARGETS)}`
      };
    case 'size':
      if (parseSize(raw) !== null) {
        return { value: raw };
      }
      return {
        error: `--${option} ${quoteWord(raw)}: expected a size like 512M, 8G or 64GiB`
      };
    case 'int>=0':
    case 'int>=1': {
      const min = kind === 'int>=0' ? 0 : 1;
      if (
        /^\d+$/.test(raw) &&
        Number(raw) >= min &&
        Number.isSafeInteger(Number(raw))
      ) {
        return { value: Number(raw) };
      }
      return {
        error: `--${option} ${raw}: expected ${min > 0 ? 'a positive' : 'a non-negative'} integer`
      };
    }
    case 'duration':
      if (parseDuration(raw) !== null) {
        return { value: raw };
      }
      return {
        error: `--${option} ${quoteWord(raw)}: expected a duration like 90s, 10m, 2h or 1h30m`
      };
    case 'text':
      if (raw.trim() !== '') {
        return { value: raw };
      }
      return {
        error: `--${option}: expected ${TEXT_WHAT[option]}, got an empty value`
      };
    case 'env':
      return { value: raw }; // handled by the caller
  }
}

function parseEnv(raw: string): [string, string] | { error: string } {
  const eq = raw.indexOf('=');
  const key = eq < 0 ? raw : raw.slice(0, eq);
  if (eq < 0 || !ENV_KEY_RE.test(key)) {
    return {
      error: `--env ${quoteWord(raw)}: expected KEY=VALUE with KEY made of letters, digits and _ (not starting with a digit)`
    };
  }
  return [key, raw.slice(eq + 1)];
}

/**
 * Parse a `%%step` line, explaining what is wrong when it is not valid.
 */
export function parseStepLineDetailed(line: string): StepLineResult {
  if (!isStepLine(line)) {
    return { ok: false, error: `not a ${STEP_MAGIC} line` };
  }
  const rest = line.replace(/^\s+/, '').slice(STEP_MAGIC.length);
  let words: IWord[];
  try {
    words = tokenize(rest);
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
  const fail = (error: string): StepLineResult => ({ ok: false, error });
  const options: IStepOptions = {};
  const seen = new Set<string>();
  let i = 0;
  // The word index right after a `--foreach VALUE` (see the kernel's parser, kernel/src/magics/step.ts).
  let afterForeach = -1;
  while (i < words.length) {
    const at = i;
    const word = words[i++];
    if (!word.isOption) {
      if (
        at === afterForeach &&
        (options.name !== undefined || !isValidStepName(word.value))
      ) {
        const parts = [options.foreach ?? ''];
        for (let j = at; j < words.length && !words[j].isOption; j++) {
          parts.push(words[j].value);
        }
        return fail(
          `--foreach: an expression with spaces must be quoted: --foreach ${JSON.stringify(parts.join(' '))}`
        );
      }
      if (options.name !== undefined) {
        return fail(
          `unexpected argument ${quoteWord(word.value)}: the step is already named "${options.name}"`
        );
      }
      if (!isValidStepName(word.value)) {
        return fail(
          `step name ${JSON.stringify(word.value)}: use letters, digits, _ and - only (not starting with -, at most ${NAME_MAX} characters)`
        );
      }
      options.name = word.value;
      continue;
    }
    const flagText =
      word.equalsAt >= 0 ? word.value.slice(0, word.equalsAt) : word.value;
    const option = flagText.slice(2);
    const kind = OPTION_KINDS.get(option);
    if (kind === undefined) {
      const known = OPTIONS.map(([k]) => `--${k}`);
      const hint = didYouMean(flagText, known);
      return fail(
        `unknown option ${flagText}${hint}` +
          (hint ? '' : `; %%step accepts ${known.join(', ')}`)
      );
    }
    let raw: string;
    if (word.equalsAt >= 0) {
      raw = word.value.slice(word.equalsAt + 1);
    } else {
      const next = words[i];
      if (next === undefined || next.isOption) {
        return fail(`--${option}: missing value`);
      }
      raw = next.value;
      i++;
    }
    if (kind === 'env') {
      const env = parseEnv(raw);
      if (!Array.isArray(env)) {
        return fail(env.error);
      }
      const [key, value] = env;
      options.env = options.env ?? {};
      if (Object.prototype.hasOwnProperty.call(options.env, key)) {
        return fail(`--env ${key} given twice; keep one`);
      }
      options.env[key] = value;
      continue;
    }
    if (seen.has(option)) {
      return fail(`--${option} given twice; keep one`);
    }
    seen.add(option);
    const checked = checkValue(option, kind, raw);
    if ('error' in checked) {
      return fail(checked.error);
    }
    (options as Record<string, unknown>)[option] = checked.value;
    if (option === 'foreach') {
      afterForeach = i;
    }
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
 * Format options as a `%%step` line, options in the kernel's canonical
 * order. Throws an Error when the options would not parse back.
 */
export function formatStepLine(options: IStepOptions): string {
  const parts: string[] = [STEP_MAGIC];
  const oneLine = (what: string, value: string): void => {
    if (/[\r\n]/.test(value)) {
      throw new Error(
        `${what} ${JSON.stringify(value)} spans lines; %%step options must fit on one line`
      );
    }
  };
  if (options.name !== undefined) {
    if (!isValidStepName(options.name)) {
      throw new Error(
        `step name ${JSON.stringify(options.name)}: use letters, digits, _ and - only`
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
        const pair = `${k}=${v}`;
        oneLine('--env', pair);
        const env = parseEnv(pair);
        if (!Array.isArray(env)) {
          throw new Error(env.error);
        }
        parts.push('--env', quoteWord(pair));
      }
      continue;
    }
    const text = String(value);
    oneLine(`--${key}`, text);
    const checked = checkValue(key, kind, text);
    if ('error' in checked) {
      throw new Error(checked.error);
    }
    parts.push(`--${key}`, quoteWord(text));
  }
  return parts.join(' ');
}

/**
 * Where the `%%step` line of a cell is: the kernel accepts blank lines
 * before it. `end` is the offset just after the line's newline.
 */
function locateStepLine(source: string): { line: string; end: number } | null {
  let offset = 0;
  for (;;) {
    const nl = source.indexOf('\n', offset);
    const raw = nl < 0 ? source.slice(offset) : source.slice(offset, nl);
    const line = raw.replace(/\r$/, '');
    if (line.trim() !== '') {
      return isStepLine(line)
        ? { line, end: nl < 0 ? source.length : nl + 1 }
        : null;
    }
    if (nl < 0) {
      return null;
    }
    offset = nl + 1;
  }
}

/** The `%%step` line of a cell source, or null when the cell has none. */
export function getStepLine(source: string): string | null {
  return locateStepLine(source)?.line ?? null;
}

/**
 * Return `source` with its `%%step` line replaced by one made from
 * `options`, inserted when there was none, or removed when `options` is
 * null (blank lines before it go too).
 */
export function setStepLine(
  source: string,
  options: IStepOptions | null
): string {
  const found = locateStepLine(source);
  const body = found ? source.slice(found.end) : source;
  if (options === null) {
    return body;
  }
  return `${formatStepLine(options)}\n${body}`;
}
