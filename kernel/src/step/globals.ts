import * as fs from "node:fs";
import * as path from "node:path";
import { Space } from "./scope";
import { ts } from "./typescript";

/**
 * Names a cell may use without any cell defining them. Built once from
 * - the TypeScript lib the session compiles against (es2022, as tslab does on
 *   Node 20), for both value and type names (`Math`, `Record`, `PromiseLike`);
 * - the names the running Node has on `globalThis` (`process`, `Buffer`,
 *   `fetch`, `structuredClone` …), taken as both values and types because
 *   Node's classes come with same-named types in @types/node;
 * - CommonJS module-scope names and a few @types/node-only type names.
 */
export interface KnownGlobals {
  has(name: string, space: Space): boolean;
}

const MODULE_SCOPE = ["require", "module", "exports", "__filename", "__dirname"];
const NODE_TYPES = ["NodeJS", "BufferEncoding", "NodeRequire", "NodeModule", "Buffer", "RequestInit", "HeadersInit", "BodyInit"];

let cached: { values: Set<string>; types: Set<string> } | undefined;

function libNames(): { values: Set<string>; types: Set<string> } {
  const values = new Set<string>();
  const types = new Set<string>();
  let libDir: string;
  try {
    libDir = path.dirname(ts.getDefaultLibFilePath({ target: ts.ScriptTarget.ES2022 }));
  } catch {
    return { values, types };
  }
  const seen = new Set<string>();
  const pending = ["es2022"];
  while (pending.length > 0) {
    const lib = pending.pop()!;
    if (seen.has(lib)) continue;
    seen.add(lib);
    let text: string;
    try {
      text = fs.readFileSync(path.join(libDir, `lib.${lib}.d.ts`), "utf8");
    } catch {
      continue; // a missing lib file only costs a few "unresolved" names
    }
    const sf = ts.createSourceFile(`lib.${lib}.d.ts`, text, ts.ScriptTarget.ES2022, false);
    for (const ref of sf.libReferenceDirectives) pending.push(ref.fileName.toLowerCase());
    for (const st of sf.statements) {
      if (ts.isVariableStatement(st)) {
        for (const d of st.declarationList.declarations) if (ts.isIdentifier(d.name)) values.add(d.name.text);
      } else if (ts.isFunctionDeclaration(st) && st.name) {
        values.add(st.name.text);
      } else if ((ts.isInterfaceDeclaration(st) || ts.isTypeAliasDeclaration(st)) && st.name) {
        types.add(st.name.text);
      } else if ((ts.isModuleDeclaration(st) || ts.isClassDeclaration(st)) && st.name && ts.isIdentifier(st.name)) {
        values.add(st.name.text);
        types.add(st.name.text);
      }
    }
  }
  return { values, types };
}

function build(): { values: Set<string>; types: Set<string> } {
  const { values, types } = libNames();
  for (const name of Object.getOwnPropertyNames(globalThis)) {
    values.add(name);
    types.add(name);
  }
  for (const name of MODULE_SCOPE) values.add(name);
  for (const name of NODE_TYPES) types.add(name);
  values.add("globalThis");
  return { values, types };
}

/** The shared global table, plus any extra names the caller allows. */
export function knownGlobals(extra: Iterable<string> = []): KnownGlobals {
  cached ??= build();
  const base = cached;
  const more = new Set(extra);
  return {
    has(name: string, space: Space): boolean {
      if (more.has(name)) return true;
      return space === "value" ? base.values.has(name) : base.types.has(name);
    },
  };
}
