import { MagicError } from "./errors";
import { didYouMean } from "./suggest";
import { quote, tokenize, Token } from "./tokenize";
import { formatDuration, formatSize, parseDuration, parseSize } from "./units";

export const TARGETS = ["kernel", "local", "batch", "slurm"] as const;
export type Target = (typeof TARGETS)[number];

/** Everything a `%%step` line can say. Sizes are bytes, durations milliseconds. */
export interface StepOptions {
  /**
   * The step's name, or undefined when the line gives none: the kernel then
   * names it (e.g. from the cell id, or `step_<n>` for headless runs where
   * no cell id is sent) — naming needs session state this parser lacks.
   */
  name?: string;
  on: Target;
  memory?: number;
  cpu?: number;
  gpu?: number;
  foreach?: string;
  parallel?: number;
  retries?: number;
  timeout?: number;
  /** In the order written; keys are unique. */
  env: Record<string, string>;
  queue?: string;
  image?: string;
  partition?: string;
}

export interface StepParseConfig {
  /** Target used when the line has no `--on` (default "local"). */
  defaultTarget?: Target;
}

export interface ParsedStepLine {
  options: StepOptions;
  /**
   * Options that are valid but do nothing for this target, e.g. `--queue`
   * on a local step. Not errors: `nbscale run --on batch` can retarget an
   * exported step, and the queue then matters.
   */
  warnings: string[];
}

const SIZE_FORMS = "expected a size like 512M, 8G or 64GiB";
const DURATION_FORMS = "expected a duration like 90s, 10m, 2h or 1h30m";
const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]*$/;
const ENV_KEY_RE = /^[A-Za-z_][A-Za-z0-9_]*$/;

type OptionName = "on" | "memory" | "cpu" | "gpu" | "foreach" | "parallel" | "retries" | "timeout" | "env" | "queue" | "image" | "partition";

export const STEP_OPTIONS: readonly OptionName[] = [
  "on",
  "memory",
  "cpu",
  "gpu",
  "foreach",
  "parallel",
  "retries",
  "timeout",
  "env",
  "queue",
  "image",
  "partition",
];

export function isValidStepName(name: string): boolean {
  return NAME_RE.test(name) && name.length <= 128;
}

function integer(flag: string, raw: string, column: number, min: number): number {
  if (!/^\d+$/.test(raw) || Number(raw) < min || !Number.isSafeInteger(Number(raw))) {
    const expected = min > 0 ? "a positive integer" : "a non-negative integer";
    throw new MagicError(`--${flag} ${raw}: expected ${expected}`, column);
  }
  return Number(raw);
}

/** A free-text value that must still fit on one line and not be empty. */
function word(flag: string, raw: string, column: number, what: string): string {
  if (raw.trim() === "") throw new MagicError(`--${flag}: expected ${what}, got an empty value`, column);
  return raw;
}

/**
 * Parses the words after `%%step`. `line` is the whole first line; columns
 * in errors are offsets into it.
 */
export function parseStepArguments(line: string, argsStart: number, config: StepParseConfig = {}): ParsedStepLine {
  const tokens = tokenize(line.slice(argsStart), argsStart);
  const options: StepOptions = { on: config.defaultTarget ?? "local", env: {} };
  const seen = new Map<OptionName, string>();
  let i = 0;
  const next = (): Token | undefined => tokens[i++];
  // The token index right after a `--foreach VALUE`: words there are most likely the rest of an unquoted expression.
  let afterForeach = -1;

  while (i < tokens.length) {
    const at = i;
    const tok = next()!;
    if (!tok.isOption) {
      if (at === afterForeach && (options.name !== undefined || !isValidStepName(tok.value))) {
        const words = [options.foreach ?? ""];
        for (let j = at; j < tokens.length && !tokens[j].isOption; j++) words.push(tokens[j].value);
        throw new MagicError(`--foreach: an expression with spaces must be quoted: --foreach ${JSON.stringify(words.join(" "))}`, tok.column);
      }
      if (options.name !== undefined) {
        throw new MagicError(
          `unexpected argument ${quote(tok.value)}: the step is already named "${options.name}" ` + `(options start with --, e.g. --memory 8G)`,
          tok.column,
        );
      }
      if (!isValidStepName(tok.value)) {
        throw new MagicError(
          `step name ${JSON.stringify(tok.value)}: use letters, digits, _ and - only ` + `(not starting with -, at most 128 characters)`,
          tok.column,
        );
      }
      options.name = tok.value;
      continue;
    }
    const flagText = tok.equalsAt >= 0 ? tok.value.slice(0, tok.equalsAt) : tok.value;
    const flag = flagText.slice(2) as OptionName;
    if (!STEP_OPTIONS.includes(flag)) {
      const known = STEP_OPTIONS.map((o) => `--${o}`);
      const hint = didYouMean(flagText, known);
      throw new MagicError(`unknown option ${flagText}${hint}` + (hint ? "" : `; %%step accepts ${known.join(", ")}`), tok.column);
    }
    let raw: string;
    let column: number;
    if (tok.equalsAt >= 0) {
      raw = tok.value.slice(tok.equalsAt + 1);
      column = tok.column + tok.equalsAt + 1;
    } else {
      const valueTok = tokens[i];
      if (valueTok === undefined || valueTok.isOption) {
        throw new MagicError(`--${flag}: missing value; ${usage(flag)}`, tok.column);
      }
      i++;
      raw = valueTok.value;
      column = valueTok.column;
    }
    if (flag !== "env") {
      const previous = seen.get(flag);
      if (previous !== undefined) {
        throw new MagicError(`--${flag} given twice (${quote(previous)} and ${quote(raw)}); keep one`, tok.column);
      }
      seen.set(flag, raw);
    }
    applyOption(options, flag, raw, column);
    if (flag === "foreach") afterForeach = i;
  }
  return { options, warnings: warningsFor(options) };
}

function usage(flag: OptionName): string {
  switch (flag) {
    case "on":
      return `expected one of ${TARGETS.join(", ")}`;
    case "memory":
      return SIZE_FORMS;
    case "timeout":
      return DURATION_FORMS;
    case "cpu":
    case "parallel":
      return "expected a positive integer";
    case "gpu":
    case "retries":
      return "expected a non-negative integer";
    case "env":
      return "expected KEY=VALUE";
    case "foreach":
      return 'expected an expression, e.g. --foreach items or --foreach "items.slice(0, 3)"';
    default:
      return "expected a name";
  }
}

function applyOption(options: StepOptions, flag: OptionName, raw: string, column: number): void {
  switch (flag) {
    case "on": {
      if (!(TARGETS as readonly string[]).includes(raw)) {
        throw new MagicError(`--on ${quote(raw)}: expected one of ${TARGETS.join(", ")}${didYouMean(raw, TARGETS)}`, column);
      }
      options.on = raw as Target;
      return;
    }
    case "memory": {
      const bytes = parseSize(raw);
      if (bytes === undefined) throw new MagicError(`--memory ${quote(raw)}: ${SIZE_FORMS}`, column);
      options.memory = bytes;
      return;
    }
    case "timeout": {
      const ms = parseDuration(raw);
      if (ms === undefined) throw new MagicError(`--timeout ${quote(raw)}: ${DURATION_FORMS}`, column);
      options.timeout = ms;
      return;
    }
    case "cpu":
      options.cpu = integer(flag, raw, column, 1);
      return;
    case "parallel":
      options.parallel = integer(flag, raw, column, 1);
      return;
    case "gpu":
      options.gpu = integer(flag, raw, column, 0);
      return;
    case "retries":
      options.retries = integer(flag, raw, column, 0);
      return;
    case "foreach":
      options.foreach = word(flag, raw, column, "an expression such as items");
      return;
    case "env": {
      const eq = raw.indexOf("=");
      const key = eq < 0 ? raw : raw.slice(0, eq);
      if (eq < 0 || !ENV_KEY_RE.test(key)) {
        throw new MagicError(
          `--env ${quote(raw)}: expected KEY=VALUE with KEY made of letters, digits and _ ` + `(not starting with a digit), e.g. --env "MSG=hello world"`,
          column,
        );
      }
      if (Object.prototype.hasOwnProperty.call(options.env, key)) {
        throw new MagicError(`--env ${key} given twice; keep one`, column);
      }
      // An environment variable ends at a NUL: the step would silently see a shorter value.
      if (raw.includes("\0")) throw new MagicError(`--env ${key}: the value holds a NUL byte, which no environment variable can carry`, column);
      options.env[key] = raw.slice(eq + 1);
      return;
    }
    case "queue":
      options.queue = word(flag, raw, column, "a Batch job queue name");
      return;
    case "image":
      options.image = word(flag, raw, column, "a container image");
      return;
    case "partition":
      options.partition = word(flag, raw, column, "a Slurm partition name");
      return;
  }
}

function warningsFor(o: StepOptions): string[] {
  const warnings: string[] = [];
  if (o.queue !== undefined && o.on !== "batch") {
    warnings.push(`--queue only applies to --on batch; ignored while this step runs --on ${o.on}`);
  }
  if (o.partition !== undefined && o.on !== "slurm") {
    warnings.push(`--partition only applies to --on slurm; ignored while this step runs --on ${o.on}`);
  }
  if (o.image !== undefined && o.on !== "batch" && o.on !== "slurm") {
    warnings.push(`--image only applies to --on batch or slurm; ignored while this step runs --on ${o.on}`);
  }
  if (o.parallel !== undefined && o.foreach === undefined) {
    warnings.push("--parallel only applies together with --foreach; ignored");
  }
  return warnings;
}

/**
 * The canonical `%%step` line for a set of options (what the cell toolbar
 * writes). `--on` is always written so the cell does not change meaning when
 * the configured default does. Parsing the result gives back equal options.
 */
export function formatStepLine(options: StepOptions): string {
  if (options.name !== undefined && !isValidStepName(options.name)) {
    throw new MagicError(`step name ${JSON.stringify(options.name)}: use letters, digits, _ and - only`);
  }
  for (const value of [options.foreach, options.queue, options.image, options.partition, ...Object.entries(options.env).flat()]) {
    // The magic is one line; a newline would silently turn the rest into code.
    if (value !== undefined && /[\r\n]/.test(value)) {
      throw new MagicError(`option value ${JSON.stringify(value)} spans lines; %%step options must fit on one line`);
    }
  }
  const parts = ["%%step"];
  if (options.name !== undefined) parts.push(options.name);
  parts.push("--on", options.on);
  if (options.memory !== undefined) parts.push("--memory", formatSize(options.memory));
  if (options.cpu !== undefined) parts.push("--cpu", String(options.cpu));
  if (options.gpu !== undefined) parts.push("--gpu", String(options.gpu));
  if (options.foreach !== undefined) parts.push("--foreach", quote(options.foreach));
  if (options.parallel !== undefined) parts.push("--parallel", String(options.parallel));
  if (options.retries !== undefined) parts.push("--retries", String(options.retries));
  if (options.timeout !== undefined) parts.push("--timeout", formatDuration(options.timeout));
  for (const [key, value] of Object.entries(options.env)) parts.push("--env", quote(`${key}=${value}`));
  if (options.queue !== undefined) parts.push("--queue", quote(options.queue));
  if (options.image !== undefined) parts.push("--image", quote(options.image));
  if (options.partition !== undefined) parts.push("--partition", quote(options.partition));
  return parts.join(" ");
}
