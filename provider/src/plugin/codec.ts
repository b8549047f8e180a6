// cty value codec for the two wire forms Terraform uses (TFPLUGIN.md §3.2–3.4): MessagePack (every DynamicValue
// Terraform sends, and every one we answer) and JSON (RawState in UpgradeResourceState/MoveResourceState, and the
// DynamicValue.json fallback). Driven by the schema's type: the wire carries no types except inside dynamic values.
import { Decoder, Encoder, ExtData } from "@msgpack/msgpack";
import {
  type CtyNumber,
  type CtyType,
  type CtyValue,
  Dynamic,
  inferType,
  type Refinements,
  typeFromJson,
  typeToJson,
  Unknown,
} from "./cty.js";

/** A value that does not fit its type, on either side of the wire. `path` is where, e.g. `.a[0]["k"]`. */
export class CodecError extends Error {
  override name = "CodecError";
  constructor(
    message: string,
    readonly path: string,
  ) {
    super(path ? `${path}: ${message}` : message);
  }
}

const EXT_UNKNOWN = 0;
const EXT_REFINED_UNKNOWN = 12;

// ---------------------------------------------------------------- msgpack

// One encoder and one decoder for the process: `encode()`/`decode()` build a new one (and its buffers) per call, which
// is most of their cost at the ~1,500 values a 300-resource plan converts. Both are synchronous and copy their result
// (an Encoder entered again clones itself), so sharing them is safe.
const encoder = new Encoder({ useBigInt64: true, sortKeys: true });
const plainEncoder = new Encoder({ useBigInt64: true });
const decoder = new Decoder({ useBigInt64: true });

/** Encodes `value` as cty msgpack for `type`. Objects get every attribute of the type, null where absent. */
export function encodeMsgpack(type: CtyType, value: CtyValue): Uint8Array {
  return encoder.encode(toWire(type, value, ""));
}

/** Decodes cty msgpack for `type`. Empty input means null (as Terraform's own decoder treats it). Any extension is an unknown. */
export function decodeMsgpack(type: CtyType, bytes: Uint8Array): CtyValue {
  if (bytes.length === 0) return null;
  let raw: unknown;
  try {
    raw = decoder.decode(bytes);
  } catch (err) {
    throw new CodecError(`invalid msgpack: ${(err as Error).message}`, "");
  }
  return fromWire(type, raw, "");
}

function toWire(type: CtyType, v: CtyValue, path: string): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Unknown) return encodeUnknown(v);
  if (type.kind === "dynamic") {
    const concrete = v instanceof Dynamic ? v.type : inferType(v);
    const inner = v instanceof Dynamic ? v.value : v;
    return [new TextEncoder().encode(JSON.stringify(typeToJson(concrete))), toWire(concrete, inner, path)];
  }
  if (v instanceof Dynamic) throw new CodecError(`a dynamic value cannot fill a ${type.kind} slot`, path);
  switch (type.kind) {
    case "string":
      if (typeof v !== "string") throw mismatch("string", v, path);
      return v;
    case "bool":
      if (typeof v !== "boolean") throw mismatch("bool", v, path);
      return v;
    case "number":
      return numberToWire(v, path);
    case "list":
    case "set":
      if (!Array.isArray(v)) throw mismatch(type.kind, v, path);
      return v.map((x, i) => toWire(type.element, x, `${path}[${i}]`));
    case "tuple":
      if (!Array.isArray(v) || v.length !== type.elements.length) throw mismatch(`tuple of ${type.elements.length}`, v, path);
      return v.map((x, i) => toWire(type.elements[i] as CtyType, x, `${path}[${i}]`));
    case "map":
      if (!isPlainObject(v)) throw mismatch("map", v, path);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toWire(type.element, x, `${path}[${JSON.stringify(k)}]`)]));
    case "object": {
      if (!isPlainObject(v)) throw mismatch("object", v, path);
      for (const k of Object.keys(v)) {
        if (!Object.hasOwn(type.attributes, k)) throw new CodecError(`unsupported attribute "${k}"`, path);
      }
      const out: Record<string, unknown> = {};
      for (const k in type.attributes) out[k] = toWire(type.attributes[k] as CtyType, Object.hasOwn(v, k) ? (v[k] as CtyValue) : null, `${path}.${k}`);
      return out;
    }
  }
}

function numberToWire(v: CtyValue, path: string): number | bigint | string {
  if (typeof v === "number") {
    if (Number.isNaN(v)) throw new CodecError("NaN is not a cty number", path);
    return v;
  }
  if (typeof v === "bigint") {
    // int64 range goes out as an integer, anything wider as a decimal string (go-cty reads both).
    return v >= -(2n ** 63n) && v < 2n ** 63n ? v : v.toString();
  }
  throw mismatch("number", v, path);
}

function encodeUnknown(u: Unknown): ExtData {
  const r = u.refinements;
  const entries: [number, unknown][] = [];
  if (r.nullable === false) entries.push([1, false]);
  if (r.stringPrefix !== undefined && r.stringPrefix !== "") entries.push([2, r.stringPrefix]);
  if (r.numberLower) entries.push([3, [numberToWire(r.numberLower[0], ""), r.numberLower[1]]]);
  if (r.numberUpper) entries.push([4, [numberToWire(r.numberUpper[0], ""), r.numberUpper[1]]]);
  if (r.lengthLower !== undefined) entries.push([5, r.lengthLower]);
  if (r.lengthUpper !== undefined) entries.push([6, r.lengthUpper]);
  // Unrefined: always ext 0 with one zero byte (d4 00 00), never ext 12 with an empty map.
  if (entries.length === 0) return new ExtData(EXT_UNKNOWN, new Uint8Array([0]));
  const parts: Uint8Array[] = [new Uint8Array([0x80 + entries.length])];
  for (const [k, val] of entries) {
    parts.push(new Uint8Array([k]), plainEncoder.encode(val));
  }
  return new ExtData(EXT_REFINED_UNKNOWN, Buffer.concat(parts));
}

function decodeRefinements(ext: ExtData): Refinements {
  if (ext.type !== EXT_REFINED_UNKNOWN || typeof ext.data === "function" || ext.data.length === 0) return {};
  let m: unknown;
  try {
    m = decoder.decode(ext.data);
  } catch {
    return {}; // refinements are hints; a payload we cannot read leaves a plain unknown
  }
  if (!isPlainObject(m)) return {};
  const r: { -readonly [K in keyof Refinements]: Refinements[K] } = {};
  const get = (k: number): unknown => (m as Record<string, unknown>)[String(k)];
  if (typeof get(1) === "boolean") r.nullable = get(1) as boolean;
  if (typeof get(2) === "string") r.stringPrefix = get(2) as string;
  const bound = (x: unknown): [CtyNumber, boolean] | undefined =>
    Array.isArray(x) && x.length === 2 && typeof x[1] === "boolean" ? [numberFromWire(x[0], ""), x[1]] : undefined;
  const lo = bound(get(3));
  const hi = bound(get(4));
  if (lo) r.numberLower = lo;
  if (hi) r.numberUpper = hi;
  const len = (x: unknown): number | undefined => (typeof x === "number" ? x : typeof x === "bigint" ? Number(x) : undefined);
  const l5 = len(get(5));
  const l6 = len(get(6));
  if (l5 !== undefined) r.lengthLower = l5;
  if (l6 !== undefined) r.lengthUpper = l6;
  return r;
}

function fromWire(type: CtyType, raw: unknown, path: string): CtyValue {
  if (raw === null || raw === undefined) return null;
  if (raw instanceof ExtData) return new Unknown(decodeRefinements(raw));
  switch (type.kind) {
    case "dynamic": {
      if (!Array.isArray(raw) || raw.length !== 2) throw new CodecError("a dynamic value must be [type, value]", path);
      const tj = raw[0] instanceof Uint8Array ? new TextDecoder().decode(raw[0]) : raw[0];
      if (typeof tj !== "string") throw new CodecError("a dynamic value's type must be JSON bytes", path);
      const concrete = typeFromJson(JSON.parse(tj));
      return new Dynamic(concrete, fromWire(concrete, raw[1], path));
    }
    case "string":
      if (typeof raw !== "string") throw mismatch("string", raw, path);
      return raw;
    case "bool":
      if (typeof raw !== "boolean") throw mismatch("bool", raw, path);
      return raw;
    case "number":
      return numberFromWire(raw, path);
    case "list":
    case "set":
      if (!Array.isArray(raw)) throw mismatch(type.kind, raw, path);
      return raw.map((x, i) => fromWire(type.element, x, `${path}[${i}]`));
    case "tuple":
      if (!Array.isArray(raw) || raw.length !== type.elements.length) throw mismatch(`tuple of ${type.elements.length}`, raw, path);
      return raw.map((x, i) => fromWire(type.elements[i] as CtyType, x, `${path}[${i}]`));
    case "map":
      if (!isPlainObject(raw)) throw mismatch("map", raw, path);
      return Object.fromEntries(Object.entries(raw).map(([k, x]) => [k, fromWire(type.element, x, `${path}[${JSON.stringify(k)}]`)]));
    case "object": {
      if (!isPlainObject(raw)) throw mismatch("object", raw, path);
      for (const k of Object.keys(raw)) {
        if (!Object.hasOwn(type.attributes, k)) throw new CodecError(`unsupported attribute "${k}"`, path);
      }
      const out: Record<string, CtyValue> = {};
      for (const k in type.attributes) out[k] = Object.hasOwn(raw, k) ? fromWire(type.attributes[k] as CtyType, raw[k], `${path}.${k}`) : null;
      return out;
    }
  }
}

function numberFromWire(raw: unknown, path: string): CtyNumber {
  if (typeof raw === "number") return raw;
  if (typeof raw === "bigint") return Number.isSafeInteger(Number(raw)) ? Number(raw) : raw;
  if (typeof raw === "string") return parseDecimal(raw, path);
  throw mismatch("number", raw, path);
}

/** A decimal string (go-cty's form for numbers int64/float64 cannot hold exactly). Big integers stay exact as bigint. */
function parseDecimal(s: string, path: string): CtyNumber {
  const t = s.trim();
  if (/^[-+]?\d+$/.test(t)) {
    const b = BigInt(t);
    return Number.isSafeInteger(Number(b)) ? Number(b) : b;
  }
  const n = Number(t);
  if (t === "" || Number.isNaN(n)) throw new CodecError(`"${s}" is not a number`, path);
  return n;
}

// ---------------------------------------------------------------- JSON

export interface JsonDecodeOptions {
  /** Drop object attributes the type does not have instead of failing (UpgradeResourceState of an older state). */
  readonly ignoreUnknownAttributes?: boolean;
}

/** Decodes cty JSON (a string or an already parsed value) for `type`. Missing object attributes become null. */
export function decodeJson(type: CtyType, json: string | unknown, opts: JsonDecodeOptions = {}): CtyValue {
  let raw: unknown = json;
  if (typeof json === "string") {
    try {
      raw = JSON.parse(json);
    } catch (err) {
      throw new CodecError(`invalid JSON: ${(err as Error).message}`, "");
    }
  }
  return fromJson(type, raw, "", opts);
}

/** Encodes a wholly known value as cty JSON (dynamic values as {"value","type"}). */
export function encodeJson(type: CtyType, value: CtyValue): string {
  return JSON.stringify(toJson(type, value, ""));
}

function fromJson(type: CtyType, raw: unknown, path: string, opts: JsonDecodeOptions): CtyValue {
  if (raw === null || raw === undefined) return null;
  switch (type.kind) {
    case "dynamic": {
      if (!isPlainObject(raw) || !("type" in raw)) throw new CodecError('a dynamic value must be {"value","type"}', path);
      const concrete = typeFromJson(raw["type"]);
      return new Dynamic(concrete, fromJson(concrete, raw["value"], path, opts));
    }
    case "string":
      // cty's JSON decoder accepts numbers and bools for strings (e.g. after a type change); keep that leniency.
      if (typeof raw === "number" || typeof raw === "boolean") return String(raw);
      if (typeof raw !== "string") throw mismatch("string", raw, path);
      return raw;
    case "bool":
      if (raw === "true" || raw === "false") return raw === "true";
      if (typeof raw !== "boolean") throw mismatch("bool", raw, path);
      return raw;
    case "number":
      return numberFromWire(raw, path);
    case "list":
    case "set":
      if (!Array.isArray(raw)) throw mismatch(type.kind, raw, path);
      return raw.map((x, i) => fromJson(type.element, x, `${path}[${i}]`, opts));
    case "tuple":
      if (!Array.isArray(raw) || raw.length !== type.elements.length) throw mismatch(`tuple of ${type.elements.length}`, raw, path);
      return raw.map((x, i) => fromJson(type.elements[i] as CtyType, x, `${path}[${i}]`, opts));
    case "map":
      if (!isPlainObject(raw)) throw mismatch("map", raw, path);
      return Object.fromEntries(
        Object.entries(raw).map(([k, x]) => [k, fromJson(type.element, x, `${path}[${JSON.stringify(k)}]`, opts)]),
      );
    case "object": {
      if (!isPlainObject(raw)) throw mismatch("object", raw, path);
      if (!opts.ignoreUnknownAttributes) {
        for (const k of Object.keys(raw)) {
          if (!Object.hasOwn(type.attributes, k)) throw new CodecError(`unsupported attribute "${k}"`, path);
        }
      }
      return Object.fromEntries(
        Object.entries(type.attributes).map(([k, t]) => [k, Object.hasOwn(raw, k) ? fromJson(t, raw[k], `${path}.${k}`, opts) : null]),
      );
    }
  }
}

function toJson(type: CtyType, v: CtyValue, path: string): unknown {
  if (v === null || v === undefined) return null;
  if (v instanceof Unknown) throw new CodecError("unknown values have no JSON form", path);
  if (type.kind === "dynamic") {
    const concrete = v instanceof Dynamic ? v.type : inferType(v);
    return { value: toJson(concrete, v instanceof Dynamic ? v.value : v, path), type: typeToJson(concrete) };
  }
  if (v instanceof Dynamic) throw new CodecError(`a dynamic value cannot fill a ${type.kind} slot`, path);
  switch (type.kind) {
    case "string":
    case "bool":
      return toWire(type, v, path);
    case "number": {
      const n = numberToWire(v, path);
      if (typeof n === "number" && !Number.isFinite(n)) throw new CodecError("infinity has no JSON form", path);
      return typeof n === "bigint" ? (Number.isSafeInteger(Number(n)) ? Number(n) : n.toString()) : n;
    }
    case "list":
    case "set":
      if (!Array.isArray(v)) throw mismatch(type.kind, v, path);
      return v.map((x, i) => toJson(type.element, x, `${path}[${i}]`));
    case "tuple":
      if (!Array.isArray(v) || v.length !== type.elements.length) throw mismatch(`tuple of ${type.elements.length}`, v, path);
      return v.map((x, i) => toJson(type.elements[i] as CtyType, x, `${path}[${i}]`));
    case "map":
      if (!isPlainObject(v)) throw mismatch("map", v, path);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(type.element, x, `${path}[${JSON.stringify(k)}]`)]));
    case "object":
      if (!isPlainObject(v)) throw mismatch("object", v, path);
      for (const k of Object.keys(v)) {
        if (!Object.hasOwn(type.attributes, k)) throw new CodecError(`unsupported attribute "${k}"`, path);
      }
      return Object.fromEntries(
        Object.entries(type.attributes).map(([k, t]) => [k, toJson(t, Object.hasOwn(v, k) ? (v[k] as CtyValue) : null, `${path}.${k}`)]),
      );
  }
}

// ---------------------------------------------------------------- helpers

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return (
    typeof v === "object" &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof Uint8Array) &&
    !(v instanceof Unknown) &&
    !(v instanceof Dynamic) &&
    !(v instanceof ExtData)
  );
}

function mismatch(want: string, got: unknown, path: string): CodecError {
  const what = got === null ? "null" : Array.isArray(got) ? "array" : got instanceof Uint8Array ? "bytes" : typeof got;
  return new CodecError(`${want} required, got ${what}`, path);
}
