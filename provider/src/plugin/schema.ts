// The hand-written schema model resources declare, plus its three projections: the cty type values are encoded
// with, tfplugin6.Schema (the wire), and the `terraform providers schema -json` shape (CDKTF generator, docs test).
import { type CtyType, types, typeToJson } from "./cty.js";

export type DescriptionKind = "plain" | "markdown";

/**
 * One attribute. Exactly one of `type` and `nested` is set. At least one of required/optional/computed is true;
 * required excludes optional and computed (Terraform's InternalValidate).
 */
export interface Attribute {
  /** The cty type of the value (see `types`). */
  readonly type?: CtyType;
  /** A nested attribute object (protocol 6 nested_type) instead of a `type`. */
  readonly nested?: NestedAttributes;
  /** Shown in docs and the CDKTF bindings. Every MCKO attribute has one. */
  readonly description: string;
  readonly descriptionKind?: DescriptionKind;
  readonly required?: boolean;
  readonly optional?: boolean;
  /** Set by the provider. With optional: the user may set it, else the provider fills it. */
  readonly computed?: boolean;
  /** Masked in Terraform's UI; recorded as sensitive in state. Nothing else changes. */
  readonly sensitive?: boolean;
  /**
   * Terraform 1.11 write-only: accepted in config (and handed to create/update in `config`), never stored. The plugin
   * layer forces it to null in every plan and state it returns. Must not be computed.
   */
  readonly writeOnly?: boolean;
  readonly deprecated?: boolean;
  /**
   * Provider-side: a change of this attribute replaces the resource (the default planner adds its path to
   * requires_replace). Not sent to Terraform.
   */
  readonly requiresReplace?: boolean;
}

export interface NestedAttributes {
  readonly nesting: "single" | "list" | "set" | "map";
  readonly attributes: Readonly<Record<string, Attribute>>;
}

/** A block: attributes plus nested block types. Names must match ^[a-z0-9_]+$ and not clash. */
export interface Block {
  readonly attributes: Readonly<Record<string, Attribute>>;
  readonly blocks?: Readonly<Record<string, NestedBlock>>;
  readonly description?: string;
  readonly descriptionKind?: DescriptionKind;
  readonly deprecated?: boolean;
}

/**
 * A nested block type. An absent `list`/`set` block arrives as an empty array, an absent `single` one as null, and
 * `group` is always an object.
 */
export interface NestedBlock {
  readonly nesting: "single" | "group" | "list" | "set" | "map";
  readonly block: Block;
  readonly minItems?: number;
  readonly maxItems?: number;
  /** Provider-side: a change inside this block replaces the resource. */
  readonly requiresReplace?: boolean;
}

export interface Schema {
  /** Resource schema version, written to state as schema_version; bump it with an `upgradeState`. */
  readonly version: number;
  readonly block: Block;
}

// ---------------------------------------------------------------- cty type

/** The object type a block's values have on the wire. */
export function impliedType(block: Block): CtyType {
  const attrs: Record<string, CtyType> = {};
  for (const [name, a] of Object.entries(block.attributes)) attrs[name] = attributeType(a);
  for (const [name, b] of Object.entries(block.blocks ?? {})) {
    const obj = impliedType(b.block);
    attrs[name] =
      b.nesting === "single" || b.nesting === "group"
        ? obj
        : b.nesting === "list"
          ? types.list(obj)
          : b.nesting === "set"
            ? types.set(obj)
            : types.map(obj);
  }
  return types.object(attrs);
}

export function attributeType(a: Attribute): CtyType {
  if (a.type) return a.type;
  if (!a.nested) throw new Error("attribute needs a type or nested attributes");
  const obj = types.object(Object.fromEntries(Object.entries(a.nested.attributes).map(([k, x]) => [k, attributeType(x)])));
  switch (a.nested.nesting) {
    case "single":
      return obj;
    case "list":
      return types.list(obj);
    case "set":
      return types.set(obj);
    case "map":
      return types.map(obj);
  }
}

// ---------------------------------------------------------------- validation (Terraform's InternalValidate rules)

/** Returns the problems Terraform would reject the schema for; empty when fine. */
export function validateSchema(schema: Schema, where = ""): string[] {
  return validateBlock(schema.block, where);
}

const NAME = /^[a-z0-9_]+$/;

function validateBlock(block: Block, where: string): string[] {
  const out: string[] = [];
  for (const [name, a] of Object.entries(block.attributes)) out.push(...validateAttribute(name, a, where));
  for (const [name, b] of Object.entries(block.blocks ?? {})) {
    const at = `${where}${name}`;
    if (!NAME.test(name)) out.push(`${at}: invalid name`);
    if (Object.hasOwn(block.attributes, name)) out.push(`${at}: name used by an attribute and a block`);
    const min = b.minItems ?? 0;
    const max = b.maxItems ?? 0;
    if ((b.nesting === "single" || b.nesting === "group") && (min > 1 || max > 1)) out.push(`${at}: single/group blocks take min/max 0 or 1`);
    if ((b.nesting === "map" || b.nesting === "group") && (min !== 0 || max !== 0)) out.push(`${at}: ${b.nesting} blocks take no min/max`);
    if (max !== 0 && min > max) out.push(`${at}: min_items > max_items`);
    out.push(...validateBlock(b.block, `${at}.`));
  }
  return out;
}

function validateAttribute(name: string, a: Attribute, where: string): string[] {
  const out: string[] = [];
  const at = `${where}${name}`;
  if (!NAME.test(name)) out.push(`${at}: invalid name`);
  if ((a.type === undefined) === (a.nested === undefined)) out.push(`${at}: set exactly one of type and nested`);
  if (!a.required && !a.optional && !a.computed) out.push(`${at}: one of required, optional, computed must be set`);
  if (a.required && a.optional) out.push(`${at}: required and optional`);
  if (a.required && a.computed) out.push(`${at}: required and computed`);
  if (a.writeOnly && a.computed) out.push(`${at}: write-only attributes cannot be computed`);
  if (a.writeOnly && a.sensitive === undefined) {
    // fine: Terraform does not require write-only attributes to be sensitive
  }
  if (a.nested) {
    for (const [n, x] of Object.entries(a.nested.attributes)) out.push(...validateAttribute(n, x, `${at}.`));
  }
  return out;
}

// ---------------------------------------------------------------- tfplugin6 shape (plain objects matching ts-proto's)

export interface ProtoAttribute {
  name: string;
  type: Buffer;
  nestedType?: ProtoObject | undefined;
  description: string;
  required: boolean;
  optional: boolean;
  computed: boolean;
  sensitive: boolean;
  descriptionKind: number;
  deprecated: boolean;
  writeOnly: boolean;
  deprecationMessage: string;
}
export interface ProtoObject {
  attributes: ProtoAttribute[];
  nesting: number;
  minItems: bigint;
  maxItems: bigint;
}
export interface ProtoBlock {
  version: bigint;
  attributes: ProtoAttribute[];
  blockTypes: ProtoNestedBlock[];
  description: string;
  descriptionKind: number;
  deprecated: boolean;
  deprecationMessage: string;
  computed: boolean;
}
export interface ProtoNestedBlock {
  typeName: string;
  block?: ProtoBlock | undefined;
  nesting: number;
  minItems: bigint;
  maxItems: bigint;
}
export interface ProtoSchema {
  version: bigint;
  block?: ProtoBlock | undefined;
}

const BLOCK_NESTING = { single: 1, list: 2, set: 3, map: 4, group: 5 } as const;
const OBJECT_NESTING = { single: 1, list: 2, set: 3, map: 4 } as const;
const kind = (k: DescriptionKind | undefined): number => (k === "markdown" ? 1 : 0);

export function schemaToProto(schema: Schema): ProtoSchema {
  return { version: BigInt(schema.version), block: blockToProto(schema.block) };
}

function blockToProto(b: Block): ProtoBlock {
  return {
    version: 0n,
    attributes: Object.entries(b.attributes).map(([n, a]) => attributeToProto(n, a)),
    blockTypes: Object.entries(b.blocks ?? {}).map(([n, nb]) => ({
      typeName: n,
      block: blockToProto(nb.block),
      nesting: BLOCK_NESTING[nb.nesting],
      minItems: BigInt(nb.minItems ?? 0),
      maxItems: BigInt(nb.maxItems ?? 0),
    })),
    description: b.description ?? "",
    descriptionKind: kind(b.descriptionKind),
    deprecated: b.deprecated ?? false,
    deprecationMessage: "",
    computed: false,
  };
}

function attributeToProto(name: string, a: Attribute): ProtoAttribute {
  return {
    name,
    type: a.type ? Buffer.from(JSON.stringify(typeToJson(a.type))) : Buffer.alloc(0),
    nestedType: a.nested
      ? {
          attributes: Object.entries(a.nested.attributes).map(([n, x]) => attributeToProto(n, x)),
          nesting: OBJECT_NESTING[a.nested.nesting],
          minItems: 0n,
          maxItems: 0n,
        }
      : undefined,
    description: a.description,
    required: a.required ?? false,
    optional: a.optional ?? false,
    computed: a.computed ?? false,
    sensitive: a.sensitive ?? false,
    descriptionKind: kind(a.descriptionKind),
    deprecated: a.deprecated ?? false,
    writeOnly: a.writeOnly ?? false,
    deprecationMessage: "",
  };
}

// ---------------------------------------------------------------- `terraform providers schema -json` shape

export interface JsonAttribute {
  type?: unknown;
  nested_type?: { attributes: Record<string, JsonAttribute>; nesting_mode: string };
  description?: string;
  description_kind: DescriptionKind;
  required?: true;
  optional?: true;
  computed?: true;
  sensitive?: true;
  deprecated?: true;
  write_only?: true;
}
export interface JsonBlock {
  attributes?: Record<string, JsonAttribute>;
  block_types?: Record<string, { nesting_mode: string; block: JsonBlock; min_items?: number; max_items?: number }>;
  description?: string;
  description_kind: DescriptionKind;
  deprecated?: true;
}
export interface JsonSchema {
  version: number;
  block: JsonBlock;
}

/** One schema in the jsonprovider shape (omitempty everywhere except `version`; description_kind always filled). */
export function schemaToJson(schema: Schema): JsonSchema {
  return { version: schema.version, block: blockToJson(schema.block) };
}

function blockToJson(b: Block): JsonBlock {
  const out: JsonBlock = { description_kind: b.descriptionKind ?? "plain" };
  const attrs = Object.entries(b.attributes);
  if (attrs.length > 0) out.attributes = Object.fromEntries(attrs.map(([n, a]) => [n, attributeToJson(a)]));
  const blocks = Object.entries(b.blocks ?? {});
  if (blocks.length > 0) {
    out.block_types = Object.fromEntries(
      blocks.map(([n, nb]) => [
        n,
        {
          nesting_mode: nb.nesting,
          block: blockToJson(nb.block),
          ...(nb.minItems ? { min_items: nb.minItems } : {}),
          ...(nb.maxItems ? { max_items: nb.maxItems } : {}),
        },
      ]),
    );
  }
  if (b.description) out.description = b.description;
  if (b.deprecated) out.deprecated = true;
  return out;
}

function attributeToJson(a: Attribute): JsonAttribute {
  const out: JsonAttribute = { description_kind: a.descriptionKind ?? "plain" };
  if (a.type) out.type = typeToJson(a.type);
  if (a.nested) {
    out.nested_type = {
      attributes: Object.fromEntries(Object.entries(a.nested.attributes).map(([n, x]) => [n, attributeToJson(x)])),
      nesting_mode: a.nested.nesting,
    };
  }
  if (a.description) out.description = a.description;
  if (a.required) out.required = true;
  if (a.optional) out.optional = true;
  if (a.computed) out.computed = true;
  if (a.sensitive) out.sensitive = true;
  if (a.deprecated) out.deprecated = true;
  if (a.writeOnly) out.write_only = true;
  return out;
}
