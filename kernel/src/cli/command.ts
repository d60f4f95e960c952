/**
 * The shape every `nbscale` sub-command implements. The dispatcher in
 * `cli/main.ts` finds commands by name; each lives in `cli/commands/<name>.ts`
 * and default-exports one of these.
 */
export interface CliCommand {
  /** First word after `nbscale`, e.g. "history" or "artifact". */
  name: string;
  /** One line for `nbscale --help`. */
  summary: string;
  /** Full usage text for `nbscale <name> --help`. */
  usage: string;
  /**
   * Runs the command with the words after its name. Returns the exit code.
   * With `--json` the last line written to stdout must be one JSON object.
   */
  run(argv: string[], io: CliIO): Promise<number>;
}

export interface CliIO {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** An error whose message is meant for the user verbatim (no stack trace). */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
