/**
 * The kernel's half of lazy values (worker/lazy.ts has the worker's).
 *
 * The kernel has its own heap limit, and a step exists so a cell can use
 * more memory than that. So a step output whose serialized size is over a
 * limit — by default a quarter of the kernel's V8 heap limit,
 * `NBSCALE_LAZY_BYTES` (bytes, or a size like `512M`) overrides — is written
 * to the datastore by the worker and never sent here. The session gets a
 * `Lazy<T>` handle (client/lazy.ts) typed with the value's type T; a later
 * step that reads it gets the value read by its own worker from the
 * datastore, and type-checks with the name declared as T.
 */
import { getHeapStatistics } from "node:v8";
import { isLazy, Lazy, openStore } from "../client/lazy";
import { parseSize } from "../magics/units";
import { humanBytes } from "../backends/memory";
import { ts } from "./typescript";
import { encodeValues, type EncodedValues } from "../worker/codec";
import type { LazyOutputs, ValueSpec } from "../worker/events";
import type { DatastoreLocation } from "../store/location";
import type { NotebookFilter } from "../store/notebooks";
import type { Executor } from "../session/executor";

/** Where lazy values go, and which notebook records them (for version numbers). */
export interface LazyStore {
  location: DatastoreLocation;
  /** The recording notebook across renames (see store/notebooks.ts). */
  lineage(): Promise<NotebookFilter>;
  /** False with NBSCALE_RECORD=0: no version will be recorded, handles name their sha256. */
  recorded: boolean;
}

/** Outputs above this many serialized bytes stay in the datastore. */
export function lazyThreshold(env: NodeJS.ProcessEnv = process.env): number {
  const set = env.NBSCALE_LAZY_BYTES?.trim();
  if (set) {
    const n = /^\d+$/.test(set) ? Number(set) : parseSize(set);
    if (n !== undefined && Number.isFinite(n) && n >= 0) return n;
    process.stderr.write(`warning: NBSCALE_LAZY_BYTES=${set} is not a size (bytes, or e.g. 512M); using the default\n`);
  }
  return Math.floor(getHeapStatistics().heap_size_limit / 4);
}

export function lazyOutputs(store: LazyStore | undefined): LazyOutputs | undefined {
  return store ? { store: store.location, minBytes: lazyThreshold() } : undefined;
}

/** The session's declarations with every `Lazy<T>` name declared as `T`: what a step body sees. */
export function stepDeclarations(executor: Executor): string | undefined {
  const decls = executor.declarations;
  if (!decls.includes("Lazy<")) return undefined;
  const sf = ts.createSourceFile("session.d.ts", decls, ts.ScriptTarget.ES2022, true, ts.ScriptKind.TS);
  const edits: Array<{ start: number; end: number; text: string }> = [];
  for (const st of sf.statements) {
    if (!ts.isVariableStatement(st)) continue;
    for (const d of st.declarationList.declarations) {
      if (!ts.isIdentifier(d.name) || !d.type || !isLazy(executor.valueOf(d.name.text))) continue;
      const inner = lazyTypeArgument(d.type, sf);
      if (inner !== null) edits.push({ start: d.type.getStart(sf), end: d.type.getEnd(), text: inner });
    }
  }
  if (edits.length === 0) return undefined;
  let out = decls;
  for (const e of edits.sort((a, b) => b.start - a.start)) out = out.slice(0, e.start) + e.text + out.slice(e.end);
  return out;
}

/** `Lazy<T>` or `import("nbscale").Lazy<T>` → `T`. */
function lazyTypeArgument(t: ts.TypeNode, sf: ts.SourceFile): string | null {
  if (ts.isTypeReferenceNode(t) && t.typeArguments?.length === 1) {
    const name = t.typeName.getText(sf);
    if (name === "Lazy" || name.endsWith(".Lazy")) return t.typeArguments[0].getText(sf);
  }
  if (ts.isImportTypeNode(t) && t.qualifier?.getText(sf) === "Lazy" && t.typeArguments?.length === 1) return t.typeArguments[0].getText(sf);
  return null;
}

/**
 * Encodes a step's inputs; a `Lazy` input travels as its reference only (the
 * worker reads the value from the datastore). Throws UnserializableValueError
 * like encodeValues for what can't travel.
 */
export function encodeStepInputs(names: readonly string[], executor: Executor): EncodedValues {
  const eager: Array<[string, unknown]> = [];
  const lazy: ValueSpec[] = [];
  for (const n of names) {
    const v = executor.valueOf(n);
    if (!isLazy(v)) {
      eager.push([n, v]);
      continue;
    }
    lazy.push({
      name: n,
      type: v.type,
      frames: 0,
      lazy: { store: v.store, sha256: v.sha256, size: v.bytes, kind: v.kind, ...(v.class ? { class: v.class } : {}) },
    });
  }
  const enc = encodeValues(eager, true);
  enc.specs.push(...lazy);
  return enc;
}

/** For `--on kernel`: the step gets the value, as on a worker. */
export async function sessionValue(v: unknown): Promise<unknown> {
  return isLazy(v) ? await v.load() : v;
}

export function splitOutputs(specs: readonly ValueSpec[]): { eager: ValueSpec[]; lazy: ValueSpec[] } {
  return { eager: specs.filter((s) => !s.lazy), lazy: specs.filter((s) => s.lazy) };
}

/** The session type of a lazy output whose value has type `t`. */
export function lazyType(t: string | undefined): string {
  return `import("nbscale").Lazy<${t ?? "unknown"}>`;
}

/**
 * Handles for the outputs the worker kept in the datastore, with the
 * version the recording will give them (the same rule as ArtifactStore.record:
 * the latest version from this notebook when it holds the same bytes, else
 * the next number). The recorder sets the real number once it commits.
 */
export async function makeHandles(specs: readonly ValueSpec[], store: LazyStore | undefined): Promise<Map<string, Lazy<unknown>>> {
  const out = new Map<string, Lazy<unknown>>();
  for (const s of specs) {
    const l = s.lazy!;
    let version: number | null = null;
    if (store?.recorded) {
      try {
        const ds = await openStore(store.location, true);
        const latest = await ds.artifacts.latestFrom(s.name, await store.lineage());
        const allocated = await ds.artifacts.allocated(s.name);
        version = latest && latest.sha256 === l.sha256 ? latest.version : (allocated[allocated.length - 1] ?? 0) + 1;
      } catch {
        version = null; // only the note's number is missing; the handle reads by sha256
      }
    }
    out.set(s.name, new Lazy({ name: s.name, version, sha256: l.sha256, bytes: l.size, type: s.type, store: l.store, kind: l.kind, class: l.class }));
  }
  return out;
}

/** The cell's note for each lazy output. */
export function lazyNote(h: Lazy<unknown>, tsType: string | undefined): string {
  // TypeScript 5.7+ writes typed arrays with their buffer (`Float64Array<ArrayBuffer>`); the note names the array.
  const what = (tsType && tsType !== "any" ? tsType : h.type).replace(/^((?:Big)?(?:Int|Uint|Float)\d+(?:Clamped)?Array)<ArrayBuffer(?:Like)?>$/, "$1");
  const as = h.version !== null ? h.label : `blob sha256:${h.sha256.slice(0, 12)} (not recorded: NBSCALE_RECORD=0)`;
  return `\`${h.name}\` (${humanBytes(h.bytes)} ${what}) stays in the datastore as ${as}; load it with \`await ${h.name}.load()\` or use it in another %%step\n`;
}
