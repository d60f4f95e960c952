/**
 * Where the datastore is. One rule for the CLI, the kernel and the client
 * library: an explicit `--datastore` wins, then `NBSCALE_DATASTORE`, then
 * `.nbscale/` next to the notebook (the kernel) or in the current directory.
 */
import { basename, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { DatastoreConfigError } from "./errors";

export const DEFAULT_DIR = ".nbscale";
export const ENV_VAR = "NBSCALE_DATASTORE";

export type DatastoreLocation =
  | {
      kind: "fs";
      /** Absolute directory. */
      path: string;
      /** Where the setting came from, for error messages. */
      source: "flag" | "env" | "default";
    }
  | {
      kind: "s3";
      /** The `s3://bucket/prefix` URL (shown in messages, like a directory path). */
      path: string;
      bucket: string;
      /** Key prefix without leading or trailing slash. */
      prefix: string;
      source: "flag" | "env" | "default";
    };

export interface LocationInput {
  /** `--datastore` value, if given. */
  flag?: string;
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** The notebook's directory (kernel); defaults to `cwd`. */
  notebookDir?: string;
}

export function resolveDatastore(input: LocationInput): DatastoreLocation {
  if (input.flag !== undefined && input.flag !== "") return parse(input.flag, "flag", input.cwd);
  const env = input.env[ENV_VAR];
  if (env !== undefined && env !== "") return parse(env, "env", input.cwd);
  return { kind: "fs", path: join(resolve(input.cwd, input.notebookDir ?? "."), DEFAULT_DIR), source: "default" };
}

function parse(value: string, source: "flag" | "env", cwd: string): DatastoreLocation {
  const what = source === "flag" ? `--datastore ${value}` : `${ENV_VAR}=${value}`;
  if (/^s3:\/\//i.test(value)) {
    const m = /^s3:\/\/([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:\/(.*))?$/.exec(value);
    if (!m) throw new DatastoreConfigError(`${what}: expected s3://bucket/prefix with a valid bucket name (3-63 lowercase letters, digits, "." or "-")`);
    const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
    return { kind: "s3", path: `s3://${m[1]}${prefix ? "/" + prefix : ""}`, bucket: m[1], prefix, source };
  }
  if (/^file:\/\//i.test(value)) return { kind: "fs", path: fileURLToPath(value), source };
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value)) {
    throw new DatastoreConfigError(`${what}: unsupported datastore URL; use a directory path or s3://bucket/prefix.`);
  }
  return { kind: "fs", path: isAbsolute(value) ? value : resolve(cwd, value), source };
}

export function describeLocation(loc: DatastoreLocation): string {
  switch (loc.source) {
    case "flag":
      return `${loc.path} (from --datastore)`;
    case "env":
      return `${loc.path} (from ${ENV_VAR})`;
    case "default":
      return `${loc.path} (the default ${DEFAULT_DIR}/ in the current directory)`;
  }
}

/**
 * The notebook a kernel serves: NBSCALE_NOTEBOOK, else Jupyter's session
 * name (JPY_SESSION_NAME), else its folder. Its folder is where the kernel's
 * default datastore lives.
 */
export function notebookPath(env: NodeJS.ProcessEnv, cwd: string): string {
  const explicit = env.NBSCALE_NOTEBOOK;
  if (explicit) return resolve(cwd, explicit);
  const session = env.JPY_SESSION_NAME;
  if (session) {
    if (isAbsolute(session)) return session;
    // A server-relative path; the kernel runs in the notebook's folder.
    return join(cwd, basename(session));
  }
  return resolve(cwd);
}
