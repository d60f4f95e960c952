/**
 * Value ⇄ bytes. One format for every artifact:
 *
 *   "NBSV" u16 format u16 0 u32 headerLength u32 0 | header JSON | pad8
 *   part 0 | pad8 | part 1 | pad8 ...
 *
 * The header says what the value is (kind, type description) and lists the
 * parts. For ordinary values part 0 is a `v8.Serializer` payload; typed
 * arrays, Buffers and ArrayBuffers of at least `threshold` bytes are written
 * *out of band*: the payload holds a reference and the raw memory follows as
 * its own part, so a 256 MB Float64Array is hashed and written straight from
 * its memory and read back into one fresh allocation.
 *
 * Equal values give equal bytes (and so one sha256) as long as they were
 * built the same way: property, Map and Set order are insertion order.
 */
import { EventEmitter } from "node:events";
import * as v8 from "node:v8";
import { types as utilTypes } from "node:util";
import { UnserializableValueError } from "./errors";

export const FORMAT_VERSION = 1;
const MAGIC = Buffer.from("NBSV", "latin1");
const PREFIX_LENGTH = 16;
const MAX_HEADER = 16 << 20;
/** Views at least this large go out of band. */
export const DEFAULT_OOB_THRESHOLD = 64 * 1024;
const ZEROS = new Uint8Array(8);

export type ValueKind = "v8" | "source" | "stub";
type PartRole = "v8" | "view" | "arraybuffer" | "text";

export interface ValueHeader {
  kind: ValueKind;
  /** Short description, e.g. `Float64Array(33554432)`, `Map(3)`, `class Model`. */
  type: string;
  /** Constructor name of a top-level class instance (its prototype is not stored). */
  class?: string;
  /** Stubs: why the value could not be stored, and where inside it. */
  reason?: string;
  path?: string | null;
  parts: Array<{ role: PartRole; length: number }>;
}

export interface Serialized {
  header: ValueHeader;
  /** The bytes, as chunks; large ones are views into the value's own memory. */
  chunks: Uint8Array[];
  size: number;
}

export type Decoded =
  | { kind: "v8"; type: string; className?: string; value: unknown }
  | { kind: "source"; type: string; source: string }
  | { kind: "stub"; type: string; reason: string; path: string | null };

export interface SerializeOptions {
  threshold?: number;
}

// --- typed array constructors, by stable index (part of the format) ---

type ViewCtor = { new (buffer: ArrayBuffer, byteOffset?: number, length?: number): ArrayBufferView; BYTES_PER_ELEMENT?: number };
const VIEW_TYPES: ReadonlyArray<[string, ViewCtor]> = [
  ["Buffer", Buffer as unknown as ViewCtor],
  ["Int8Array", Int8Array],
  ["Uint8Array", Uint8Array],
  ["Uint8ClampedArray", Uint8ClampedArray],
  ["Int16Array", Int16Array],
  ["Uint16Array", Uint16Array],
  ["Int32Array", Int32Array],
  ["Uint32Array", Uint32Array],
  ["Float32Array", Float32Array],
  ["Float64Array", Float64Array],
  ["BigInt64Array", BigInt64Array],
  ["BigUint64Array", BigUint64Array],
  ["DataView", DataView as unknown as ViewCtor],
];

function viewTypeIndex(view: ArrayBufferView): number {
  if (Buffer.isBuffer(view)) return 0;
  for (let i = 1; i < VIEW_TYPES.length; i++) if (view instanceof VIEW_TYPES[i][1]) return i;
  throw new HostObjectError(`an unsupported ArrayBuffer view (${ctorName(view)})`);
}

function makeView(index: number, ab: ArrayBuffer): ArrayBufferView {
  const entry = VIEW_TYPES[index];
  if (!entry) throw new Error(`unknown view type ${index} in stored value`);
  const [name, ctor] = entry;
  if (name === "Buffer") return Buffer.from(ab, 0, ab.byteLength);
  if (name === "DataView") return new DataView(ab);
  return new ctor(ab, 0, ab.byteLength / (ctor.BYTES_PER_ELEMENT ?? 1));
}

// --- the v8 serializer with out-of-band buffers ---

class HostObjectError extends Error {}

/** Node's v8 classes have these hooks, but @types/node does not declare them. */
interface SerializerHooks {
  _setTreatArrayBufferViewsAsHostObjects(flag: boolean): void;
}

class OutOfBandSerializer extends v8.Serializer {
  readonly parts: Array<{ role: "view" | "arraybuffer"; bytes: Uint8Array }> = [];
  private readonly index = new Map<ArrayBufferLike, Array<{ offset: number; length: number; id: number }>>();

  constructor(private readonly threshold: number) {
    super();
    (this as unknown as SerializerHooks)._setTreatArrayBufferViewsAsHostObjects(true);
  }

  /** Registers a whole plain ArrayBuffer as a part before `writeValue`. */
  transferWhole(ab: ArrayBuffer): void {
    const id = this.partFor(ab, 0, ab.byteLength, "arraybuffer");
    this.transferArrayBuffer(id, ab);
  }

  private partFor(buffer: ArrayBufferLike, offset: number, length: number, role: "view" | "arraybuffer"): number {
    let list = this.index.get(buffer);
    if (!list) this.index.set(buffer, (list = []));
    const hit = list.find((p) => p.offset === offset && p.length === length);
    if (hit) return hit.id;
    const id = this.parts.length;
    this.parts.push({ role, bytes: new Uint8Array(buffer, offset, length) });
    list.push({ offset, length, id });
    return id;
  }

  _writeHostObject(obj: object): boolean {
    if (!ArrayBuffer.isView(obj)) throw new HostObjectError(`a native object (${ctorName(obj)}) with internal state`);
    this.writeUint32(viewTypeIndex(obj));
    if (obj.byteLength >= this.threshold) {
      this.writeUint32(1);
      this.writeUint32(this.partFor(obj.buffer, obj.byteOffset, obj.byteLength, "view"));
    } else {
      this.writeUint32(0);
      this.writeUint32(obj.byteLength);
      this.writeRawBytes(new Uint8Array(obj.buffer, obj.byteOffset, obj.byteLength));
    }
    return true;
  }

  _getDataCloneError(message: string): Error {
    return new HostObjectError(message);
  }
}

interface DeserializerHooks {
  readRawBytes(length: number): Buffer;
}

class OutOfBandDeserializer extends v8.Deserializer {
  constructor(
    payload: Buffer,
    private readonly parts: ArrayBuffer[],
  ) {
    super(payload);
  }

  _readHostObject(): unknown {
    const type = this.readUint32();
    const mode = this.readUint32();
    if (mode === 1) {
      const ab = this.parts[this.readUint32()];
      if (!ab) throw new Error("stored value references a missing part");
      return makeView(type, ab);
    }
    const length = this.readUint32();
    const raw = (this as unknown as DeserializerHooks).readRawBytes(length);
    // A fresh ArrayBuffer of exactly this size: `.buffer` then means what it meant.
    const ab = new ArrayBuffer(length);
    new Uint8Array(ab).set(raw);
    return makeView(type, ab);
  }
}

// --- serialize ---

/**
 * Turns any value into bytes. Never throws because of the value: what can't
 * be stored becomes a `stub` recording type and reason; functions and
 * classes become their source text.
 */
export function serializeValue(value: unknown, options: SerializeOptions = {}): Serialized {
  const type = describeType(value);
  if (typeof value === "function") return serializeFunction(value, type);
  if (typeof value === "symbol") return stub(type, "a symbol is unique to this process", null);
  const threshold = options.threshold ?? DEFAULT_OOB_THRESHOLD;
  const ser = new OutOfBandSerializer(threshold);
  let payload: Buffer;
  try {
    const walk = preWalk(value, threshold);
    if (walk.live) {
      const culprit = findUnserializable(value);
      if (culprit) return stub(type, culprit.reason, culprit.path);
    }
    ser.writeHeader();
    for (const ab of walk.buffers) ser.transferWhole(ab);
    ser.writeValue(value);
    payload = ser.releaseBuffer();
  } catch (e) {
    if (!(e instanceof HostObjectError) && !(e instanceof Error && /could not be cloned|DataCloneError/.test(e.message))) {
      // e.g. a getter that throws, or out of memory: still never fail the cell.
      return stub(type, `serialization failed: ${e instanceof Error ? e.message : String(e)}`, null);
    }
    const culprit = findUnserializable(value);
    return stub(type, culprit?.reason ?? (e as Error).message, culprit?.path ?? null);
  }
  const header: ValueHeader = { kind: "v8", type, parts: [{ role: "v8", length: payload.byteLength }] };
  const cls = userClassName(value);
  if (cls) header.class = cls;
  for (const p of ser.parts) header.parts.push({ role: p.role, length: p.bytes.byteLength });
  return assemble(header, [payload, ...ser.parts.map((p) => p.bytes)]);
}

/** Like `serializeValue` but refuses a stub, naming the variable (step inputs). */
export function serializeOrThrow(variable: string, value: unknown, options?: SerializeOptions): Serialized {
  const s = serializeValue(value, options);
  if (s.header.kind === "stub") {
    throw new UnserializableValueError(variable, s.header.type, s.header.reason ?? "unknown", s.header.path ?? null);
  }
  return s;
}

function serializeFunction(fn: FunctionValue, type: string): Serialized {
  let source: string;
  try {
    source = Function.prototype.toString.call(fn);
  } catch {
    return stub(type, "its source text is not available", null);
  }
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    return stub(type, "a native or bound function has no source text to version", null);
  }
  const text = Buffer.from(source, "utf8");
  return assemble({ kind: "source", type, parts: [{ role: "text", length: text.byteLength }] }, [text]);
}

/**
 * Source text versioned as a value (`kind: "source"`): the kernel records a
 * function or class declared by a cell as its TypeScript source, which a
 * restore re-runs, rather than the compiled JavaScript.
 */
export function serializeSourceText(source: string, type: string): Serialized {
  const text = Buffer.from(source, "utf8");
  return assemble({ kind: "source", type, parts: [{ role: "text", length: text.byteLength }] }, [text]);
}

function stub(type: string, reason: string, path: string | null): Serialized {
  return assemble({ kind: "stub", type, reason, path, parts: [] }, []);
}

function assemble(header: ValueHeader, parts: Uint8Array[]): Serialized {
  const json = Buffer.from(JSON.stringify(header), "utf8");
  const prefix = Buffer.alloc(PREFIX_LENGTH);
  MAGIC.copy(prefix, 0);
  prefix.writeUInt16LE(FORMAT_VERSION, 4);
  prefix.writeUInt32LE(json.byteLength, 8);
  const chunks: Uint8Array[] = [prefix, json];
  let size = PREFIX_LENGTH + json.byteLength;
  const pad = () => {
    const n = (8 - (size % 8)) % 8;
    if (n > 0) {
      chunks.push(ZEROS.subarray(0, n));
      size += n;
    }
  };
  pad();
  for (const p of parts) {
    if (p.byteLength > 0) chunks.push(p);
    size += p.byteLength;
    pad();
  }
  return { header, chunks, size };
}

// --- deserialize ---

/** What `deserialize` reads from: a verifying blob reader or a buffer. */
export interface ByteSource {
  readonly remaining: number;
  read(target: Uint8Array): Promise<void>;
}

export class BufferSource implements ByteSource {
  private pos = 0;
  constructor(private readonly buf: Uint8Array) {}
  get remaining(): number {
    return this.buf.byteLength - this.pos;
  }
  async read(target: Uint8Array): Promise<void> {
    if (target.byteLength > this.remaining) throw new Error("stored value is truncated");
    target.set(this.buf.subarray(this.pos, this.pos + target.byteLength));
    this.pos += target.byteLength;
  }
}

/** Reads only the header (cheap: used for listings and JSON decisions). */
export async function readHeader(src: ByteSource): Promise<ValueHeader> {
  const prefix = Buffer.alloc(PREFIX_LENGTH);
  if (src.remaining < PREFIX_LENGTH) throw new Error("stored value is shorter than its header");
  await src.read(prefix);
  if (!prefix.subarray(0, 4).equals(MAGIC)) throw new Error("stored value does not start with the nbscale value magic");
  const version = prefix.readUInt16LE(4);
  if (version !== FORMAT_VERSION) {
    throw new Error(`stored value has format ${version}; this nbscale reads format ${FORMAT_VERSION} (upgrade nbscale)`);
  }
  const length = prefix.readUInt32LE(8);
  if (length > MAX_HEADER || length > src.remaining) throw new Error("stored value header length is invalid");
  const json = Buffer.alloc(length);
  await src.read(json);
  await skipPad(src, PREFIX_LENGTH + length);
  const header = JSON.parse(json.toString("utf8")) as ValueHeader;
  if (!header || typeof header.kind !== "string" || !Array.isArray(header.parts)) throw new Error("stored value header is malformed");
  return header;
}

/** A function or class as a value (what `typeof v === "function"` holds) as far as serializing needs it. */
export interface FunctionValue {
  readonly name: string;
  readonly prototype: object | null;
}

/** Looks up a class by name to give a top-level instance its prototype back. */
export type ClassResolver = (name: string) => FunctionValue | undefined;

export interface DeserializeOptions {
  resolveClass?: ClassResolver;
}

export async function deserialize(src: ByteSource, options: DeserializeOptions = {}): Promise<Decoded> {
  const start = src.remaining;
  const header = await readHeader(src);
  let offset = start - src.remaining;
  const parts: Array<Buffer | ArrayBuffer> = [];
  for (const p of header.parts) {
    if (!Number.isSafeInteger(p.length) || p.length < 0 || p.length > src.remaining) {
      throw new Error("stored value part length is invalid");
    }
    if (p.role === "view" || p.role === "arraybuffer") {
      const ab = new ArrayBuffer(p.length);
      await src.read(new Uint8Array(ab));
      parts.push(ab);
    } else {
      const buf = Buffer.allocUnsafe(p.length);
      await src.read(buf);
      parts.push(buf);
    }
    offset += p.length;
    offset = await skipPad(src, offset);
  }
  switch (header.kind) {
    case "stub":
      return { kind: "stub", type: header.type, reason: header.reason ?? "unknown", path: header.path ?? null };
    case "source":
      return { kind: "source", type: header.type, source: (parts[0] as Buffer).toString("utf8") };
    case "v8": {
      const oob = parts.slice(1) as ArrayBuffer[];
      const des = new OutOfBandDeserializer(parts[0] as Buffer, oob);
      des.readHeader();
      header.parts.slice(1).forEach((p, i) => {
        if (p.role === "arraybuffer") des.transferArrayBuffer(i, oob[i]);
      });
      const value: unknown = repackArrays(des.readValue());
      if (header.class && options.resolveClass && typeof value === "object" && value !== null) {
        const cls = options.resolveClass(header.class);
        if (cls && typeof (cls as unknown) === "function" && cls.prototype) Object.setPrototypeOf(value, cls.prototype);
      }
      return header.class ? { kind: "v8", type: header.type, className: header.class, value } : { kind: "v8", type: header.type, value };
    }
    default:
      throw new Error(`stored value has unknown kind ${JSON.stringify(header.kind)}`);
  }
}

/**
 * V8's deserializer builds every array with "holey" elements, and its
 * serializer writes holey arrays in its sparse form: a restored `[1, 2, 3]`
 * would serialize to other bytes than the original and so look like a new
 * version the first time a cell reads it. Arrays without holes are rebuilt
 * packed (sharing and cycles kept), so a round trip gives the same bytes.
 * Freshly deserialized containers are ours to patch in place.
 */
function repackArrays(root: unknown): unknown {
  const memo = new Map<object, unknown>();
  const fix = (v: unknown): unknown => {
    if (typeof v !== "object" || v === null || ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return v;
    if (memo.has(v)) return memo.get(v);
    if (Array.isArray(v)) {
      for (let i = 0; i < v.length; i++) {
        if (!(i in v)) {
          memo.set(v, v); // genuinely sparse: keep as is (it serializes sparse both times)
          for (let j = 0; j < v.length; j++) if (j in v) v[j] = fix(v[j]);
          return v;
        }
      }
      const packed: unknown[] = [];
      memo.set(v, packed);
      for (let i = 0; i < v.length; i++) packed.push(fix(v[i]));
      return packed;
    }
    memo.set(v, v);
    if (v instanceof Map) {
      const entries = [...v.entries()].map(([k, x]) => [fix(k), fix(x)] as const);
      v.clear();
      for (const [k, x] of entries) v.set(k, x);
    } else if (v instanceof Set) {
      const items = [...v].map(fix);
      v.clear();
      for (const x of items) v.add(x);
    } else {
      for (const k of Object.keys(v)) {
        const d = Object.getOwnPropertyDescriptor(v, k);
        if (d && "value" in d && typeof d.value === "object" && d.value !== null) {
          const f = fix(d.value);
          if (f !== d.value) (v as Record<string, unknown>)[k] = f;
        }
      }
    }
    return v;
  };
  return fix(root);
}

async function skipPad(src: ByteSource, offset: number): Promise<number> {
  const n = (8 - (offset % 8)) % 8;
  if (n > 0 && src.remaining >= n) await src.read(new Uint8Array(n));
  return offset + n;
}

// --- type descriptions and culprit finding ---

function ctorName(v: object): string {
  try {
    const proto = Object.getPrototypeOf(v);
    if (proto === null) return "Object (null prototype)";
    const c = proto.constructor;
    return typeof c === "function" && c.name ? c.name : "Object";
  } catch {
    return "Object";
  }
}

/** A short, human description of a value's type. */
export function describeType(v: unknown): string {
  if (v === null) return "null";
  switch (typeof v) {
    case "function": {
      let src = "";
      try {
        src = Function.prototype.toString.call(v);
      } catch {
        /* proxies */
      }
      const name = (v as FunctionValue).name || "anonymous";
      return /^class\b/.test(src) ? `class ${name}` : `function ${name}`;
    }
    case "object":
      break;
    default:
      return typeof v;
  }
  const o = v as object;
  if (utilTypes.isProxy(o)) return "Proxy";
  if (Array.isArray(o)) return `Array(${o.length})`;
  if (Buffer.isBuffer(o)) return `Buffer(${o.byteLength})`;
  if (ArrayBuffer.isView(o)) {
    return o instanceof DataView ? `DataView(${o.byteLength})` : `${ctorName(o)}(${(o as unknown as { length: number }).length})`;
  }
  if (o instanceof ArrayBuffer) return `ArrayBuffer(${o.byteLength})`;
  if (o instanceof Map) return `${ctorName(o)}(${o.size})`;
  if (o instanceof Set) return `${ctorName(o)}(${o.size})`;
  return ctorName(o);
}

/** True for constructors that are JS/Node globals (their instances need no class note). */
function isGlobalCtor(ctor: FunctionValue): boolean {
  // A descriptor read: touching lazy globals through getters would run them.
  return ctor.name !== "" && Object.getOwnPropertyDescriptor(globalThis, ctor.name)?.value === ctor;
}

function userClassName(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const proto = Object.getPrototypeOf(v);
  if (proto === null || proto === Object.prototype) return undefined;
  const ctor = proto.constructor;
  if (typeof ctor !== "function" || isGlobalCtor(ctor) || ArrayBuffer.isView(v)) return undefined;
  return ctor.name || undefined;
}

/**
 * One bounded walk before serializing: finds plain ArrayBuffers to send out
 * of band, and live objects that v8 would happily copy as meaningless plain
 * data (an EventEmitter, socket or server has only enumerable bookkeeping),
 * which must become stubs instead. Large graphs stop at the budget: the rest
 * is left to v8's own checks, and big buffers there are written inline.
 */
function preWalk(value: unknown, threshold: number, budget = 100_000): { buffers: ArrayBuffer[]; live: boolean } {
  const buffers: ArrayBuffer[] = [];
  const seen = new Set<object>();
  const stack: unknown[] = [value];
  let steps = 0;
  while (stack.length > 0 && steps++ < budget) {
    const v = stack.pop();
    if (typeof v !== "object" || v === null || seen.has(v)) continue;
    if (utilTypes.isProxy(v) || v instanceof EventEmitter) return { buffers, live: true };
    seen.add(v);
    if (v instanceof ArrayBuffer) {
      if (v.byteLength >= threshold) buffers.push(v);
    } else if (ArrayBuffer.isView(v)) {
      continue;
    } else if (v instanceof Map) {
      for (const [k, x] of v) stack.push(k, x);
    } else if (v instanceof Set) {
      for (const x of v) stack.push(x);
    } else if (Array.isArray(v)) {
      for (const x of v) if (typeof x === "object" && x !== null) stack.push(x);
    } else {
      for (const k of Object.keys(v)) {
        const d = Object.getOwnPropertyDescriptor(v, k);
        if (d && "value" in d) stack.push(d.value);
      }
    }
  }
  return { buffers, live: false };
}

/** Finds the first part of a value that can't be cloned, with a path and a reason. */
export function findUnserializable(value: unknown, budget = 100_000): { path: string | null; reason: string } | null {
  const seen = new Set<object>();
  const queue: Array<[unknown, string]> = [[value, ""]];
  let steps = 0;
  while (queue.length > 0 && steps++ < budget) {
    const [v, path] = queue.shift() as [unknown, string];
    const here = path === "" ? null : path;
    const why = unserializableReason(v);
    if (why) return { path: here, reason: why };
    if (typeof v !== "object" || v === null || seen.has(v)) continue;
    seen.add(v);
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) continue;
    if (v instanceof Map) {
      let i = 0;
      for (const [k, x] of v) {
        queue.push([k, `${path}<key ${i}>`], [x, `${path}.get(${safeKey(k)})`]);
        i++;
      }
    } else if (v instanceof Set) {
      let i = 0;
      for (const x of v) queue.push([x, `${path}<item ${i++}>`]);
    } else {
      for (const k of Object.keys(v)) {
        const d = Object.getOwnPropertyDescriptor(v, k);
        if (d && "value" in d) queue.push([d.value, Array.isArray(v) ? `${path}[${k}]` : path === "" ? k : `${path}.${k}`]);
      }
    }
  }
  return null;
}

function safeKey(k: unknown): string {
  return typeof k === "string" ? JSON.stringify(k) : typeof k === "number" ? String(k) : "…";
}

function unserializableReason(v: unknown): string | null {
  if (typeof v === "function") {
    return `${describeType(v)} is code, not data (a function variable on its own is versioned as source, not inside a value)`;
  }
  if (typeof v === "symbol") return "a symbol is unique to this process";
  if (typeof v !== "object" || v === null) return null;
  if (utilTypes.isProxy(v)) return "a Proxy can't be copied";
  if (utilTypes.isPromise(v)) return "a Promise is a pending computation (await it and store the result)";
  if (v instanceof WeakMap || v instanceof WeakSet || v instanceof WeakRef) return `a ${ctorName(v)} does not expose its contents`;
  if (v instanceof SharedArrayBuffer) return "a SharedArrayBuffer is shared memory between threads";
  if (v instanceof EventEmitter) {
    return `a ${ctorName(v)} is a live Node.js object (stream, socket, emitter…) bound to this process`;
  }
  if (utilTypes.isExternal(v)) return "a native handle";
  return null;
}
