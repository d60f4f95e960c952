/**
 * The JSON form of a stored value (`nbscale artifact get --json`): the value
 * as JSON where it has one, with notes wherever something had to be changed
 * or left out, so nothing is silently misrepresented.
 */
import { Decoded, describeType } from "./serialize";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

export interface JsonForm {
  value: Json;
  /** What could not be represented exactly, e.g. "x: Float64Array(33554432) too large for JSON". */
  notes: string[];
}

export interface JsonFormOptions {
  /** Typed arrays / arrays / strings longer than this are left out (null). */
  maxElements?: number;
}

export function toJsonForm(decoded: Decoded, options: JsonFormOptions = {}): JsonForm {
  const notes: string[] = [];
  switch (decoded.kind) {
    case "stub":
      notes.push(`value was not stored (${decoded.type}): ${decoded.reason}`);
      return { value: null, notes };
    case "source":
      notes.push(`${decoded.type} is stored as its source text`);
      return { value: decoded.source, notes };
    case "v8":
      return { value: convert(decoded.value, "value", options.maxElements ?? 100_000, notes, new Set()), notes };
  }
}

function convert(v: unknown, path: string, max: number, notes: string[], stack: Set<object>): Json {
  switch (typeof v) {
    case "string":
      if (v.length > max * 16) {
        notes.push(`${path}: string of ${v.length} characters left out (too large for JSON)`);
        return null;
      }
      return v;
    case "boolean":
      return v;
    case "number":
      if (Number.isFinite(v)) return Object.is(v, -0) ? 0 : v;
      notes.push(`${path}: ${v} has no JSON form (shown as string)`);
      return String(v);
    case "bigint":
      notes.push(`${path}: bigint shown as string`);
      return v.toString();
    case "undefined":
      return null;
    case "object":
      break;
    default:
      notes.push(`${path}: ${typeof v} left out`);
      return null;
  }
  if (v === null) return null;
  const o = v as object;
  if (stack.has(o)) {
    notes.push(`${path}: circular reference shown as "[Circular]"`);
    return "[Circular]";
  }
  if (o instanceof Date) return Number.isNaN(o.getTime()) ? null : o.toISOString();
  if (o instanceof RegExp) return o.toString();
  if (o instanceof ArrayBuffer) return convertView(new Uint8Array(o), `${path} (ArrayBuffer as bytes)`, max, notes);
  if (ArrayBuffer.isView(o)) {
    const view = o instanceof DataView ? new Uint8Array(o.buffer, o.byteOffset, o.byteLength) : o;
    return convertView(view as unknown as ArrayLike<number | bigint>, path, max, notes, describeType(o));
  }
  stack.add(o);
  try {
    if (Array.isArray(o)) {
      if (o.length > max) {
        notes.push(`${path}: Array(${o.length}) left out (more than ${max} elements)`);
        return null;
      }
      return o.map((x, i) => convert(x, `${path}[${i}]`, max, notes, stack));
    }
    if (o instanceof Map) {
      const entries = [...o.entries()];
      if (entries.every(([k]) => typeof k === "string")) {
        const out: Record<string, Json> = {};
        for (const [k, x] of entries) out[k as string] = convert(x, `${path}.get(${JSON.stringify(k)})`, max, notes, stack);
        return out;
      }
      notes.push(`${path}: Map with non-string keys shown as [key, value] pairs`);
      return entries.map(([k, x], i) => [convert(k, `${path}<key ${i}>`, max, notes, stack), convert(x, `${path}<value ${i}>`, max, notes, stack)]);
    }
    if (o instanceof Set) return [...o].map((x, i) => convert(x, `${path}<item ${i}>`, max, notes, stack));
    if (o instanceof Error) return { name: o.name, message: o.message };
    const out: Record<string, Json> = {};
    for (const k of Object.keys(o)) out[k] = convert((o as Record<string, unknown>)[k], `${path}.${k}`, max, notes, stack);
    return out;
  } finally {
    stack.delete(o);
  }
}

function convertView(view: ArrayLike<number | bigint>, path: string, max: number, notes: string[], type?: string): Json {
  if (view.length > max) {
    notes.push(`${path}: ${type ?? "bytes"} left out (more than ${max} elements; use \`-o FILE\` for the raw bytes)`);
    return null;
  }
  const out = new Array<Json>(view.length);
  let nonFinite = false;
  let big = false;
  for (let i = 0; i < view.length; i++) {
    const x = view[i];
    if (typeof x === "bigint") {
      big = true;
      out[i] = x.toString();
    } else if (Number.isFinite(x)) out[i] = x;
    else {
      nonFinite = true;
      out[i] = String(x);
    }
  }
  if (big) notes.push(`${path}: 64-bit integers shown as strings`);
  if (nonFinite) notes.push(`${path}: NaN/Infinity shown as strings`);
  return out;
}
