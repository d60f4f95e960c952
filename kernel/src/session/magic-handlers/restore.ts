/**
 * `%restore NAME[@VERSION]` — binds a recorded version back into the session
 * with the TypeScript type it had when it was recorded, so later cells are
 * type-checked against it. Without @VERSION: this notebook's latest version.
 * Functions and classes, versioned as source, are re-declared from it.
 */
import * as vm from "node:vm";
import type { CellMagics } from "../magic-dispatch";
import { magicFailure } from "../magic-dispatch";
import type { Executor } from "../executor";
import type { Recorder } from "../recording";
import { DatastoreConfigError, StoreError, type Datastore } from "../../store";
import { ReadProgress } from "../read-progress";

export interface RestoreServices {
  recorder: Recorder;
  executor: Executor;
}

export function register(magics: CellMagics, services: RestoreServices): void {
  magics.onLine("restore", async (magic) => {
    const { recorder, executor } = services;
    const spec = magic.version !== undefined ? `${magic.name}@${magic.version}` : magic.name;
    await recorder.settled();
    let ds: Datastore;
    try {
      ds = await recorder.datastore(false);
    } catch (e) {
      if (e instanceof DatastoreConfigError) {
        return magicFailure("RestoreError", `Nothing to restore: no executions were recorded yet (datastore: ${recorder.location.path}).`);
      }
      throw e;
    }
    let restored;
    let progress: ReadProgress | null = null;
    // The binding is type-checked while the bytes are read and verified on other threads.
    let early: { decl: string; declOutput: string } | null = null;
    try {
      // An explicit version is unambiguous store-wide; "latest" means this notebook's latest.
      restored = await ds.restore(spec, {
        ...(magic.version === undefined ? { notebook: await recorder.lineage() } : {}),
        resolveClass: (name) => {
          const c = executor.has(name) ? executor.valueOf(name) : undefined;
          return typeof c === "function" ? c : undefined;
        },
        onProgress: (done, total, record) => (progress ??= new ReadProgress(`${record.name}@${record.version}`)).update(done, total),
        whileReading: (record) => {
          if (record.kind !== "v8") return;
          try {
            const decl = executor.declarations;
            if (record.ts_type !== undefined && !record.ts_type.includes("\n") && decl.split("\n").includes(`declare let ${record.name}: ${record.ts_type};`)) {
              // The session already has this name, rewritable, with this type: only the value changes.
              early = { decl, declOutput: decl };
              return;
            }
            const checked = executor.check(`let ${record.name}: ${record.ts_type ?? "any"} = (globalThis as any)[""];`);
            if (checked.diagnostics.length === 0 && checked.declOutput !== undefined) early = { decl, declOutput: checked.declOutput };
          } catch {
            // bound the ordinary way below, which reports what is wrong
          }
        },
      });
    } catch (e) {
      if (e instanceof StoreError) return magicFailure(e.name, e.message);
      throw e;
    }
    const { record, kind, value } = restored;
    (progress as ReadProgress | null)?.finish(record.size);
    const label = `${record.name}@${record.version}`;
    let outcome;
    if (kind === "source") {
      const source = String(value);
      outcome = /^\s*(export\s+)?(declare\s+)?(async\s+)?(function\b|class\b|const\b|let\b|var\b|enum\b|abstract\s+class\b)/.test(source)
        ? await executor.execute(source)
        : await executor.bind([{ name: record.name, value: vm.runInThisContext(`(${source})`), type: record.ts_type, kind: "let" }]);
    } else {
      const pre = early as { decl: string; declOutput: string } | null;
      if (pre && pre.decl === executor.declarations) {
        executor.adopt(pre.declOutput, [[record.name, value]]);
        outcome = { ok: true as const, hasValue: false };
      } else {
        outcome = await executor.bind([{ name: record.name, value, type: record.ts_type, kind: "let" }]);
      }
    }
    if (!outcome.ok) {
      return magicFailure("RestoreError", `${label} was read but could not be bound: ${outcome.error.evalue}`, outcome.error.traceback);
    }
    recorder.noteRestored(record.name, { version: record.version, sha256: record.sha256, size: record.size });
    const type = record.ts_type ?? record.type;
    process.stdout.write(
      `restored ${label}: ${type.includes("\n") ? record.type : type} (${record.type}), recorded ${record.created} by cell ${record.cell ?? "?"}\n`,
    );
    return { ok: true, hasValue: false };
  });
}
