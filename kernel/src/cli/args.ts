import { UsageError } from "./command";

/** Minimal, strict flag parsing: unknown flags are errors that name the flag. */
export interface ParsedArgs {
  positional: string[];
  flags: Map<string, string | true>;
}

export function parseArgs(argv: string[], spec: { boolean?: string[]; string?: string[] }): ParsedArgs {
  const bools = new Set(spec.boolean ?? []);
  const strings = new Set(spec.string ?? []);
  const positional: string[] = [];
  const flags = new Map<string, string | true>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith("-") || a === "-") {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf("=");
    const name = (eq > 0 ? a.slice(0, eq) : a).replace(/^--?/, "");
    if (bools.has(name)) {
      if (eq > 0) throw new UsageError(`${a}: --${name} takes no value`);
      flags.set(name, true);
    } else if (strings.has(name)) {
      const value = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (value === undefined) throw new UsageError(`--${name} needs a value`);
      flags.set(name, value);
    } else {
      const known = [...bools, ...strings].map((f) => "--" + f).join(", ");
      throw new UsageError(`unknown option ${a}${known ? ` (known: ${known})` : ""}`);
    }
  }
  return { positional, flags };
}
