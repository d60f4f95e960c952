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
 *
 * Format 2 (chunked) is for big containers: an array, Map, Set or ordinary
 * object whose v8 payload would be at least `splitBytes` and whose items
 * share nothing with each other (items.ts decides both, from the value
 * alone). One serializer over such a value would build a second copy of it
 * in memory before the first byte could be written. Instead its items are
 * written in runs of about `runBytes`, each by a v8.Serializer of its own,
 * as a stream of records that is produced as it is consumed, so a writer
 * (spill file, datastore) holds one run at a time:
 *
 *   "NBSV" u16 2 ... | header JSON (no parts; `container`) | pad8
 *   record* ; record = u32 type  u32 arg  u64 length | bytes | pad8
 *     RUN   arg = parts that follow; bytes = v8 payload of an array of the
 *           run's items (Map entries and properties as key, value, ...)
 *     PART  arg = 0 view / 1 ArrayBuffer: a run's out-of-band part
 *     OPEN  arg = container code; bytes = v8 payload of [key] (Maps,
 *           objects): an item big enough to be split in turn
 *     NUMBERS  a run of an array's elements that are all numbers, as
 *           float64 LE (no boxing on the way out, 8 bytes each)
 *     CLOSE ends the container OPEN (or the header) began
 *
 * Shared references and cycles inside one item are kept by its run's
 * serializer; a value whose items share objects (or reach the container) is
 * written whole, as format 1, so it round-trips exactly as before. Values
 * under `splitBytes` keep format 1 and their existing hashes; readers read
 * both formats.
 */
import { EventEmitter } from "node:events";
import * as v8 from "node:v8";
import { types as utilTypes } from "node:util";
import { UnserializableValueError } from "./errors";
import { CONTAINER_CODES, estimateAtLeast, itemsAreDisjoint, numbersOf, scanPrimitives, splitKind, type ContainerKind } from "./items";

export const FORMAT_VERSION = 1;
/** Containers written item by item (see above). */
export const CHUNKED_FORMAT_VERSION = 2;
/** Containers whose payload would be at least this big are written in runs. */
export const DEFAULT_SPLIT_BYTES = 32 << 20;
/** About how much payload one run holds. */
export const DEFAULT_RUN_BYTES = 8 << 20;
/**
 * At most this many items in one run's array, so the array is a young-
 * generation object that the next scavenge frees. Bigger ones go to V8's
 * large-object space, which only a full GC frees: the runs of a 2 GiB
 * `string[]` piled up there to 20% over the value before one ran.
 */
const RUN_ITEMS = 8192;
const RECORD_HEADER = 16;
const REC_RUN = 1;
const REC_PART = 2;
const REC_OPEN = 3;
const REC_CLOSE = 4;
const REC_NUMBERS = 5;
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
  /** Format 2: the root container whose items follow as records. */
  container?: ContainerKind;
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
  /** Tests make these small; everyone else keeps the defaults, or the bytes (and hashes) differ. */
  splitBytes?: number;
  runBytes?: number;
}

/**
 * A value's bytes as they are produced. `size` is known up front for values
 * written whole; a chunked value's `chunks` is a generator that serializes
 * its next run only when asked, so a consumer that writes each chunk out
 * before taking the next holds one run at a time. Iterate it once.
 */
export interface SerializedStream {
  header: ValueHeader;
  chunked: boolean;
  size?: number;
  chunks: Iterable<Uint8Array>;
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
  const st = serializeStream(value, options);
  if (!st.chunked) return { header: st.header, chunks: st.chunks as Uint8Array[], size: st.size as number };
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (const c of st.chunks) {
      chunks.push(c);
      size += c.byteLength;
    }
  } catch {
    return serializeWhole(value, options);
  }
  return { header: st.header, chunks, size };
}

/**
 * The value's bytes as a stream (see SerializedStream). A consumer whose
 * stream throws part-way (something deep in an item V8 refuses) discards
 * what it wrote and takes `serializeWhole`, as serializeValue does: that
 * gives the same stub (culprit, path) every path gives.
 */
export function serializeStream(value: unknown, options: SerializeOptions = {}): SerializedStream {
  const threshold = options.threshold ?? DEFAULT_OOB_THRESHOLD;
  const splitBytes = options.splitBytes ?? DEFAULT_SPLIT_BYTES;
  const runBytes = options.runBytes ?? DEFAULT_RUN_BYTES;
  if (typeof value === "object" && value !== null) {
    const kind = splitKind(value, splitBytes, threshold);
    const buffers = new Map<number, ArrayBuffer[]>();
    if (kind && itemsAreDisjoint(value, kind, splitBytes, threshold, buffers)) {
      const header: ValueHeader = { kind: "v8", type: describeType(value), parts: [], container: kind };
      const cls = userClassName(value);
      if (cls) header.class = cls;
      return { header, chunked: true, chunks: writeChunked(value, kind, header, { threshold, splitBytes, runBytes }, buffers) };
    }
  }
  const s = serializeWhole(value, options);
  return { header: s.header, chunked: false, size: s.size, chunks: s.chunks };
}

/** Format 1: the value by one serializer (or its source text, or a stub). */
export function serializeWhole(value: unknown, options: SerializeOptions = {}): Serialized {
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
  prefix.writeUInt16LE(header.container ? CHUNKED_FORMAT_VERSION : FORMAT_VERSION, 4);
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

// --- format 2: containers item by item ---

interface ChunkedOptions {
  threshold: number;
  splitBytes: number;
  runBytes: number;
}

function recordHeader(type: number, arg: number, length: number): Buffer {
  const h = Buffer.alloc(RECORD_HEADER);
  h.writeUInt32LE(type, 0);
  h.writeUInt32LE(arg, 4);
  h.writeBigUInt64LE(BigInt(length), 8);
  return h;
}

function* record(type: number, arg: number, bytes: Uint8Array | null): Generator<Uint8Array> {
  const length = bytes ? bytes.byteLength : 0;
  yield recordHeader(type, arg, length);
  if (bytes && length > 0) yield bytes;
  const pad = (8 - (length % 8)) % 8;
  if (pad > 0) yield ZEROS.subarray(0, pad);
}

/**
 * How V8 writes a number depends on where it sits: every element of a
 * double array as a double, a small integer elsewhere as an integer. Which
 * it is depends on how the array was built, and even on the optimizer and
 * the elements kinds an allocation site has seen before (`slice`, or `[]`
 * then `push`, give different kinds in different processes). So a run's
 * array is generic from birth (a literal holding null: the most general
 * packed kind, which never changes back), and each number in it is stored
 * as V8 makes it fresh: a small integer as a Smi, anything else boxed. What
 * V8 writes is then a function of the values alone, in every process.
 * (Only ever pushed to: an allocation site that once saw its arrays turn
 * holey makes every later one holey, which V8 writes in its sparse form.)
 */
function newRun(): unknown[] {
  const r: unknown[] = [null];
  r.length = 0;
  return r;
}

function canonical(x: unknown): unknown {
  return typeof x === "number" && (x | 0) === x && !Object.is(x, -0) ? x | 0 : x;
}

/** Elements `start..end` of `a` as a run (see newRun); holes stay holes. */
function runOf(a: unknown[], start: number, end: number): unknown[] {
  const items = newRun();
  for (let i = start; i < end; i++) {
    const x: unknown = a[i];
    if (x === undefined && !(i in a)) return holeyRunOf(a, start, end);
    items.push(canonical(x));
  }
  return items;
}

function holeyRunOf(a: unknown[], start: number, end: number): unknown[] {
  // A literal of its own: V8 remembers per literal that its arrays became holey, and would make newRun's holey too.
  const items: unknown[] = [null];
  items.length = end - start;
  delete items[0];
  for (let i = start; i < end; i++) if (i in a) items[i - start] = canonical(a[i]);
  return items;
}

function* entriesOf(c: object, k: ContainerKind): Generator<[unknown, unknown]> {
  if (k === "map") yield* (c as Map<unknown, unknown>).entries();
  else if (k === "set") for (const v of c as Set<unknown>) yield [v, v];
  else for (const key of Object.keys(c)) yield [key, (c as Record<string, unknown>)[key]];
}

function keyPayload(key: unknown): Buffer {
  // Keys are small: no out-of-band parts, so an OPEN record is self-contained.
  const ser = new OutOfBandSerializer(Infinity);
  ser.writeHeader();
  ser.writeValue(key);
  return ser.releaseBuffer();
}

/**
 * Walks the containers in the order items.ts's disjointness walk did (its
 * item numbers say which big ArrayBuffers belong to which run) and makes
 * one run's bytes per step of the consumer.
 */
function* writeChunked(root: object, kind: ContainerKind, header: ValueHeader, o: ChunkedOptions, buffers: Map<number, ArrayBuffer[]>): Generator<Uint8Array> {
  const head = assemble(header, []);
  yield* head.chunks;
  const big: Array<[number, ArrayBuffer[]]> = [...buffers.entries()];
  let bigAt = 0;
  let unit = 0;

  function* run(items: unknown[], lastUnit: number): Generator<Uint8Array> {
    const ser = new OutOfBandSerializer(o.threshold);
    ser.writeHeader();
    while (bigAt < big.length && big[bigAt][0] <= lastUnit) for (const ab of big[bigAt++][1]) ser.transferWhole(ab);
    ser.writeValue(items);
    const payload = ser.releaseBuffer();
    yield* record(REC_RUN, ser.parts.length, payload);
    for (const p of ser.parts) yield* record(REC_PART, p.role === "view" ? 0 : 1, p.bytes);
  }

  function* nested(key: unknown, value: object, sub: ContainerKind, keyed: boolean): Generator<Uint8Array> {
    yield* record(REC_OPEN, CONTAINER_CODES.indexOf(sub), keyed ? keyPayload(key) : null);
    yield* container(value, sub);
  }

  function* container(c: object, k: ContainerKind): Generator<Uint8Array> {
    if (k === "array") {
      const a = c as unknown[];
      // The run is a..i; `numbers` while every element of it is a number.
      let start = 0;
      let est = 0;
      let numbers = true;
      const flush = function* (end: number): Generator<Uint8Array> {
        if (end > start) {
          if (numbers) yield* record(REC_NUMBERS, 0, new Uint8Array(numbersOf(a, start, end).buffer));
          else {
            // `unit` is element end-1's: element e's is unit - (end - 1 - e).
            for (let s = start; s < end; s += RUN_ITEMS) {
              const e = Math.min(end, s + RUN_ITEMS);
              yield* run(runOf(a, s, e), unit - (end - e));
            }
          }
        }
        start = end;
        est = 0;
        numbers = true;
      };
      let i = 0;
      while (i < a.length) {
        const scan = scanPrimitives(a, i, o.runBytes - est);
        if (scan.end > i) {
          unit += scan.end - i;
          est += scan.bytes;
          numbers &&= scan.numbers;
          i = scan.end;
          if (est >= o.runBytes) yield* flush(i);
          continue;
        }
        const x: unknown = a[i];
        unit++;
        const size = estimateAtLeast(x, o.splitBytes, o.threshold);
        const sub = size >= o.splitBytes ? splitKind(x, o.splitBytes, o.threshold) : null;
        if (sub) {
          unit--;
          yield* flush(i);
          unit++;
          yield* nested(i, x as object, sub, false);
          start = i + 1;
        } else {
          est += size;
          numbers = false;
          if (est >= o.runBytes) yield* flush(i + 1);
        }
        i++;
      }
      yield* flush(a.length);
    } else {
      const keyed = k === "map" || k === "object";
      let items = newRun();
      let est = 0;
      for (const [key, x] of entriesOf(c, k)) {
        unit++;
        const size = estimateAtLeast(x, o.splitBytes, o.threshold) + (keyed ? estimateAtLeast(key, o.splitBytes, o.threshold) : 0);
        const sub = size >= o.splitBytes ? splitKind(x, o.splitBytes, o.threshold) : null;
        if (sub) {
          if (items.length > 0) yield* run(items, unit - 1);
          items = newRun();
          est = 0;
          yield* nested(key, x as object, sub, keyed);
          continue;
        }
        if (keyed) items.push(canonical(key), canonical(x));
        else items.push(canonical(x));
        est += size;
        if (est >= o.runBytes || items.length >= RUN_ITEMS) {
          yield* run(items, unit);
          items = newRun();
          est = 0;
        }
      }
      if (items.length > 0) yield* run(items, unit);
    }
    yield* record(REC_CLOSE, 0, null);
  }

  yield* container(root, kind);
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
  if (version !== FORMAT_VERSION && version !== CHUNKED_FORMAT_VERSION) {
    throw new Error(`stored value has format ${version}; this nbscale reads formats ${FORMAT_VERSION} and ${CHUNKED_FORMAT_VERSION} (upgrade nbscale)`);
  }
  const length = prefix.readUInt32LE(8);
  if (length > MAX_HEADER || length > src.remaining) throw new Error("stored value header length is invalid");
  const json = Buffer.alloc(length);
  await src.read(json);
  await skipPad(src, PREFIX_LENGTH + length);
  const header = JSON.parse(json.toString("utf8")) as ValueHeader;
  if (!header || typeof header.kind !== "string" || !Array.isArray(header.parts)) throw new Error("stored value header is malformed");
  if ((version === CHUNKED_FORMAT_VERSION) !== (header.container !== undefined)) throw new Error("stored value header is malformed");
  if (header.container !== undefined && (header.kind !== "v8" || !CONTAINER_CODES.includes(header.container) || header.parts.length > 0)) {
    throw new Error("stored value header is malformed");
  }
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
  if (header.container) {
    const value = await readContainer(src, header.container);
    withClass(value, header, options);
    return header.class ? { kind: "v8", type: header.type, className: header.class, value } : { kind: "v8", type: header.type, value };
  }
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
      withClass(value, header, options);
      return header.class ? { kind: "v8", type: header.type, className: header.class, value } : { kind: "v8", type: header.type, value };
    }
    default:
      throw new Error(`stored value has unknown kind ${JSON.stringify(header.kind)}`);
  }
}

function withClass(value: unknown, header: ValueHeader, options: DeserializeOptions): void {
  if (header.class && options.resolveClass && typeof value === "object" && value !== null) {
    const cls = options.resolveClass(header.class);
    if (cls && typeof (cls as unknown) === "function" && cls.prototype) Object.setPrototypeOf(value, cls.prototype);
  }
}

async function readRecord(src: ByteSource): Promise<{ type: number; arg: number; length: number }> {
  if (src.remaining < RECORD_HEADER) throw new Error("stored value is truncated");
  const h = Buffer.alloc(RECORD_HEADER);
  await src.read(h);
  const length = Number(h.readBigUInt64LE(8));
  if (!Number.isSafeInteger(length) || length > src.remaining) throw new Error("stored value record length is invalid");
  return { type: h.readUInt32LE(0), arg: h.readUInt32LE(4), length };
}

async function readRecordBytes(src: ByteSource, target: Uint8Array): Promise<void> {
  await src.read(target);
  const pad = (8 - (target.byteLength % 8)) % 8;
  if (pad > 0 && src.remaining >= pad) await src.read(new Uint8Array(pad));
}

function newContainer(kind: ContainerKind): object {
  return kind === "array" ? [] : kind === "map" ? new Map() : kind === "set" ? new Set() : {};
}

function addItem(target: object, kind: ContainerKind, key: unknown, value: unknown): void {
  switch (kind) {
    case "array":
      (target as unknown[]).push(value);
      break;
    case "map":
      (target as Map<unknown, unknown>).set(key, value);
      break;
    case "set":
      (target as Set<unknown>).add(value);
      break;
    case "object":
      // Not `target[key] = value`: a key "__proto__" is an own property, as V8's deserializer makes it.
      Object.defineProperty(target, String(key), { value, writable: true, enumerable: true, configurable: true });
      break;
  }
}

function addRun(target: object, kind: ContainerKind, items: unknown[]): void {
  if (kind === "array") {
    const a = target as unknown[];
    const base = a.length;
    // Holes stay holes (a sparse array's runs are sparse); a run without any keeps the array packed.
    for (let i = 0; i < items.length; i++) if (i in items) a[base + i] = items[i];
    a.length = base + items.length;
  } else if (kind === "set") {
    for (const x of items) addItem(target, kind, x, x);
  } else {
    if (items.length % 2 !== 0) throw new Error("stored value run is malformed");
    for (let i = 0; i < items.length; i += 2) addItem(target, kind, items[i], items[i + 1]);
  }
}

/** Reads a container's records up to its CLOSE (format 2). */
async function readContainer(src: ByteSource, kind: ContainerKind): Promise<object> {
  const target = newContainer(kind);
  for (;;) {
    const rec = await readRecord(src);
    if (rec.type === REC_CLOSE) return target;
    if (rec.type === REC_RUN) {
      const payload = Buffer.allocUnsafe(rec.length);
      await readRecordBytes(src, payload);
      const parts: ArrayBuffer[] = [];
      const whole: number[] = [];
      for (let i = 0; i < rec.arg; i++) {
        const p = await readRecord(src);
        if (p.type !== REC_PART) throw new Error("stored value run is missing a part");
        const ab = new ArrayBuffer(p.length);
        await readRecordBytes(src, new Uint8Array(ab));
        parts.push(ab);
        if (p.arg === 1) whole.push(i);
      }
      const des = new OutOfBandDeserializer(payload, parts);
      des.readHeader();
      for (const i of whole) des.transferArrayBuffer(i, parts[i]);
      const items = repackArrays(des.readValue());
      if (!Array.isArray(items)) throw new Error("stored value run is malformed");
      addRun(target, kind, items);
    } else if (rec.type === REC_NUMBERS) {
      if (kind !== "array" || rec.length % 8 !== 0) throw new Error("stored value run is malformed");
      const numbers = new Float64Array(rec.length / 8);
      await readRecordBytes(src, new Uint8Array(numbers.buffer));
      const a = target as unknown[];
      for (let i = 0; i < numbers.length; i++) a.push(numbers[i]);
    } else if (rec.type === REC_OPEN) {
      const sub = CONTAINER_CODES[rec.arg];
      if (!sub) throw new Error(`unknown container ${rec.arg} in stored value`);
      let key: unknown;
      if (rec.length > 0) {
        const payload = Buffer.allocUnsafe(rec.length);
        await readRecordBytes(src, payload);
        const des = new OutOfBandDeserializer(payload, []);
        des.readHeader();
        key = repackArrays(des.readValue());
      }
      addItem(target, kind, key, await readContainer(src, sub));
    } else {
      throw new Error(`unknown record ${rec.type} in stored value`);
    }
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
