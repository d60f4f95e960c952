/**
 * What a step cell needs from the notebook and what it gives back.
 *
 * Name resolution follows what the tslab session does at run time: inside a
 * cell, a name bound by that cell's own top level means that binding; any
 * other name means the *latest* definition in the history (cells reach each
 * other's names through a shared exports object, read at call time). So a
 * function shipped from cell A that reads `base` gets A's own `base` if A
 * declares one, else the newest `base` of the notebook.
 *
 * The packager should put the closure (and inputs) in an outer scope and the
 * step body in an inner one: the body may redeclare names the closure uses,
 * and foreach's `item`/`index` must not hide a history `item` from shipped
 * functions.
 *
 * Known limits (reported, not solved): a step that needs two different
 * definitions of one name gets a `conflicts` entry; assignments to inputs
 * stay in the worker (`assigns`); a `const` whose initializer is a call that
 * returns a function (`const f = memoize(g)`) is treated as data; side-effect
 * imports (`import "x"`) are never shipped; `declare` statements are treated
 * like their non-ambient forms; mutation through methods is invisible.
 */
import { analyzeCellDefinitions, CellDefinitions, Declaration, DeclarationKind, Reference, Space, SyntaxProblem } from "./cell";
import { knownGlobals } from "./globals";

export { analyzeCellDefinitions, clearCellCache } from "./cell";
export type { CellDefinitions, Declaration, DeclarationKind, Reference, Space, SyntaxProblem } from "./cell";

/** A successfully executed cell, TypeScript only (magic lines removed). */
export interface HistoryCell {
  id: string;
  code: string;
}

export interface AnalyzeStepOptions {
  /** Names the runtime provides to the body, e.g. ["item", "index"] for --foreach. */
  implicit?: readonly string[];
  /** Extra names to treat as globals (on top of the TS lib and Node's). */
  globals?: Iterable<string>;
}

export interface StepOutput {
  name: string;
  kind: DeclarationKind;
  /** Exists at runtime (comes back as a value); false for types. */
  value: boolean;
  type: boolean;
  /** 0-based line in the body. */
  line: number;
}

/** A value read from the session and shipped as data. */
export interface StepInput {
  name: string;
  cellId: string;
  /** Index into the history array of the defining cell. */
  cellIndex: number;
  /**
   * Only used in type positions (`typeof config`): the worker needs its type
   * to compile, not its value (`declare const config: …` is enough).
   */
  typeOnly: boolean;
}

/** Source shipped to the worker, in an order valid to run. */
export interface ClosureItem {
  /** The names this source defines (more than one for `const { a, b } = require(…)`). */
  names: string[];
  kind: Exclude<DeclarationKind, "value">;
  cellId: string;
  cellIndex: number;
  source: string;
  /** Reached only through type positions: needed to compile, not to run. */
  typeOnly: boolean;
}

export interface UnresolvedName {
  name: string;
  space: Space;
  /** Where it is used: the step body (`line` is 0-based in the body) or a shipped declaration. */
  usedBy: { step: true; line: number } | { step: false; name: string; cellId: string; cellIndex: number };
  /** For the user, e.g. "`foo` is not defined in this notebook". */
  message: string;
}

/** One name the step needs with two different meanings, which one worker scope can't hold. */
export interface NameConflict {
  name: string;
  /** The definitions involved, oldest first; the latest is the one shipped. */
  definitions: Array<{ cellId: string; cellIndex: number }>;
  message: string;
}

export interface StepAnalysis {
  outputs: StepOutput[];
  inputs: StepInput[];
  closure: ClosureItem[];
  unresolved: UnresolvedName[];
  /** Implicit names (item/index) the body actually uses. */
  implicit: string[];
  /** Globals the body or the closure uses (informational). */
  globals: string[];
  conflicts: NameConflict[];
  /**
   * Inputs the body or a shipped function assigns (`x = …`, `x++`): the
   * change happens to the worker's copy and does not come back unless the
   * body redeclares the name.
   */
  assigns: string[];
  syntaxErrors: SyntaxProblem[];
}

interface Def {
  cellIndex: number;
  decl: Declaration;
}

const defKey = (d: Def): string => `${d.cellIndex}:${d.decl.sourceKey}`;
const spaceKey = (space: Space, name: string): string => `${space}:${name}`;

/** The last declaration of each name in a cell, per space. */
const cellMaps = new WeakMap<CellDefinitions, Map<string, Declaration>>();
function ownNames(defs: CellDefinitions): Map<string, Declaration> {
  let map = cellMaps.get(defs);
  if (!map) {
    map = new Map();
    for (const d of defs.declarations) {
      if (d.value) map.set(spaceKey("value", d.name), d);
      if (d.type) map.set(spaceKey("type", d.name), d);
    }
    cellMaps.set(defs, map);
  }
  return map;
}

class HistoryIndex {
  readonly cells: CellDefinitions[];
  private readonly latest = new Map<string, Def>();

  constructor(readonly history: readonly HistoryCell[]) {
    this.cells = history.map((c) => analyzeCellDefinitions(c.code));
    this.cells.forEach((defs, cellIndex) => {
      for (const [key, decl] of ownNames(defs)) this.latest.set(key, { cellIndex, decl });
    });
  }

  /** Resolves a use inside history cell `from` (or the step, when undefined). */
  resolve(ref: Reference, from: number | undefined): Def | undefined {
    const key = spaceKey(ref.space, ref.name);
    if (from !== undefined && ref.local) {
      const decl = ownNames(this.cells[from]).get(key);
      if (decl) return { cellIndex: from, decl };
    }
    return this.latest.get(key);
  }
}

interface Item {
  def: Def;
  names: Set<string>;
  runtime: boolean;
  /** Items whose source must run before this one (eager uses). */
  after: Set<string>;
}

/**
 * Analyses a step body against the notebook's history (oldest first).
 * Per-cell parses are cached by code, so only the new body is parsed.
 */
export function analyzeStep(body: string, history: readonly HistoryCell[], options: AnalyzeStepOptions = {}): StepAnalysis {
  const index = new HistoryIndex(history);
  const defs = analyzeCellDefinitions(body);
  const globals = knownGlobals(options.globals);
  const implicit = new Set(options.implicit ?? []);

  const items = new Map<string, Item>();
  const inputs = new Map<string, { def: Def; runtime: boolean }>();
  const resolutions = new Map<string, Map<string, Def>>();
  const unresolved = new Map<string, UnresolvedName>();
  const implicitUsed = new Set<string>();
  const globalsUsed = new Set<string>();
  const assigned = new Set<string>();
  const queue: Item[] = [];

  const lineOf = defs.lineOf;

  const use = (ref: Reference, from: Item | undefined, runtime: boolean): void => {
    const fromCell = from?.def.cellIndex;
    if (from === undefined && ref.space === "value" && implicit.has(ref.name)) {
      implicitUsed.add(ref.name);
      return;
    }
    const def = index.resolve(ref, fromCell);
    if (!def) {
      if (globals.has(ref.name, ref.space)) {
        globalsUsed.add(ref.name);
        return;
      }
      const key = spaceKey(ref.space, ref.name);
      if (!unresolved.has(key)) {
        const usedBy: UnresolvedName["usedBy"] = from
          ? { step: false, name: from.def.decl.name, cellId: history[from.def.cellIndex].id, cellIndex: from.def.cellIndex }
          : { step: true, line: lineOf(ref.pos) };
        const what = ref.space === "type" ? "type" : "name";
        const where = usedBy.step ? "" : ` (used by \`${usedBy.name}\` from cell ${usedBy.cellId})`;
        unresolved.set(key, {
          name: ref.name,
          space: ref.space,
          usedBy,
          message: `\`${ref.name}\` is not defined in this notebook${where}` + (what === "type" ? " (as a type)" : ""),
        });
      }
      return;
    }
    if (from && defKey(def) === defKey(from.def)) return;
    const rkey = spaceKey(ref.space, ref.name);
    let seen = resolutions.get(rkey);
    if (!seen) resolutions.set(rkey, (seen = new Map()));
    seen.set(defKey(def), def);

    const childRuntime = runtime && !ref.typeOnly;
    if (def.decl.kind === "value") {
      if (ref.write) assigned.add(ref.name);
      const key = defKey(def);
      const input = inputs.get(key);
      if (input) input.runtime ||= childRuntime;
      else inputs.set(key, { def, runtime: childRuntime });
      return;
    }
    const key = defKey(def);
    let item = items.get(key);
    if (!item) {
      item = { def, names: new Set([def.decl.name]), runtime: childRuntime, after: new Set() };
      items.set(key, item);
      queue.push(item);
    } else {
      item.names.add(def.decl.name);
      if (childRuntime && !item.runtime) {
        // Reached for real now: walk it again so its deps become runtime too.
        item.runtime = true;
        queue.push(item);
      }
    }
    if (from && ref.eager && !ref.typeOnly) from.after.add(key);
  };

  for (const ref of defs.reads) use(ref, undefined, true);
  while (queue.length > 0) {
    const item = queue.shift()!;
    for (const ref of item.def.decl.refs) use(ref, item, item.runtime);
  }

  const inputList: StepInput[] = [...inputs.values()]
    .sort((a, b) => a.def.cellIndex - b.def.cellIndex || a.def.decl.pos - b.def.decl.pos)
    .map(({ def, runtime }) => ({
      name: def.decl.name,
      cellId: history[def.cellIndex].id,
      cellIndex: def.cellIndex,
      typeOnly: !runtime,
    }));

  return {
    outputs: outputsOf(defs),
    inputs: inputList,
    closure: order(items).map((item) => ({
      names: [...item.names],
      kind: item.def.decl.kind as ClosureItem["kind"],
      cellId: history[item.def.cellIndex].id,
      cellIndex: item.def.cellIndex,
      source: item.def.decl.source ?? "",
      typeOnly: !item.runtime,
    })),
    unresolved: [...unresolved.values()],
    implicit: [...implicitUsed],
    globals: [...globalsUsed].sort(),
    conflicts: conflictsOf(resolutions, history),
    assigns: [...assigned],
    syntaxErrors: defs.syntaxErrors,
  };
}

function outputsOf(defs: CellDefinitions): StepOutput[] {
  const byName = new Map<string, StepOutput>();
  for (const d of defs.declarations) {
    const previous = byName.get(d.name);
    // A class and a same-named interface merge; otherwise the last one wins.
    byName.set(d.name, {
      name: d.name,
      kind: previous && d.kind === "type" && previous.value ? previous.kind : d.kind,
      value: d.value || (previous?.value ?? false),
      type: d.type || (previous?.type ?? false),
      line: d.line,
    });
  }
  return [...byName.values()];
}

function conflictsOf(resolutions: Map<string, Map<string, Def>>, history: readonly HistoryCell[]): NameConflict[] {
  const out = new Map<string, NameConflict>();
  for (const defs of resolutions.values()) {
    if (defs.size < 2) continue;
    const list = [...defs.values()].sort((a, b) => a.cellIndex - b.cellIndex || a.decl.pos - b.decl.pos);
    const name = list[0].decl.name;
    if (out.has(name)) continue;
    const cells = list.map((d) => history[d.cellIndex].id);
    out.set(name, {
      name,
      definitions: list.map((d) => ({ cellId: history[d.cellIndex].id, cellIndex: d.cellIndex })),
      message:
        `the step needs two different \`${name}\`s (cells ${cells.join(" and ")}): a function defined ` +
        `next to one of them keeps using it in the notebook, but a worker has room for only one; ` +
        `rename one of them`,
    });
  }
  return [...out.values()];
}

/**
 * Imports first (they never depend on anything), then the rest in history
 * order, except that source another item needs eagerly (a base class, a
 * static initializer's callee) is moved before it.
 */
function order(items: Map<string, Item>): Item[] {
  const byPosition = (a: Item, b: Item): number =>
    (a.def.decl.kind === "import" ? 0 : 1) - (b.def.decl.kind === "import" ? 0 : 1) || a.def.cellIndex - b.def.cellIndex || a.def.decl.pos - b.def.decl.pos;
  const pending = [...items.entries()].sort(([, a], [, b]) => byPosition(a, b));
  const placed = new Set<string>();
  const out: Item[] = [];
  while (pending.length > 0) {
    let i = pending.findIndex(([, item]) => [...item.after].every((k) => placed.has(k) || !items.has(k)));
    // A cycle of eager uses can't run anywhere; keep history order and let the worker report it.
    if (i < 0) i = 0;
    const [key, item] = pending.splice(i, 1)[0];
    placed.add(key);
    out.push(item);
  }
  return out;
}
