/**
 * The decisions behind serialize.ts's chunked format (format 2): which
 * values are containers written item by item, how big a subtree looks, and
 * whether a container's items are disjoint. Every decision is a function of
 * the value alone, never of memory, timing or who serializes, so the kernel's
 * recorder, a step worker and a flow worker cut a value at the same places and
 * give it the same bytes and the same SHA-256.
 */
import { EventEmitter } from "node:events";
import { inspect, types as utilTypes } from "node:util";

export type ContainerKind = "array" | "map" | "set" | "object";
/** Stable codes: part of the format. */
export const CONTAINER_CODES: readonly ContainerKind[] = ["array", "map", "set", "object"];

/**
 * Whether `v` is an array, Map, Set or ordinary object that decodes back to
 * the same thing when its items are written one run at a time. Subclasses of
 * Array/Map/Set, arrays with named properties (V8 keeps them, slices would
 * not) and exotic objects are not: they are written whole. An ordinary class
 * instance is one: at the top the header records its class, as format 1
 * does; nested, V8 turns it into a plain object, and so does the reader.
 */
export function containerKind(v: unknown): ContainerKind | null {
  if (typeof v !== "object" || v === null || utilTypes.isProxy(v)) return null;
  const proto = Object.getPrototypeOf(v);
  if (Array.isArray(v)) return proto === Array.prototype && !hasNamedProperties(v) ? "array" : null;
  if (v instanceof Map) return proto === Map.prototype ? "map" : null;
  if (v instanceof Set) return proto === Set.prototype ? "set" : null;
  if (proto !== Object.prototype && proto !== null) {
    if (v instanceof EventEmitter || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return null;
    if (Object.prototype.toString.call(v) !== "[object Object]" || utilTypes.isBoxedPrimitive(v) || utilTypes.isNativeError(v)) return null;
  }
  return "object";
}

/**
 * Named (non-index) own properties of an array, without listing its indices:
 * `Object.keys` of a 500-million-element array would make 500 million strings;
 * util.inspect asks V8 for the non-index keys only.
 */
function hasNamedProperties(a: unknown[]): boolean {
  if (a.length <= 64) return Object.keys(a).length !== a.length || Object.getOwnPropertySymbols(a).length > 0;
  return !/^\[( \.\.\. \d+ more items?)? ?\]$/.test(inspect(a, { maxArrayLength: 0, depth: 0, breakLength: Infinity, showHidden: false }));
}

/**
 * About how many bytes of v8 payload `root` makes, counted until `limit`
 * (so a walk costs at most `limit`). Views of at
 * least `oob` bytes count as the reference that stands for them: their
 * bytes are written from their own memory, never copied.
 */
export function estimateAtLeast(root: unknown, limit: number, oob: number, once = true): number {
  let total = 0;
  const stack: unknown[] = [root];
  // With `once`, each object counts once (at least 8 bytes each, so this holds at most limit / 8):
  // an item that refers to itself is as big as it is, not as big as the limit.
  let seen: Set<object> | null = null;
  let rootSeen = false;
  while (stack.length > 0 && total < limit) {
    const v = stack.pop();
    if (v === root) {
      if (rootSeen) continue;
      rootSeen = true;
    } else if (once && typeof v === "object" && v !== null) {
      if ((seen ??= new Set()).has(v)) continue;
      seen.add(v);
    }
    switch (typeof v) {
      case "number":
        total += 9;
        continue;
      case "string":
        total += 5 + v.length;
        continue;
      case "bigint":
        total += 12;
        continue;
      case "object":
        break;
      default:
        total += 1;
        continue;
    }
    if (v === null) {
      total += 1;
      continue;
    }
    if (ArrayBuffer.isView(v)) {
      total += v.byteLength >= oob ? 16 : v.byteLength + 12;
      continue;
    }
    if (v instanceof ArrayBuffer) {
      total += v.byteLength >= oob ? 16 : v.byteLength + 8;
      continue;
    }
    if (Array.isArray(v)) {
      total += 8;
      for (let i = 0; i < v.length && total < limit;) {
        const scan = scanPrimitives(v, i, limit - total);
        total += scan.bytes;
        i = scan.end;
        if (i < v.length && total < limit) stack.push(v[i++]);
      }
    } else if (v instanceof Map) {
      total += 8;
      for (const [k, x] of v) {
        if (total >= limit) break;
        total += primitiveSize(k) + primitiveSize(x);
        if (typeof k === "object" && k !== null) stack.push(k);
        if (typeof x === "object" && x !== null) stack.push(x);
      }
    } else if (v instanceof Set) {
      total += 8;
      for (const x of v) {
        if (total >= limit) break;
        total += primitiveSize(x);
        if (typeof x === "object" && x !== null) stack.push(x);
      }
    } else {
      total += 8;
      for (const k of Object.keys(v)) {
        total += 5 + k.length;
        stack.push((v as Record<string, unknown>)[k]);
      }
    }
  }
  return Math.min(total, limit);
}

/** What a primitive adds (objects are counted when they are popped). */
function primitiveSize(x: unknown): number {
  switch (typeof x) {
    case "number":
      return 9;
    case "string":
      return 5 + x.length;
    case "bigint":
      return 12;
    case "object":
      return 0;
    default:
      return 1;
  }
}

/** One item of a container, in the order V8 writes them: an element, a Map entry, a Set member, a property. */
export type ItemVisitor = (key: unknown, value: unknown) => boolean;

/** Visits the items of `c` in order; stops (returning false) when `visit` does. */
export function forEachItem(c: object, kind: ContainerKind, visit: ItemVisitor): boolean {
  switch (kind) {
    case "array": {
      const a = c as unknown[];
      for (let i = 0; i < a.length; i++) if (!visit(i, a[i])) return false;
      return true;
    }
    case "map":
      for (const [k, v] of c as Map<unknown, unknown>) if (!visit(k, v)) return false;
      return true;
    case "set":
      for (const v of c as Set<unknown>) if (!visit(v, v)) return false;
      return true;
    case "object":
      for (const k of Object.keys(c)) if (!visit(k, (c as Record<string, unknown>)[k])) return false;
      return true;
  }
}

/** A container that is written item by item (null: the value is written whole). */
export function splitKind(v: unknown, splitBytes: number, oob: number): ContainerKind | null {
  const kind = containerKind(v);
  return kind && estimateAtLeast(v, splitBytes, oob) >= splitBytes ? kind : null;
}

/** V8 refuses a Map of more than 2^24 entries: the objects seen are kept in shards of this many. */
const SHARD = 1 << 23;

/**
 * Every object seen so far, with the item it was seen in. Plain Maps: a
 * WeakMap of millions of entries makes each major GC walk its ephemerons,
 * and the walk of a few million objects took a minute instead of a second.
 */
class Seen {
  private readonly shards: Array<Map<object, number>> = [new Map()];

  /** True: first time; null: seen before in this item; false: seen in another item. */
  claim(o: object, item: number): boolean | null {
    for (const s of this.shards) {
      const at = s.get(o);
      if (at !== undefined) return at === item ? null : false;
    }
    let last = this.shards[this.shards.length - 1];
    if (last.size >= SHARD) this.shards.push((last = new Map()));
    last.set(o, item);
    return true;
  }

  has(o: object): boolean {
    return this.shards.some((s) => s.has(o));
  }
}

/**
 * Whether the items of `root` are disjoint: no object is reachable from two
 * items, and no split container (the root, or a big item written item by
 * item itself) is reachable from any item. Only then can each run of items
 * have a v8.Serializer of its own (shared references and cycles inside an
 * item are the serializer's business, as before); anything else is written
 * whole, by one serializer, exactly as format 1 did. Also refuses what the
 * whole writer would turn into a stub, so stubs keep their culprit and path.
 *
 * The walk remembers every object it has seen (a Map entry each, 30-60
 * bytes) while it runs, and it ends before the first byte is written: that
 * is what proving the items disjoint costs, and what a value of millions of
 * small objects pays beyond one run (see docs/benchmarks.md).
 * `bigBuffers` receives the ArrayBuffers of at least `oob` bytes by item
 * (their order), which the writer sends out of band.
 */
export function itemsAreDisjoint(root: object, kind: ContainerKind, splitBytes: number, oob: number, bigBuffers: Map<number, ArrayBuffer[]>): boolean {
  const seen = new Seen();
  const containers = new Set<object>();
  let unit = 0;
  const stack: unknown[] = [];

  let current = 0;
  const claim = (o: object): boolean | null => (containers.has(o) ? false : seen.claim(o, current));

  const walk = (start: unknown, u: number): boolean => {
    stack.length = 0;
    stack.push(start);
    while (stack.length > 0) {
      const v = stack.pop();
      if (typeof v === "function" || typeof v === "symbol") return false;
      if (typeof v !== "object" || v === null) continue;
      const c = claim(v);
      if (c === false) return false;
      if (c === null) continue;
      const proto = Object.getPrototypeOf(v);
      if (Array.isArray(v)) {
        if (proto !== Array.prototype || utilTypes.isProxy(v) || hasNamedProperties(v)) return false;
        const n = v.length;
        for (let i = 0; i < n; i++) {
          const x: unknown = v[i];
          if (typeof x === "object" ? x !== null : typeof x === "function" || typeof x === "symbol") stack.push(x);
        }
        continue;
      }
      if (proto !== Object.prototype && unusual(v)) return false;
      if (ArrayBuffer.isView(v)) {
        // A big view goes out of band by its buffer: two items with views on one buffer would share it.
        if (v.byteLength >= oob && claim(v.buffer) === false) return false;
        continue;
      }
      if (v instanceof ArrayBuffer) {
        if (v.byteLength >= oob) {
          let list = bigBuffers.get(u);
          if (!list) bigBuffers.set(u, (list = []));
          list.push(v);
        }
        continue;
      }
      if (v instanceof Map) {
        for (const [k, x] of v) stack.push(k, x);
      } else if (v instanceof Set) {
        for (const x of v) stack.push(x);
      } else {
        for (const k of Object.keys(v)) {
          const x: unknown = (v as Record<string, unknown>)[k];
          if (typeof x === "object" ? x !== null : typeof x === "function" || typeof x === "symbol") stack.push(x);
        }
      }
    }
    return true;
  };

  const container = (c: object, k: ContainerKind): boolean => {
    if (containers.has(c) || seen.has(c)) return false;
    containers.add(c);
    if (k === "array") {
      // A direct loop: through forEachItem's callback every element of a double array would be boxed.
      const a = c as unknown[];
      for (let i = 0; i < a.length; i++) {
        const next = nextWalkable(a, i);
        unit += next - i;
        if (next === a.length) return true;
        i = next;
        if (!item(false, i, a[i])) return false;
      }
      return true;
    }
    return forEachItem(c, k, (key, value) => item(k === "map", key, value));
  };
  const item = (keyed: boolean, key: unknown, value: unknown): boolean => {
    const u = ++unit;
    // Numbers and strings (most items of a big array) have nothing to walk.
    if (!keyed && typeof value !== "object" && typeof value !== "function" && typeof value !== "symbol") return true;
    current = u;
    if (keyed && !walk(key, u)) return false;
    const sub = splitKind(value, splitBytes, oob);
    if (sub) return container(value as object, sub);
    return walk(value, u);
  };
  try {
    return container(root, kind);
  } catch {
    // e.g. a getter that throws: the whole writer reports it
    return false;
  }
}

/**
 * Loops over the elements of arrays the value holds, in functions of their
 * own per big array. V8 keeps type feedback per function: one loop that has
 * seen arrays of objects and arrays of doubles boxes every double it reads
 * (80 million numbers: 2.4 s and a gigabyte of garbage instead of 50 ms).
 * A loop made for one array sees only that array's elements kind.
 */
const PER_ARRAY = 65536;

const NEXT_WALKABLE =
  'for (let i = from; i < a.length; i++) { const x = a[i]; if (typeof x === "object" || typeof x === "function" || typeof x === "symbol") return i; } return a.length;';

/** Elements from `from` on that are primitives, until `limit` estimated bytes: where they end, their bytes, whether all are numbers. */
const SCAN_PRIMITIVES = `
  let bytes = 0, numbers = true, i = from;
  for (; i < a.length && bytes < limit; i++) {
    const x = a[i];
    const t = typeof x;
    if (t === "number") bytes += 9;
    else if (t === "string") { bytes += 5 + x.length; numbers = false; }
    else if (t === "object" ? x !== null : t === "function" || t === "symbol") break;
    else { bytes += 1; numbers = false; }
  }
  return { end: i, bytes, numbers };`;

/** Elements `from..end` (all numbers) as float64s. */
const NUMBERS_OF = "const out = new Float64Array(end - from); for (let i = from; i < end; i++) out[i - from] = a[i]; return out;";

type Loop<T> = (a: unknown[], from: number, arg: number) => T;
const shared = new Map<string, Loop<unknown>>();

function loop<T>(body: string, a: unknown[], from: number, arg: number): T {
  const params = ["a", "from", body === NUMBERS_OF ? "end" : "limit"];
  let f = shared.get(body);
  if (!f) shared.set(body, (f = compile(params, body) ?? (FALLBACK.get(body) as Loop<unknown>)));
  if (a.length - from > PER_ARRAY) f = compile(params, body) ?? f;
  return f(a, from, arg) as T;
}

function compile(params: string[], body: string): Loop<unknown> | null {
  try {
    return new Function(...params, body) as Loop<unknown>;
  } catch {
    return null; // code generation from strings is off (--disallow-code-generation-from-strings): slower, same result
  }
}

const FALLBACK = new Map<string, Loop<unknown>>([
  [
    NEXT_WALKABLE,
    (a, from) => {
      for (let i = from; i < a.length; i++) {
        const x: unknown = a[i];
        if (typeof x === "object" || typeof x === "function" || typeof x === "symbol") return i;
      }
      return a.length;
    },
  ],
  [
    SCAN_PRIMITIVES,
    (a, from, limit) => {
      let bytes = 0;
      let numbers = true;
      let i = from;
      for (; i < a.length && bytes < limit; i++) {
        const x: unknown = a[i];
        const t = typeof x;
        if (t === "number") bytes += 9;
        else if (t === "string") {
          bytes += 5 + (x as string).length;
          numbers = false;
        } else if (t === "object" ? x !== null : t === "function" || t === "symbol") break;
        else {
          bytes += 1;
          numbers = false;
        }
      }
      return { end: i, bytes, numbers };
    },
  ],
  [
    NUMBERS_OF,
    (a, from, end) => {
      const out = new Float64Array(end - from);
      for (let i = from; i < end; i++) out[i - from] = a[i] as number;
      return out;
    },
  ],
]);

/** The index of the first element from `from` on that has anything to walk (`a.length` if none). */
function nextWalkable(a: unknown[], from: number): number {
  return loop<number>(NEXT_WALKABLE, a, from, 0);
}

export function scanPrimitives(a: unknown[], from: number, limit: number): { end: number; bytes: number; numbers: boolean } {
  return loop(SCAN_PRIMITIVES, a, from, limit);
}

export function numbersOf(a: unknown[], from: number, end: number): Float64Array {
  return loop(NUMBERS_OF, a, from, end);
}

/** Objects the whole writer must look at (a stub, or V8's own rules): anything but plain data. */
function unusual(v: object): boolean {
  return (
    utilTypes.isProxy(v) ||
    utilTypes.isPromise(v) ||
    v instanceof EventEmitter ||
    v instanceof WeakMap ||
    v instanceof WeakSet ||
    v instanceof WeakRef ||
    v instanceof SharedArrayBuffer ||
    utilTypes.isExternal(v) ||
    utilTypes.isModuleNamespaceObject(v)
  );
}
