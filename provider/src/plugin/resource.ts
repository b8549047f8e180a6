// The contract between the plugin layer and the provider's resources, data sources and the provider itself.
// Hand-written and free of gRPC and generated types: resources see decoded plain values (cty.ts) and report through
// Diagnostics. The plugin layer (provider-server.ts) does all protocol work: decoding, the create/update/delete
// dispatch, default planning, Terraform's invariants, and turning thrown errors into diagnostics.
import type { CtyValue, Dynamic, ObjectValue, Unknown } from "./cty.js";
import type { AttributePath, Diagnostic, Diagnostics } from "./diagnostics.js";
import type { Schema } from "./schema.js";

/**
 * `T` where any part may still be unknown (config during validate and plan, planned values). Top-level values of
 * a wholly unknown config never reach a resource: the plugin layer skips validation of those.
 */
export type MaybeUnknown<T> = T extends null | string | number | bigint | boolean | Unknown | Dynamic
  ? T | Unknown
  : T extends readonly (infer E)[]
    ? MaybeUnknown<E>[] | Unknown
    : T extends object
      ? { [K in keyof T]: MaybeUnknown<T[K]> } | Unknown
      : T | Unknown;

/** What every call gets. */
export interface CallContext<Client> {
  /** The daemon client (or whatever ProviderDefinition.configure returned). Undefined only during validation. */
  readonly client: Client;
  /** Aborted when Terraform calls StopProvider (user interrupt). Pass it on to network calls. */
  readonly signal: AbortSignal;
  /** Add warnings and errors here. An error ends the call; state returned alongside an error is still recorded. */
  readonly diags: Diagnostics;
}

export interface ValidateRequest<Model> {
  /** The configuration; computed-only attributes are null; anything may be unknown. */
  readonly config: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  readonly diags: Diagnostics;
}

export interface PlanRequest<Model, Client> extends CallContext<Client> {
  /** Refreshed prior state; null on create (and on the second plan of a replace). */
  readonly prior: Model | null;
  /** Terraform's proposal: config values, with prior values kept for null computed attributes. */
  readonly proposed: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  readonly config: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  /**
   * The plugin layer's default plan: `proposed`, with computed attributes null in config set to unknown on create,
   * write-only attributes null. Start from it.
   */
  readonly planned: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  /** Opaque bytes from the last apply or read. */
  readonly private: Uint8Array;
}

export interface PlanResult<Model> {
  /** The plan. Must keep every non-null config value; computed attributes the apply will set must be unknown. */
  readonly planned: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  /**
   * Extra paths that force replacement when their value changes (added to the schema's `requiresReplace` ones).
   * Terraform ignores them on create.
   */
  readonly requiresReplace?: readonly AttributePath[];
  /** Opaque bytes handed to the apply as `private`. */
  readonly private?: Uint8Array;
}

export interface CreateRequest<Model, Client> extends CallContext<Client> {
  /** The configuration, wholly known; write-only attribute values are only here. */
  readonly config: Model;
  /** The plan: every known value must come back unchanged; unknowns must be filled. */
  readonly planned: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  readonly private: Uint8Array;
}

export interface ReadRequest<Model, Client> extends CallContext<Client> {
  /** The state as stored (after UpgradeResourceState). */
  readonly state: Model;
  readonly private: Uint8Array;
}

export interface UpdateRequest<Model, Client> extends CallContext<Client> {
  readonly prior: Model;
  readonly config: Model;
  readonly planned: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  readonly private: Uint8Array;
}

export interface DeleteRequest<Model, Client> extends CallContext<Client> {
  readonly prior: Model;
  readonly private: Uint8Array;
}

export interface ImportRequest<Client> extends CallContext<Client> {
  /** What the user wrote after the address in `terraform import` or an `import { id = … }` block. */
  readonly id: string;
}

export interface UpgradeRequest {
  /** The schema_version recorded in state (lower than the schema's version). */
  readonly version: number;
  /** The stored state JSON, parsed; dynamic values are {"value","type"}. */
  readonly rawState: Record<string, unknown>;
}

const WITH_PRIVATE: unique symbol = Symbol("WithPrivate");

/** A state plus opaque private bytes Terraform stores with it and hands back on the next read/plan/apply. */
export interface WithPrivate<Model> {
  readonly [WITH_PRIVATE]: true;
  readonly state: Model;
  readonly private: Uint8Array;
}

/** Returns `state` with private bytes attached (from create, read, update or importState). */
export function withPrivate<Model>(state: Model, priv: Uint8Array): WithPrivate<Model> {
  return { [WITH_PRIVATE]: true, state, private: priv };
}

export function isWithPrivate(x: unknown): x is WithPrivate<unknown> {
  return typeof x === "object" && x !== null && (x as Partial<WithPrivate<unknown>>)[WITH_PRIVATE] === true;
}

/** The result of create/update/read/import: the object, or the object with private bytes (`withPrivate`). */
export type StateResult<Model> = Model | WithPrivate<Model>;

/**
 * A managed resource type, e.g. `mcko_key`. One object per type, registered in provider.ts. Methods may be async;
 * thrown errors become error diagnostics (a `DiagnosticError` keeps its summary, detail and path; anything else is
 * reported with its message and no stack; ProviderDefinition.describeError may translate daemon errors first).
 */
export interface ResourceType<Model = ObjectValue, Client = unknown> {
  /** Full type name including the provider prefix: `mcko_key`. */
  readonly typeName: string;
  readonly schema: Schema;
  /** Config checks without the daemon (Terraform validates before configuring the provider). Report via diags. */
  validate?(req: ValidateRequest<Model>): void | Promise<void>;
  /**
   * Adjust the default plan (defaults, plan-time checks such as forbidden transitions with an attribute path, extra
   * replacement paths). Without it, the default plan is used as is.
   */
  plan?(req: PlanRequest<Model, Client>): PlanResult<Model> | Promise<PlanResult<Model>>;
  /** Create the object and return the full new state (no unknowns; planned known values unchanged). */
  create(req: CreateRequest<Model, Client>): Promise<StateResult<Model>>;
  /** Return the object as it is now, or null when it no longer exists (Terraform then plans a create). */
  read(req: ReadRequest<Model, Client>): Promise<StateResult<Model> | null>;
  /** Apply an in-place change and return the full new state. */
  update(req: UpdateRequest<Model, Client>): Promise<StateResult<Model>>;
  /** Delete the object. Already gone counts as success. */
  delete(req: DeleteRequest<Model, Client>): Promise<void>;
  /** Build a state from an id (missing attributes may be null); Terraform calls `read` next. Absent: import unsupported. */
  importState?(req: ImportRequest<Client>): Promise<StateResult<Model>>;
  /** Turn state of an older schema version into the current shape (as raw JSON values). Absent: fields are kept. */
  upgradeState?(req: UpgradeRequest): Record<string, unknown>;
}

export interface DataSourceReadRequest<Model, Client> extends CallContext<Client> {
  /** The configuration, wholly known (Terraform defers the read to apply otherwise); computed attributes null. */
  readonly config: Model;
}

/** A data source, e.g. `mcko_key`. */
export interface DataSourceType<Model = ObjectValue, Client = unknown> {
  readonly typeName: string;
  readonly schema: Schema;
  validate?(req: ValidateRequest<Model>): void | Promise<void>;
  /** Return the full state: config values kept, computed attributes filled, no unknowns. */
  read(req: DataSourceReadRequest<Model, Client>): Promise<Model>;
}

export interface ConfigureRequest<Model> {
  /** The provider block; may contain unknowns when it depends on resources not yet created. */
  readonly config: { [K in keyof Model]: MaybeUnknown<Model[K]> };
  /** e.g. "1.11.4". */
  readonly terraformVersion: string;
  readonly diags: Diagnostics;
  readonly signal: AbortSignal;
}

/** The provider: its config schema, how to configure it, and its registry of resources and data sources. */
export interface ProviderDefinition<Client = unknown, Config = ObjectValue> {
  /** The provider's local name: `mcko`. Resource type names start with `<typeName>_`. */
  readonly typeName: string;
  /** Provider version reported in logs and the generated schema JSON. */
  readonly version: string;
  readonly schema: Schema;
  validate?(req: ValidateRequest<Config>): void | Promise<void>;
  /** Build the client every resource call receives. Return undefined after adding an error diagnostic. */
  configure(req: ConfigureRequest<Config>): Promise<Client | undefined>;
  readonly resources: readonly ResourceType<ObjectValue, Client>[];
  readonly dataSources: readonly DataSourceType<ObjectValue, Client>[];
  /**
   * Translate an error a resource threw into diagnostics (e.g. daemon status details → attribute paths). Return
   * undefined to fall back to the generic mapping.
   */
  describeError?(err: unknown): Diagnostic[] | undefined;
}

/** Registers a typed resource in a provider's list (the model type is a compile-time view of the decoded object). */
export function defineResource<Model, Client>(r: ResourceType<Model, Client>): ResourceType<ObjectValue, Client> {
  return r as unknown as ResourceType<ObjectValue, Client>;
}

/** Registers a typed data source in a provider's list. */
export function defineDataSource<Model, Client>(d: DataSourceType<Model, Client>): DataSourceType<ObjectValue, Client> {
  return d as unknown as DataSourceType<ObjectValue, Client>;
}

/** Any value a resource may produce (re-exported for resource files). */
export type { CtyValue, ObjectValue };
