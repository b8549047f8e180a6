// The tfplugin6 Provider service: converts wire messages to plain values, dispatches to the provider definition's
// resources, and converts back. No MCKO logic here. Every RPC answers with diagnostics, never a gRPC error
// (STYLE.md §4); Terraform's invariants (TFPLUGIN.md §3.5) are enforced so that a resource bug shows up as a clear
// provider error rather than Terraform's "inconsistent result" messages.
import type { handleUnaryCall, ServerUnaryCall, sendUnaryData, UntypedServiceImplementation } from "@grpc/grpc-js";
import * as pb from "../../../protos/gen/tfplugin6/tfplugin6.js";
import { CodecError, decodeJson, decodeMsgpack, encodeMsgpack } from "./codec.js";
import { type CtyType, type CtyValue, isUnknown, isWhollyKnown, type ObjectValue, UNKNOWN, Unknown, valuesEqual } from "./cty.js";
import { type AttributePath, type Diagnostic, DiagnosticError, Diagnostics, formatPath } from "./diagnostics.js";
import { type DataSourceType, type PlanResult, type ProviderDefinition, type ResourceType, type StateResult, isWithPrivate } from "./resource.js";
import { type Block, impliedType, schemaToProto } from "./schema.js";

type Resource<C> = ResourceType<ObjectValue, C>;
type DataSource<C> = DataSourceType<ObjectValue, C>;

/** Raised inside the plugin layer to end an RPC with diagnostics. */
class Stop extends Error {
  constructor(readonly diags: Diagnostic[]) {
    super("stop");
  }
}

/**
 * The Provider service implementation. Methods take and return ts-proto messages, so tests can also call them
 * directly; `toGrpcHandlers()` adapts them to grpc-js.
 */
export class ProviderServer<Client> {
  private client: Client | undefined;
  private configured = false;
  private readonly inflight = new Set<AbortController>();
  private readonly resources = new Map<string, { r: Resource<Client>; type: CtyType }>();
  private readonly dataSources = new Map<string, { d: DataSource<Client>; type: CtyType }>();
  private readonly providerType: CtyType;
  private schemaResponse: pb.GetProviderSchema_Response | undefined;

  constructor(private readonly provider: ProviderDefinition<Client>) {
    this.providerType = impliedType(provider.schema.block);
    for (const r of provider.resources) this.resources.set(r.typeName, { r, type: impliedType(r.schema.block) });
    for (const d of provider.dataSources) this.dataSources.set(d.typeName, { d, type: impliedType(d.schema.block) });
  }

  /** Calls currently running (for tests and StopProvider). */
  get inflightCount(): number {
    return this.inflight.size;
  }

  // ------------------------------------------------------------------ schema and metadata

  async getMetadata(_req: pb.GetMetadata_Request): Promise<pb.GetMetadata_Response> {
    return pb.GetMetadata_Response.fromPartial({
      serverCapabilities: capabilities(),
      resources: [...this.resources.keys()].map((typeName) => ({ typeName })),
      dataSources: [...this.dataSources.keys()].map((typeName) => ({ typeName })),
    });
  }

  /** The schemas are fixed for the life of the process: converted once, on first request. */
  async getProviderSchema(_req: pb.GetProviderSchema_Request): Promise<pb.GetProviderSchema_Response> {
    this.schemaResponse ??= {
      provider: schemaToProto(this.provider.schema) as pb.Schema,
      resourceSchemas: Object.fromEntries([...this.resources].map(([n, { r }]) => [n, schemaToProto(r.schema) as pb.Schema])),
      dataSourceSchemas: Object.fromEntries([...this.dataSources].map(([n, { d }]) => [n, schemaToProto(d.schema) as pb.Schema])),
      diagnostics: [],
      providerMeta: undefined,
      serverCapabilities: capabilities(),
      functions: {},
      ephemeralResourceSchemas: {},
    };
    return this.schemaResponse;
  }

  async getResourceIdentitySchemas(_req: pb.GetResourceIdentitySchemas_Request): Promise<pb.GetResourceIdentitySchemas_Response> {
    return { identitySchemas: {}, diagnostics: [] };
  }

  async getFunctions(_req: pb.GetFunctions_Request): Promise<pb.GetFunctions_Response> {
    return { functions: {}, diagnostics: [] };
  }

  // ------------------------------------------------------------------ validation and configuration

  async validateProviderConfig(req: pb.ValidateProviderConfig_Request): Promise<pb.ValidateProviderConfig_Response> {
    const diagnostics = await this.run("validate the provider configuration", this.provider.typeName, async (diags) => {
      const config = decodeDV(this.providerType, req.config, "config");
      if (config === null || isUnknown(config) || !this.provider.validate) return;
      await this.provider.validate({ config: config as ObjectValue, diags });
    });
    return { diagnostics };
  }

  async validateResourceConfig(req: pb.ValidateResourceConfig_Request): Promise<pb.ValidateResourceConfig_Response> {
    const diagnostics = await this.run("validate", req.typeName, async (diags) => {
      const { r, type } = this.resource(req.typeName);
      const config = decodeDV(type, req.config, "config");
      if (config === null || isUnknown(config)) return;
      if (!req.clientCapabilities?.writeOnlyAttributesAllowed) {
        // A Terraform before 1.11 would store write-only values (credentials) in state: refuse them.
        for (const path of writeOnlyPaths(r.schema.block, config as ObjectValue, [])) {
          diags.error(
            "Write-only attribute not allowed",
            `${formatPath(path)} is write-only, which this Terraform version does not support (Terraform 1.11 or later is needed). It would be stored in state.`,
            path,
          );
        }
      }
      if (r.validate) await r.validate({ config: config as ObjectValue, diags });
    });
    return { diagnostics };
  }

  async validateDataResourceConfig(req: pb.ValidateDataResourceConfig_Request): Promise<pb.ValidateDataResourceConfig_Response> {
    const diagnostics = await this.run("validate", req.typeName, async (diags) => {
      const { d, type } = this.dataSource(req.typeName);
      const config = decodeDV(type, req.config, "config");
      if (config === null || isUnknown(config) || !d.validate) return;
      await d.validate({ config: config as ObjectValue, diags });
    });
    return { diagnostics };
  }

  async validateEphemeralResourceConfig(req: pb.ValidateEphemeralResourceConfig_Request): Promise<pb.ValidateEphemeralResourceConfig_Response> {
    return { diagnostics: [toProtoDiag(unknownType("ephemeral resource", req.typeName))] };
  }

  async configureProvider(req: pb.ConfigureProvider_Request): Promise<pb.ConfigureProvider_Response> {
    const diagnostics = await this.run("configure the provider", this.provider.typeName, async (diags, signal) => {
      const config = decodeDV(this.providerType, req.config, "config");
      if (config === null || isUnknown(config)) {
        diags.error(
          "Provider configuration is not known yet",
          "The provider block depends on values known only after apply. Set it from variables or constants.",
        );
        return;
      }
      const client = await this.provider.configure({ config: config as ObjectValue, terraformVersion: req.terraformVersion, diags, signal });
      if (client !== undefined && !diags.hasErrors()) {
        this.client = client;
        this.configured = true;
      }
    });
    return { diagnostics };
  }

  // ------------------------------------------------------------------ managed resources

  async upgradeResourceState(req: pb.UpgradeResourceState_Request): Promise<pb.UpgradeResourceState_Response> {
    let upgradedState: pb.DynamicValue | undefined;
    const diagnostics = await this.run("upgrade the state of", req.typeName, async () => {
      const { r, type } = this.resource(req.typeName);
      const json = req.rawState?.json;
      if (!json || json.length === 0) {
        if (req.rawState && Object.keys(req.rawState.flatmap).length > 0) {
          throw new DiagnosticError("Unsupported state format", `The stored state of ${req.typeName} is in the pre-0.12 flatmap format.`);
        }
        upgradedState = encodeDV(type, null);
        return;
      }
      let raw = JSON.parse(json.toString("utf8")) as unknown;
      if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new DiagnosticError("Invalid stored state", "The state is not a JSON object.");
      const version = Number(req.version);
      if (version > r.schema.version) {
        throw new DiagnosticError(
          "Resource state is newer than the provider",
          `The state of ${req.typeName} has schema version ${version}; this provider knows up to ${r.schema.version}. Use a newer provider.`,
        );
      }
      if (version < r.schema.version && r.upgradeState) raw = r.upgradeState({ version, rawState: raw as Record<string, unknown> });
      // Attributes no longer in the schema are dropped; new ones become null.
      const value = decodeJson(type, raw, { ignoreUnknownAttributes: true });
      upgradedState = encodeDV(type, clearWriteOnly(r.schema.block, value));
    });
    return { upgradedState, diagnostics };
  }

  async readResource(req: pb.ReadResource_Request): Promise<pb.ReadResource_Response> {
    let newState: pb.DynamicValue | undefined;
    let priv: Buffer = req.private;
    const diagnostics = await this.run("read", req.typeName, async (diags, signal) => {
      const { r, type } = this.resource(req.typeName);
      const state = decodeDV(type, req.currentState, "current_state");
      if (state === null) {
        newState = encodeDV(type, null);
        return;
      }
      // If the read fails, the prior state goes back as it came, so Terraform keeps it.
      newState = req.currentState;
      const client = this.requireClient();
      const result = await r.read({ state: state as ObjectValue, private: req.private, client, signal, diags });
      if (result === null) {
        newState = encodeDV(type, null);
        return;
      }
      const { value, priv: p } = unpack(result);
      if (p) priv = Buffer.from(p);
      checkKnown(value, req.typeName, "read");
      newState = encodeDV(type, clearWriteOnly(r.schema.block, value));
    });
    return pb.ReadResource_Response.fromPartial({ newState, diagnostics, private: priv });
  }

  async planResourceChange(req: pb.PlanResourceChange_Request): Promise<pb.PlanResourceChange_Response> {
    let plannedState: pb.DynamicValue | undefined;
    let requiresReplace: pb.AttributePath[] = [];
    let plannedPrivate: Buffer = req.priorPrivate;
    const diagnostics = await this.run("plan", req.typeName, async (diags, signal) => {
      const { r, type } = this.resource(req.typeName);
      const prior = decodeDV(type, req.priorState, "prior_state") as ObjectValue | null;
      const proposed = decodeDV(type, req.proposedNewState, "proposed_new_state");
      const config = decodeDV(type, req.config, "config");
      if (proposed === null) {
        plannedState = encodeDV(type, null); // destroy (only with plan_destroy, which we do not advertise)
        return;
      }
      if (isUnknown(proposed) || isUnknown(config)) {
        plannedState = encodeDV(type, proposed);
        return;
      }
      let planned = defaultPlan(r.schema.block, prior, proposed as ObjectValue, config as ObjectValue);
      const paths: AttributePath[] = [];
      if (r.plan) {
        const client = this.requireClient();
        const fallback = planned;
        let res: PlanResult<ObjectValue>;
        try {
          res = await r.plan({
            prior,
            proposed: proposed as ObjectValue,
            config: config as ObjectValue,
            planned,
            private: req.priorPrivate,
            client,
            signal,
            diags,
          });
        } catch (err) {
          plannedState = encodeDV(type, fallback); // with the error, Terraform's own proposal goes back
          throw err;
        }
        if (!isObj(res.planned as CtyValue)) {
          plannedState = encodeDV(type, fallback);
          throw new DiagnosticError("Provider returned no plan", `The plan of ${req.typeName} returned no object. This is always a problem with the provider.`);
        }
        planned = clearWriteOnly(r.schema.block, res.planned as ObjectValue) as ObjectValue;
        if (prior !== null) paths.push(...(res.requiresReplace ?? []));
        if (res.private) plannedPrivate = Buffer.from(res.private);
      }
      plannedState = encodeDV(type, planned);
      // Replacement paths are ignored on create; on update they name changed requiresReplace attributes of the final plan.
      if (prior !== null) paths.unshift(...replacePaths(r.schema.block, prior, planned, []));
      requiresReplace = dedupePaths(paths).map(pathToProto);
    });
    return pb.PlanResourceChange_Response.fromPartial({ plannedState, requiresReplace, plannedPrivate, diagnostics });
  }

  async applyResourceChange(req: pb.ApplyResourceChange_Request): Promise<pb.ApplyResourceChange_Response> {
    let newState: pb.DynamicValue | undefined;
    let priv: Buffer = req.plannedPrivate;
    const diagnostics = await this.run("apply", req.typeName, async (diags, signal) => {
      const { r, type } = this.resource(req.typeName);
      const prior = decodeDV(type, req.priorState, "prior_state") as ObjectValue | null;
      const planned = decodeDV(type, req.plannedState, "planned_state") as ObjectValue | null;
      const config = decodeDV(type, req.config, "config") as ObjectValue | null;
      // If anything fails, Terraform gets the prior state back: unchanged object, or null after a failed create.
      newState = encodeDV(type, prior);
      const client = this.requireClient();
      if (planned === null) {
        if (prior !== null) await r.delete({ prior, private: req.plannedPrivate, client, signal, diags });
        if (!diags.hasErrors()) newState = encodeDV(type, null);
        return;
      }
      const op = prior === null ? "create" : "update";
      const result =
        prior === null
          ? await r.create({ config: config ?? {}, planned, private: req.plannedPrivate, client, signal, diags })
          : await r.update({ prior, config: config ?? {}, planned, private: req.plannedPrivate, client, signal, diags });
      if ((result as unknown) === null || (result as unknown) === undefined) {
        const title = op === "create" ? "Missing Resource State After Create" : "Missing Resource State After Update";
        throw new DiagnosticError(title, `The ${op} of ${req.typeName} returned no state. This is always a problem with the provider.`);
      }
      const { value, priv: p } = unpack(result);
      if (p) priv = Buffer.from(p);
      const state = clearWriteOnly(r.schema.block, value) as ObjectValue;
      checkKnown(state, req.typeName, op);
      // A resource that already reported an error returns the real, partial state (e.g. a key that was created but
      // whose state step failed): it is kept so nothing is lost, and is not held to the plan.
      if (!diags.hasErrors()) checkConsistent(planned, state, [], req.typeName, diags);
      newState = encodeDV(type, state);
    });
    return pb.ApplyResourceChange_Response.fromPartial({ newState, private: priv, diagnostics });
  }

  async importResourceState(req: pb.ImportResourceState_Request): Promise<pb.ImportResourceState_Response> {
    const importedResources: pb.ImportResourceState_ImportedResource[] = [];
    const diagnostics = await this.run("import", req.typeName, async (diags, signal) => {
      const { r, type } = this.resource(req.typeName);
      if (!r.importState) throw new DiagnosticError("Resource Import Not Implemented", `${req.typeName} cannot be imported.`);
      const client = this.requireClient();
      const result = await r.importState({ id: req.id, client, signal, diags });
      if (diags.hasErrors()) return;
      const { value, priv } = unpack(result);
      checkKnown(value, req.typeName, "import");
      importedResources.push(
        pb.ImportResourceState_ImportedResource.fromPartial({
          typeName: req.typeName,
          state: encodeDV(type, clearWriteOnly(r.schema.block, value)),
          private: Buffer.from(priv ?? new Uint8Array()),
        }),
      );
    });
    return pb.ImportResourceState_Response.fromPartial({ importedResources, diagnostics });
  }

  async moveResourceState(req: pb.MoveResourceState_Request): Promise<pb.MoveResourceState_Response> {
    const d: Diagnostic = {
      severity: "error",
      summary: "Move Resource State Not Supported",
      detail: `${req.targetTypeName} cannot be moved from ${req.sourceTypeName}.`,
    };
    return pb.MoveResourceState_Response.fromPartial({ diagnostics: [toProtoDiag(d)] });
  }

  async readDataSource(req: pb.ReadDataSource_Request): Promise<pb.ReadDataSource_Response> {
    let state: pb.DynamicValue | undefined;
    const diagnostics = await this.run("read", req.typeName, async (diags, signal) => {
      const { d, type } = this.dataSource(req.typeName);
      const config = decodeDV(type, req.config, "config");
      if (config === null || !isWhollyKnown(config)) {
        throw new DiagnosticError("Data source configuration is not known", `${req.typeName} can only be read with a wholly known configuration.`);
      }
      const client = this.requireClient();
      const value = await d.read({ config: config as ObjectValue, client, signal, diags });
      if (diags.hasErrors()) return;
      checkKnown(value, req.typeName, "read");
      state = encodeDV(type, value);
    });
    return pb.ReadDataSource_Response.fromPartial({ state, diagnostics });
  }

  async generateResourceConfig(req: pb.GenerateResourceConfig_Request): Promise<pb.GenerateResourceConfig_Response> {
    const d: Diagnostic = { severity: "error", summary: "Generate Resource Config Not Supported", detail: `${req.typeName}` };
    return { config: undefined, diagnostics: [toProtoDiag(d)] };
  }

  async upgradeResourceIdentity(req: pb.UpgradeResourceIdentity_Request): Promise<pb.UpgradeResourceIdentity_Response> {
    return { upgradedIdentity: undefined, diagnostics: [toProtoDiag(unknownType("resource identity", req.typeName))] };
  }

  async openEphemeralResource(req: pb.OpenEphemeralResource_Request): Promise<pb.OpenEphemeralResource_Response> {
    return pb.OpenEphemeralResource_Response.fromPartial({ diagnostics: [toProtoDiag(unknownType("ephemeral resource", req.typeName))] });
  }

  async renewEphemeralResource(req: pb.RenewEphemeralResource_Request): Promise<pb.RenewEphemeralResource_Response> {
    return pb.RenewEphemeralResource_Response.fromPartial({ diagnostics: [toProtoDiag(unknownType("ephemeral resource", req.typeName))] });
  }

  async closeEphemeralResource(req: pb.CloseEphemeralResource_Request): Promise<pb.CloseEphemeralResource_Response> {
    return { diagnostics: [toProtoDiag(unknownType("ephemeral resource", req.typeName))] };
  }

  async callFunction(req: pb.CallFunction_Request): Promise<pb.CallFunction_Response> {
    return { result: undefined, error: { text: `function "${req.name}" is not provided by this provider` } };
  }

  /** Cancels every call in flight (their AbortSignals fire) and keeps serving. */
  async stopProvider(_req: pb.StopProvider_Request): Promise<pb.StopProvider_Response> {
    for (const ac of this.inflight) ac.abort(new Error("Terraform asked the provider to stop (StopProvider)"));
    this.inflight.clear();
    return { Error: "" };
  }

  // ------------------------------------------------------------------ plumbing

  /** The grpc-js handler map for tfplugin6.Provider. A handler never fails the call: errors become diagnostics. */
  toGrpcHandlers(): UntypedServiceImplementation {
    const h = <Req, Resp>(fn: (req: Req) => Promise<Resp>, fallback: (d: pb.Diagnostic) => Resp): handleUnaryCall<Req, Resp> =>
      (call: ServerUnaryCall<Req, Resp>, cb: sendUnaryData<Resp>) => {
        fn.call(this, call.request).then(
          (resp) => cb(null, resp),
          (err: unknown) => cb(null, fallback(toProtoDiag(internalError(err)))),
        );
      };
    const withDiags = <Resp>(f: { fromPartial(o: { diagnostics: pb.Diagnostic[] }): Resp }) => (d: pb.Diagnostic) =>
      f.fromPartial({ diagnostics: [d] });
    const impl: pb.ProviderServer = {
      getMetadata: h(this.getMetadata, withDiags(pb.GetMetadata_Response)),
      getProviderSchema: h(this.getProviderSchema, withDiags(pb.GetProviderSchema_Response)),
      validateProviderConfig: h(this.validateProviderConfig, withDiags(pb.ValidateProviderConfig_Response)),
      validateResourceConfig: h(this.validateResourceConfig, withDiags(pb.ValidateResourceConfig_Response)),
      validateDataResourceConfig: h(this.validateDataResourceConfig, withDiags(pb.ValidateDataResourceConfig_Response)),
      upgradeResourceState: h(this.upgradeResourceState, withDiags(pb.UpgradeResourceState_Response)),
      getResourceIdentitySchemas: h(this.getResourceIdentitySchemas, withDiags(pb.GetResourceIdentitySchemas_Response)),
      upgradeResourceIdentity: h(this.upgradeResourceIdentity, withDiags(pb.UpgradeResourceIdentity_Response)),
      configureProvider: h(this.configureProvider, withDiags(pb.ConfigureProvider_Response)),
      readResource: h(this.readResource, withDiags(pb.ReadResource_Response)),
      planResourceChange: h(this.planResourceChange, withDiags(pb.PlanResourceChange_Response)),
      applyResourceChange: h(this.applyResourceChange, withDiags(pb.ApplyResourceChange_Response)),
      importResourceState: h(this.importResourceState, withDiags(pb.ImportResourceState_Response)),
      moveResourceState: h(this.moveResourceState, withDiags(pb.MoveResourceState_Response)),
      readDataSource: h(this.readDataSource, withDiags(pb.ReadDataSource_Response)),
      generateResourceConfig: h(this.generateResourceConfig, withDiags(pb.GenerateResourceConfig_Response)),
      validateEphemeralResourceConfig: h(this.validateEphemeralResourceConfig, withDiags(pb.ValidateEphemeralResourceConfig_Response)),
      openEphemeralResource: h(this.openEphemeralResource, withDiags(pb.OpenEphemeralResource_Response)),
      renewEphemeralResource: h(this.renewEphemeralResource, withDiags(pb.RenewEphemeralResource_Response)),
      closeEphemeralResource: h(this.closeEphemeralResource, withDiags(pb.CloseEphemeralResource_Response)),
      getFunctions: h(this.getFunctions, withDiags(pb.GetFunctions_Response)),
      callFunction: h(this.callFunction, (d) => pb.CallFunction_Response.fromPartial({ error: { text: d.summary + (d.detail ? `: ${d.detail}` : "") } })),
      stopProvider: h(this.stopProvider, (d) => ({ Error: d.summary })),
    };
    return impl;
  }

  /** Runs one RPC body with a cancellable signal, collecting diagnostics and mapping anything thrown. */
  private async run(op: string, typeName: string, body: (diags: Diagnostics, signal: AbortSignal) => Promise<void>): Promise<pb.Diagnostic[]> {
    const diags = new Diagnostics();
    const ac = new AbortController();
    this.inflight.add(ac);
    try {
      await body(diags, ac.signal);
    } catch (err) {
      diags.add(...this.describe(err, op, typeName, ac.signal));
    } finally {
      this.inflight.delete(ac);
    }
    return diags.items.map(toProtoDiag);
  }

  private describe(err: unknown, op: string, typeName: string, signal: AbortSignal): Diagnostic[] {
    if (err instanceof Stop) return err.diags;
    if (err instanceof DiagnosticError) return [...err.diagnostics];
    if (signal.aborted) {
      return [{ severity: "error", summary: `Cancelled: ${op} ${typeName}`, detail: "Terraform interrupted the operation (StopProvider)." }];
    }
    if (err instanceof CodecError) {
      return [{ severity: "error", summary: `Provider produced a value that does not match the schema of ${typeName}`, detail: err.message }];
    }
    const mapped = this.provider.describeError?.(err);
    if (mapped && mapped.length > 0) return mapped;
    return [internalError(err, `Failed to ${op} ${typeName}`)];
  }

  private resource(typeName: string): { r: Resource<Client>; type: CtyType } {
    const e = this.resources.get(typeName);
    if (!e) throw new Stop([unknownType("resource type", typeName)]);
    return e;
  }

  private dataSource(typeName: string): { d: DataSource<Client>; type: CtyType } {
    const e = this.dataSources.get(typeName);
    if (!e) throw new Stop([unknownType("data source", typeName)]);
    return e;
  }

  private requireClient(): Client {
    if (!this.configured) {
      throw new Stop([
        {
          severity: "error",
          summary: "Provider not configured",
          detail: `The ${this.provider.typeName} provider was not configured before use (ConfigureProvider failed or was not called).`,
        },
      ]);
    }
    return this.client as Client;
  }
}

// ---------------------------------------------------------------------- conversions

/**
 * get_provider_schema_optional: the schemas are static and GetProviderSchema sets nothing up, so Terraform may use
 * the schema it already holds from this command's first provider process instead of asking every later process
 * again (TFPLUGIN.md §2.3; Terraform 1.11 honours it for the validate, plan and apply processes).
 */
function capabilities(): pb.ServerCapabilities {
  return { planDestroy: false, getProviderSchemaOptional: true, moveResourceState: false, generateResourceConfig: false };
}

function decodeDV(type: CtyType, dv: pb.DynamicValue | undefined, field: string): CtyValue {
  try {
    if (dv?.msgpack && dv.msgpack.length > 0) return decodeMsgpack(type, dv.msgpack);
    if (dv?.json && dv.json.length > 0) return decodeJson(type, dv.json.toString("utf8"));
    return null;
  } catch (err) {
    if (err instanceof CodecError) throw new DiagnosticError(`Invalid ${field} from Terraform`, err.message);
    throw err;
  }
}

function encodeDV(type: CtyType, value: CtyValue): pb.DynamicValue {
  return { msgpack: Buffer.from(encodeMsgpack(type, value)), json: Buffer.alloc(0) };
}

export function pathToProto(p: AttributePath): pb.AttributePath {
  return {
    steps: p.map((s): pb.AttributePath_Step => {
      if ("attribute" in s) return { selector: { $case: "attributeName", value: s.attribute } };
      if ("index" in s) return { selector: { $case: "elementKeyInt", value: BigInt(s.index) } };
      return { selector: { $case: "elementKeyString", value: s.key } };
    }),
  };
}

export function toProtoDiag(d: Diagnostic): pb.Diagnostic {
  return {
    severity: d.severity === "error" ? pb.Diagnostic_Severity.ERROR : pb.Diagnostic_Severity.WARNING,
    summary: d.summary,
    detail: d.detail ?? "",
    attribute: d.path && d.path.length > 0 ? pathToProto(d.path) : undefined,
  };
}

function unknownType(what: string, typeName: string): Diagnostic {
  return { severity: "error", summary: `Unknown ${what}`, detail: `This provider has no ${what} named "${typeName}".` };
}

/** Anything else thrown: its message as detail, never its stack. */
function internalError(err: unknown, summary = "Internal error in the provider"): Diagnostic {
  const detail = err instanceof Error ? err.message : String(err);
  return { severity: "error", summary, detail };
}

function unpack(r: StateResult<ObjectValue>): { value: ObjectValue; priv?: Uint8Array } {
  return isWithPrivate(r) ? { value: r.state as ObjectValue, priv: r.private } : { value: r as ObjectValue };
}

function checkKnown(v: ObjectValue, typeName: string, op: string): void {
  if (!isWhollyKnown(v)) {
    throw new DiagnosticError(
      "Provider returned invalid result object",
      `The ${op} of ${typeName} returned unknown values. This is always a problem with the provider.`,
    );
  }
}

/** Every known planned value must come back identical (Terraform's "inconsistent result after apply"). */
function checkConsistent(planned: CtyValue, actual: CtyValue, path: (string | number)[], typeName: string, diags: Diagnostics): void {
  if (isUnknown(planned)) return;
  if (isObj(planned) && isObj(actual)) {
    for (const k of Object.keys(planned)) checkConsistent(planned[k] ?? null, actual[k] ?? null, [...path, k], typeName, diags);
    return;
  }
  if (Array.isArray(planned) && Array.isArray(actual) && planned.length === actual.length) {
    planned.forEach((p, i) => checkConsistent(p, actual[i] ?? null, [...path, i], typeName, diags));
    return;
  }
  if (!isWhollyKnown(planned)) return; // partly unknown collections: Terraform checks the rest
  if (!valuesEqual(planned, actual)) {
    const p: AttributePath = path.map((s) => (typeof s === "number" ? { index: s } : { attribute: s }));
    diags.error(
      "Provider produced inconsistent result after apply",
      `${typeName}.${formatPath(p)}: planned ${JSON.stringify(planned, bigintJson)}, but the provider returned ${JSON.stringify(actual, bigintJson)}. This is always a problem with the provider.`,
      p,
    );
  }
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

// ---------------------------------------------------------------------- default planning

/**
 * Terraform's proposal, adjusted the way the plugin framework does: on create, computed attributes left null in the
 * config become unknown (the apply will set them); write-only attributes are null.
 */
export function defaultPlan(block: Block, prior: ObjectValue | null, proposed: ObjectValue, config: ObjectValue): ObjectValue {
  const out: ObjectValue = { ...proposed };
  for (const [name, a] of Object.entries(block.attributes)) {
    if (a.writeOnly) out[name] = null;
    else if (a.computed && (config[name] ?? null) === null && prior === null) out[name] = UNKNOWN;
  }
  for (const [name, nb] of Object.entries(block.blocks ?? {})) {
    const pv = proposed[name] ?? null;
    const cv = config[name] ?? null;
    const pr = prior === null ? null : (prior[name] ?? null);
    if (pv === null || isUnknown(pv)) continue;
    const sub = (p: CtyValue, c: CtyValue, old: CtyValue): CtyValue =>
      isObj(p) ? defaultPlan(nb.block, isObj(old) ? old : null, p, isObj(c) ? c : {}) : p;
    if (nb.nesting === "single" || nb.nesting === "group") out[name] = sub(pv, cv, pr);
    else if (Array.isArray(pv)) out[name] = pv.map((e, i) => sub(e, Array.isArray(cv) ? (cv[i] ?? null) : null, nb.nesting === "list" && Array.isArray(pr) ? (pr[i] ?? null) : null));
    else if (isObj(pv)) out[name] = Object.fromEntries(Object.entries(pv).map(([k, e]) => [k, sub(e, isObj(cv) ? (cv[k] ?? null) : null, isObj(pr) ? (pr[k] ?? null) : null)]));
  }
  return out;
}

function isObj(v: CtyValue): v is ObjectValue {
  return v !== null && typeof v === "object" && !Array.isArray(v) && !(v instanceof Unknown) && Object.getPrototypeOf(v) === Object.prototype;
}

/** Paths of `requiresReplace` attributes/blocks whose value changes (or becomes unknown) between prior and planned. */
function replacePaths(block: Block, prior: ObjectValue, planned: ObjectValue, base: AttributePath): AttributePath[] {
  const out: AttributePath[] = [];
  const changed = (k: string) => isUnknown(planned[k] ?? null) || !valuesEqual(prior[k] ?? null, planned[k] ?? null);
  for (const [name, a] of Object.entries(block.attributes)) {
    if (a.requiresReplace && changed(name)) out.push([...base, { attribute: name }]);
  }
  for (const [name, nb] of Object.entries(block.blocks ?? {})) {
    if (nb.requiresReplace && changed(name)) out.push([...base, { attribute: name }]);
    else if ((nb.nesting === "single" || nb.nesting === "group") && isObj(prior[name] ?? null) && isObj(planned[name] ?? null)) {
      out.push(...replacePaths(nb.block, prior[name] as ObjectValue, planned[name] as ObjectValue, [...base, { attribute: name }]));
    }
  }
  return out;
}

function dedupePaths(paths: AttributePath[]): AttributePath[] {
  const seen = new Set<string>();
  return paths.filter((p) => {
    const k = JSON.stringify(p);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** Paths of write-only attributes set (non-null) in a config value. */
function writeOnlyPaths(block: Block, v: ObjectValue, base: AttributePath): AttributePath[] {
  const out: AttributePath[] = [];
  for (const [name, a] of Object.entries(block.attributes)) {
    if (a.writeOnly && (v[name] ?? null) !== null) out.push([...base, { attribute: name }]);
  }
  for (const [name, nb] of Object.entries(block.blocks ?? {})) {
    const x = v[name] ?? null;
    if (Array.isArray(x)) x.forEach((e, i) => isObj(e) && out.push(...writeOnlyPaths(nb.block, e, [...base, { attribute: name }, { index: i }])));
    else if (isObj(x) && nb.nesting === "map") {
      for (const [k, e] of Object.entries(x)) if (isObj(e)) out.push(...writeOnlyPaths(nb.block, e, [...base, { attribute: name }, { key: k }]));
    } else if (isObj(x)) out.push(...writeOnlyPaths(nb.block, x, [...base, { attribute: name }]));
  }
  return out;
}

/** Write-only attributes are never stored: null them in anything returned to Terraform. */
function clearWriteOnly(block: Block, v: CtyValue): CtyValue {
  if (!isObj(v)) return v;
  const out: ObjectValue = { ...v };
  for (const [name, a] of Object.entries(block.attributes)) if (a.writeOnly) out[name] = null;
  for (const [name, nb] of Object.entries(block.blocks ?? {})) {
    const x = out[name] ?? null;
    if (Array.isArray(x)) out[name] = x.map((e) => clearWriteOnly(nb.block, e));
    else if (isObj(x)) {
      out[name] = nb.nesting === "map" ? Object.fromEntries(Object.entries(x).map(([k, e]) => [k, clearWriteOnly(nb.block, e)])) : clearWriteOnly(nb.block, x);
    }
  }
  return out;
}
