/**
 * Shared plumbing for the datastore CLI commands (history, artifact, show,
 * fsck): option parsing, opening the store, user-facing errors, tables.
 */
import { inspect } from "node:util";
import { CliIO, UsageError } from "./command";
import { Datastore } from "../store/datastore";
import { closeNames, StoreError } from "../store/errors";
import { resolveDatastore } from "../store/location";

export interface OptionSpec {
  /** Flags without a value, e.g. `json`. */
  booleans: string[];
  /** Flags taking a value, e.g. `datastore`. */
  values: string[];
  /** Short aliases, e.g. `{ o: "output" }`. */
  aliases?: Record<string, string>;
}

export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(command: string, argv: string[], spec: OptionSpec): ParsedArgs {
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  const known = [...spec.booleans, ...spec.values];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positional.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
    } else {
      const short = arg.slice(1);
      const long = spec.aliases?.[short];
      if (!long) throw new UsageError(`nbscale ${command}: unknown option ${arg}. See \`nbscale ${command} --help\`.`);
      name = long;
    }
    if (spec.booleans.includes(name)) {
      if (inline !== undefined) throw new UsageError(`nbscale ${command}: --${name} takes no value`);
      flags.set(name, true);
    } else if (spec.values.includes(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`nbscale ${command}: --${name} needs a value`);
      flags.set(name, value);
    } else {
      const near = closeNames(name, known, 3);
      throw new UsageError(
        `nbscale ${command}: unknown option --${name}.` +
          (near.length ? ` Did you mean ${near.map((n) => `--${n}`).join(", ")}?` : "") +
          ` See \`nbscale ${command} --help\`.`,
      );
    }
  }
  return { positional, flags };
}

export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.flags.get(name);
  return typeof v === "string" ? v : undefined;
}

export function positiveInt(command: string, name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new UsageError(`nbscale ${command}: --${name} must be a positive whole number, got ${JSON.stringify(value)}`);
  return Number(value);
}

/** `90s`, `10m`, `2h` (PRODUCT.md's DURATION), plus `0`. */
export function parseDuration(command: string, name: string, value: string): number {
  const m = /^([0-9]+)(s|m|h)?$/.exec(value);
  if (!m || (m[2] === undefined && m[1] !== "0")) {
    throw new UsageError(`nbscale ${command}: --${name} must be a duration like 90s, 10m or 2h, got ${JSON.stringify(value)}`);
  }
  return Number(m[1]) * (m[2] === "h" ? 3_600_000 : m[2] === "m" ? 60_000 : 1000);
}

export async function openStore(args: ParsedArgs, io: CliIO): Promise<Datastore> {
  const loc = resolveDatastore({ flag: stringFlag(args, "datastore"), env: io.env, cwd: io.cwd });
  return Datastore.open(loc);
}

/**
 * Runs a command body, turning user-facing errors into a message and an exit
 * code (2: usage, 1: anything the store refused) instead of a stack trace.
 */
export async function runCommand(command: string, usage: string, argv: string[], io: CliIO, body: () => Promise<number>): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    io.stdout.write(usage.endsWith("\n") ? usage : usage + "\n");
    return 0;
  }
  try {
    return await body();
  } catch (e) {
    if (e instanceof UsageError) {
      io.stderr.write(`${e.message}\n`);
      return 2;
    }
    if (e instanceof StoreError) {
      io.stderr.write(`nbscale ${command}: ${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

export function writeJson(io: CliIO, value: unknown): void {
  io.stdout.write(JSON.stringify(value) + "\n");
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n") + "\n";
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 ? 1 : 0)} ${units[u]}`;
}

/** `2025-01-02 03:04:05` in UTC: compact and unambiguous in a table. */
export function shortTime(iso: string): string {
  return iso.replace("T", " ").replace(/\.[0-9]+Z$/, "Z");
}

export function duration(startIso: string, endIso: string): string {
  const ms = Date.parse(endIso) - Date.parse(startIso);
  if (!Number.isFinite(ms) || ms < 0) return "?";
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  if (ms < 3_600_000) return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
  return `${Math.floor(ms / 3_600_000)}h${Math.round((ms % 3_600_000) / 60_000)}m`;
}

export function render(value: unknown): string {
  return inspect(value, { depth: 4, maxArrayLength: 20, maxStringLength: 2000, breakLength: 100, colors: false });
}
