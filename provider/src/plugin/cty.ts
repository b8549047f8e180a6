// The cty type system and the plain JS value model the plugin layer hands to resources (TFPLUGIN.md §3).
//
// Values: null is null; string, bool as JS primitives; number as `number` (or `bigint` for integers beyond 2^53);
// list, set and tuple as arrays (sets keep the order they arrived in); map and object as plain objects; a value of a
// `dynamic` attribute as a `Dynamic` (its concrete type plus the value); a value not known until apply as an `Unknown`.

/** A cty type. `dynamic` is cty's DynamicPseudoType ("any type", decided by the value). */
export type CtyType =
  | { readonly kind: "string" }
  | { readonly kind: "number" }
  | { readonly kind: "bool" }
  | { readonly kind: "dynamic" }
  | { readonly kind: "list"; readonly element: CtyType }
  | { readonly kind: "set"; readonly element: CtyType }
  | { readonly kind: "map"; readonly element: CtyType }
  | {
      readonly kind: "object";
      readonly attributes: Readonly<Record<string, CtyType>>;
      /** Optional-attribute markers (only meaningful in type constraints). */
      readonly optional?: readonly string[];
    }
  | { readonly kind: "tuple"; readonly elements: readonly CtyType[] };

/** Constructors for cty types. */
export const types = {
  string: { kind: "string" } as CtyType,
  number: { kind: "number" } as CtyType,
  bool: { kind: "bool" } as CtyType,
  dynamic: { kind: "dynamic" } as CtyType,
  list: (element: CtyType): CtyType => ({ kind: "list", element }),
  set: (element: CtyType): CtyType => ({ kind: "set", element }),
  map: (element: CtyType): CtyType => ({ kind: "map", element }),
  object: (attributes: Record<string, CtyType>, optional?: string[]): CtyType =>
    optional && optional.length > 0 ? { kind: "object", attributes, optional } : { kind: "object", attributes },
  tuple: (elements: CtyType[]): CtyType => ({ kind: "tuple", elements }),
} as const;

/** Refinements Terraform may attach to an unknown value (msgpack extension 12). All optional. */
export interface Refinements {
  /** false = definitely not null (key 1). */
  readonly nullable?: boolean;
  /** Known prefix of an unknown string (key 2). */
  readonly stringPrefix?: string;
  /** Lower / upper bound of an unknown number, with inclusiveness (keys 3, 4). */
  readonly numberLower?: readonly [CtyNumber, boolean];
  readonly numberUpper?: readonly [CtyNumber, boolean];
  /** Bounds on an unknown collection's length (keys 5, 6). */
  readonly lengthLower?: number;
  readonly lengthUpper?: number;
}

/** A value not known until apply. Compare with `isUnknown`, never by identity. */
export class Unknown {
  constructor(readonly refinements: Refinements = {}) {}
  get isRefined(): boolean {
    return Object.keys(this.refinements).length > 0;
  }
  toJSON(): string {
    return "(known after apply)";
  }
}

/** The unrefined unknown. */
export const UNKNOWN: Unknown = new Unknown();

export function isUnknown(v: unknown): v is Unknown {
  return v instanceof Unknown;
}

/** The value of a `dynamic` attribute: its concrete type travels with it. */
export class Dynamic {
  constructor(
    readonly type: CtyType,
    readonly value: CtyValue,
  ) {}
}

export type CtyNumber = number | bigint;

/** Any decoded value. */
export type CtyValue = null | string | CtyNumber | boolean | Unknown | Dynamic | CtyValue[] | { [key: string]: CtyValue };

/** An object (block) value: one entry per attribute and nested block type. */
export type ObjectValue = { [key: string]: CtyValue };

/** True when `v` holds no unknown anywhere. */
export function isWhollyKnown(v: CtyValue): boolean {
  if (v === null || typeof v !== "object") return true;
  if (v instanceof Unknown) return false;
  if (v instanceof Dynamic) return isWhollyKnown(v.value);
  if (Array.isArray(v)) return v.every(isWhollyKnown);
  return Object.values(v).every(isWhollyKnown);
}

/** Structural equality of two values (sets compared as arrays; unknowns equal only to unknowns). */
export function valuesEqual(a: CtyValue, b: CtyValue): boolean {
  if (a === b) return true;
  if (a === null || b === null) return false;
  if (typeof a === "bigint" || typeof b === "bigint") {
    return (typeof a === "number" || typeof a === "bigint") && (typeof b === "number" || typeof b === "bigint")
      ? numbersEqual(a, b)
      : false;
  }
  if (typeof a !== "object" || typeof b !== "object") return false;
  if (a instanceof Unknown || b instanceof Unknown) return a instanceof Unknown && b instanceof Unknown;
  if (a instanceof Dynamic || b instanceof Dynamic) {
    return (
      a instanceof Dynamic &&
      b instanceof Dynamic &&
      JSON.stringify(typeToJson(a.type)) === JSON.stringify(typeToJson(b.type)) &&
      valuesEqual(a.value, b.value)
    );
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => valuesEqual(x, b[i] as CtyValue));
  }
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && valuesEqual(a[k] as CtyValue, b[k] as CtyValue));
}

function numbersEqual(a: CtyNumber, b: CtyNumber): boolean {
  if (typeof a === "bigint" && typeof b === "bigint") return a === b;
  const n = typeof a === "number" ? a : b;
  const big = typeof a === "bigint" ? a : (b as bigint);
  return Number.isInteger(n) && BigInt(n as number) === big;
}

// ---- type JSON (cty/json.go): "string", ["list","string"], ["object",{...}], ["tuple",[...]] ----

export type TypeJson = string | [string, unknown] | [string, unknown, unknown];

export function typeToJson(t: CtyType): unknown {
  switch (t.kind) {
    case "string":
    case "number":
    case "bool":
    case "dynamic":
      return t.kind;
    case "list":
    case "set":
    case "map":
      return [t.kind, typeToJson(t.element)];
    case "object": {
      const attrs = Object.fromEntries(
        Object.keys(t.attributes)
          .sort()
          .map((k) => [k, typeToJson(t.attributes[k] as CtyType)]),
      );
      return t.optional && t.optional.length > 0 ? ["object", attrs, [...t.optional].sort()] : ["object", attrs];
    }
    case "tuple":
      return ["tuple", t.elements.map(typeToJson)];
  }
}

export class CtyTypeError extends Error {
  override name = "CtyTypeError";
}

export function typeFromJson(j: unknown): CtyType {
  if (typeof j === "string") {
    if (j === "string" || j === "number" || j === "bool" || j === "dynamic") return { kind: j };
    throw new CtyTypeError(`unknown primitive type ${JSON.stringify(j)}`);
  }
  if (Array.isArray(j) && typeof j[0] === "string") {
    const [kind, arg, opt] = j as [string, unknown, unknown];
    switch (kind) {
      case "list":
      case "set":
      case "map":
        return { kind, element: typeFromJson(arg) };
      case "object": {
        if (arg === null || typeof arg !== "object" || Array.isArray(arg)) throw new CtyTypeError("object type needs an attribute map");
        const attributes = Object.fromEntries(Object.entries(arg).map(([k, v]) => [k, typeFromJson(v)]));
        const optional = Array.isArray(opt) ? opt.filter((x): x is string => typeof x === "string") : undefined;
        return types.object(attributes, optional);
      }
      case "tuple":
        if (!Array.isArray(arg)) throw new CtyTypeError("tuple type needs an element list");
        return { kind: "tuple", elements: arg.map(typeFromJson) };
    }
  }
  throw new CtyTypeError(`invalid type JSON ${JSON.stringify(j)}`);
}

/** The cty type a plain JS value has when it fills a `dynamic` slot without a `Dynamic` wrapper. */
export function inferType(v: CtyValue): CtyType {
  if (v === null || v instanceof Unknown) return types.dynamic;
  if (v instanceof Dynamic) return v.type;
  switch (typeof v) {
    case "string":
      return types.string;
    case "number":
    case "bigint":
      return types.number;
    case "boolean":
      return types.bool;
  }
  if (Array.isArray(v)) return types.tuple(v.map(inferType));
  return types.object(Object.fromEntries(Object.entries(v).map(([k, x]) => [k, inferType(x)])));
}
