/**
 * AWS KMS emulator: AWS JSON 1.1 over plain HTTP (`POST /`, `X-Amz-Target: TrentService.<Op>`), SigV4 checked, real
 * error shapes, fault injection, and an admin interface (in-process and over HTTP). See README.md.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { randomUUID } from "node:crypto";
import {
  AdminError,
  commonAdminRoutes,
  startAdminServer,
  type AdminRoute,
  type CommonAdmin,
} from "../common/admin-http.js";
import { FaultInjector, type FaultDecision } from "../common/faults.js";
import { closeServer, delay, keepAliveLong, listen, readBody, sendJson, BodyTooLargeError } from "../common/http.js";
import { BoundedLog, EmulatorClock, type CallRecord } from "../common/records.js";
import { KmsError } from "./errors.js";
import { KmsState, type Key } from "./kms.js";
import { checkSigV4 } from "./sigv4.js";

export const DEFAULT_ACCESS_KEY_ID = "AKIAMCKOEMULATOR0001";
export const DEFAULT_SECRET_ACCESS_KEY = "mcko-emulator-secret-access-key";

export interface AwsKmsEmulatorOptions {
  /** Port of the KMS endpoint; 0 (default) = any free port. */
  port?: number;
  /** Port of the admin HTTP interface; 0 (default) = any free port. */
  adminPort?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Known credentials, access key id → secret access key; default { AKIAMCKOEMULATOR0001: mcko-emulator-secret-access-key }. */
  accessKeys?: Record<string, string>;
  /** The region the credential scope must name; default us-east-1. */
  region?: string;
  /** Account id in ARNs; default 111122223333. */
  accountId?: string;
  /** Check the SigV4 signature value too (needs the secret); default true. */
  verifySignature?: boolean;
  /** New wrapping key pair per GetParametersForImport (real AWS behaviour, slow for RSA_4096); default false (one per spec). */
  freshWrappingKeys?: boolean;
  /** How many import requests to keep for inspection; default 100. */
  captureLimit?: number;
  /** How many calls the call log keeps; default 10000. */
  callLogLimit?: number;
}

/** A key as the admin interface shows it (full state, material KCVs). */
export interface AwsKmsKeyView {
  keyId: string;
  arn: string;
  aliases: string[];
  description: string;
  keySpec: string;
  keyUsage: string;
  origin: string;
  enabled: boolean;
  keyState: string;
  creationDate: string;
  deletionDate?: string;
  pendingWindowInDays?: number;
  tags: Record<string, string>;
  currentKeyMaterialId?: string;
  /** KCV of the current material (kcv.ts format), when the key holds it. */
  kcv?: string;
  materials: Array<{
    keyMaterialId: string;
    state: string;
    importState: "IMPORTED" | "PENDING_IMPORT";
    kcv: string;
    expirationModel?: string;
    validTo?: string;
    rotationDate?: string;
    description?: string;
  }>;
  onDemandRotations: number;
}

/** Raw material of a key, for tests that must prove what the emulator holds. */
export interface AwsKmsMaterialExport {
  keyId: string;
  keySpec: string;
  keyMaterialId: string;
  kcv: string;
  /** AES or HMAC bytes. */
  secret?: Buffer;
  /** RSA / EC private key, PKCS#8 PEM. */
  privateKeyPem?: string;
}

export interface AwsKmsAdmin extends CommonAdmin {
  /** Every key (including those pending deletion), in creation order. */
  keys(): AwsKmsKeyView[];
  /** One key by id, ARN, alias name or alias ARN; undefined when it does not exist. */
  key(ref: string): AwsKmsKeyView | undefined;
  aliases(): Array<{ aliasName: string; targetKeyId: string }>;
  /** The material the emulator holds (the current one unless keyMaterialId is given). */
  material(ref: string, keyMaterialId?: string): AwsKmsMaterialExport;
  /** Out-of-band changes, as if someone used the console behind MCKO's back. */
  disableKey(ref: string): void;
  enableKey(ref: string): void;
  /** Deletes the key and its aliases at once (no waiting period). */
  deleteKey(ref: string): void;
  /** Replaces the current material with random material of the same spec; returns the new KCV. */
  replaceMaterial(ref: string): Promise<{ keyMaterialId: string; kcv: string }>;
  /** Replaces all tags. */
  setTags(ref: string, tags: Record<string, string>): void;
  /** Creates or moves an alias. */
  setAlias(aliasName: string, targetRef: string): void;
  deleteAlias(aliasName: string): void;
}

export interface AwsKmsEmulator {
  /** e.g. "http://127.0.0.1:4566"; give it to KMSClient as `endpoint`. */
  endpoint: string;
  /** Base URL of the admin HTTP interface (routes under /_emulator). */
  adminUrl: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
  admin: AwsKmsAdmin;
  close(): Promise<void>;
}

const iso = (s: number | undefined): string | undefined => (s === undefined ? undefined : new Date(s * 1000).toISOString());

function view(state: KmsState, key: Key): AwsKmsKeyView {
  const current = key.materials.find((m) => m.state === "CURRENT");
  const v: AwsKmsKeyView = {
    keyId: key.keyId,
    arn: key.arn,
    aliases: [...state.aliases.values()].filter((a) => a.targetKeyId === key.keyId).map((a) => a.name),
    description: key.description,
    keySpec: key.keySpec,
    keyUsage: key.keyUsage,
    origin: key.origin,
    enabled: key.keyState === "Enabled",
    keyState: key.keyState,
    creationDate: iso(key.creationDate) ?? "",
    tags: Object.fromEntries(key.tags),
    materials: key.materials.map((m) => {
      const out: AwsKmsKeyView["materials"][number] = {
        keyMaterialId: m.id,
        state: m.state,
        importState: m.imported ? "IMPORTED" : "PENDING_IMPORT",
        kcv: m.kcv,
      };
      if (m.expirationModel) out.expirationModel = m.expirationModel;
      if (m.validTo !== undefined) out.validTo = iso(m.validTo) ?? "";
      if (m.rotationDate !== undefined) out.rotationDate = iso(m.rotationDate) ?? "";
      if (m.description !== undefined) out.description = m.description;
      return out;
    }),
    onDemandRotations: key.onDemandRotations,
  };
  if (key.deletionDate !== undefined) v.deletionDate = iso(key.deletionDate) ?? "";
  if (key.pendingWindowInDays !== undefined) v.pendingWindowInDays = key.pendingWindowInDays;
  if (current?.imported) {
    v.currentKeyMaterialId = current.id;
    v.kcv = current.kcv;
  }
  return v;
}

type Handler = (body: Record<string, unknown>) => unknown;

export async function startAwsKmsEmulator(opts: AwsKmsEmulatorOptions = {}): Promise<AwsKmsEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const region = opts.region ?? "us-east-1";
  const accessKeys = new Map(Object.entries(opts.accessKeys ?? { [DEFAULT_ACCESS_KEY_ID]: DEFAULT_SECRET_ACCESS_KEY }));
  const [firstKey] = accessKeys;
  const clock = new EmulatorClock();
  const faults = new FaultInjector();
  const calls = new BoundedLog<CallRecord>(opts.callLogLimit ?? 10_000);
  const state = new KmsState({
    region,
    accountId: opts.accountId ?? "111122223333",
    clock,
    freshWrappingKeys: opts.freshWrappingKeys ?? false,
    captureLimit: opts.captureLimit ?? 100,
  });
  const s = state as unknown as Record<string, Handler | undefined>;
  const operations = new Set([
    "CreateKey",
    "DescribeKey",
    "UpdateKeyDescription",
    "ListKeys",
    "ListAliases",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "GetParametersForImport",
    "ImportKeyMaterial",
    "DeleteImportedKeyMaterial",
    "RotateKeyOnDemand",
    "ListKeyRotations",
    "Encrypt",
    "Decrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "GenerateMac",
    "VerifyMac",
    "Sign",
    "Verify",
    "GetPublicKey",
    "GenerateRandom",
  ]);

  const sendKms = (res: ServerResponse, status: number, body: unknown): void =>
    sendJson(res, status, body, { "x-amzn-requestid": randomUUID() }, "application/x-amz-json-1.1");
  const sendError = (res: ServerResponse, e: KmsError): void =>
    sendKms(res, e.status, { __type: e.type, message: e.message });

  function log(rec: Omit<CallRecord, "seq" | "time">): void {
    calls.append({ ...rec, time: new Date(clock.nowMs()).toISOString() });
  }

  function applyFault(res: ServerResponse, kind: NonNullable<FaultDecision["kind"]>): void {
    if (kind === "throttle") sendError(res, new KmsError("ThrottlingException", "Rate exceeded"));
    else if (kind === "server-error") sendError(res, new KmsError("KMSInternalException", "We encountered an internal error. Please try again.", 500));
    // timeout: never answer; the socket is destroyed when the client gives up or the emulator closes.
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const targetHeader = req.headers["x-amz-target"];
    const target = typeof targetHeader === "string" ? targetHeader : "";
    const operation = target.startsWith("TrentService.") ? target.slice("TrentService.".length) : "";
    if (req.method !== "POST" || (req.url ?? "/").split("?")[0] !== "/" || !operation) {
      const e = new KmsError("UnknownOperationException", "");
      log({ operation: operation || "(none)", status: e.status, error: e.type, committed: false });
      return sendError(res, e);
    }
    let parsed: Record<string, unknown> = {};
    let keyRef: string | undefined;
    const fail = (e: KmsError, fault?: CallRecord["fault"]): void => {
      const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: e.status, error: e.type, committed: false };
      if (keyRef !== undefined) rec.target = keyRef;
      if (fault) rec.fault = fault;
      log(rec);
      sendError(res, e);
    };
    try {
      checkSigV4(
        { method: req.method, url: req.url ?? "/", rawHeaders: req.rawHeaders, body },
        { accessKeys, region, service: "kms", verifySignature: opts.verifySignature ?? true },
      );
      try {
        const json: unknown = body.length === 0 ? {} : JSON.parse(body.toString("utf8"));
        if (json === null || typeof json !== "object" || Array.isArray(json)) throw new SyntaxError("not an object");
        parsed = json as Record<string, unknown>;
      } catch {
        throw new KmsError("SerializationException", "Start of structure or map found where not expected.");
      }
      const ref = parsed["KeyId"] ?? parsed["TargetKeyId"] ?? parsed["AliasName"];
      if (typeof ref === "string") keyRef = ref;
    } catch (e) {
      return fail(e instanceof KmsError ? e : new KmsError("InternalFailure", "", 500));
    }

    const decision = faults.decide(operation);
    if (decision.latencyMs > 0) await delay(decision.latencyMs);
    if (decision.kind && !decision.afterCommit) {
      if (decision.kind === "timeout") {
        const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: 0, fault: "timeout", committed: false };
        if (keyRef !== undefined) rec.target = keyRef;
        log(rec);
        return;
      }
      return fail(
        decision.kind === "throttle"
          ? new KmsError("ThrottlingException", "Rate exceeded")
          : new KmsError("KMSInternalException", "We encountered an internal error. Please try again.", 500),
        decision.kind,
      );
    }

    const handler = operations.has(operation) ? s[operation] : undefined;
    if (!handler) {
      return fail(new KmsError("UnsupportedOperationException", `${operation} is not supported by the MCKO KMS emulator.`));
    }
    let result: unknown;
    try {
      state.sweep();
      result = await handler.call(state, parsed);
    } catch (e) {
      if (e instanceof KmsError) return fail(e);
      const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: 500, error: "KMSInternalException", committed: false };
      if (keyRef !== undefined) rec.target = keyRef;
      log(rec);
      return sendError(res, new KmsError("KMSInternalException", e instanceof Error ? e.message : String(e), 500));
    }
    const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: 200, committed: true };
    if (keyRef !== undefined) rec.target = keyRef;
    if (decision.kind) {
      rec.fault = decision.kind;
      rec.status = decision.kind === "timeout" ? 0 : 500;
      log(rec);
      return applyFault(res, decision.kind);
    }
    log(rec);
    sendKms(res, 200, result);
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof BodyTooLargeError) sendKms(res, 413, { __type: "ValidationException", message: e.message });
      else sendKms(res, 500, { __type: "KMSInternalException", message: e instanceof Error ? e.message : String(e) });
    });
  });
  keepAliveLong(server);

  const mustKey = (ref: string): Key => {
    try {
      state.sweep();
      return state.resolve(ref);
    } catch (e) {
      if (e instanceof KmsError) throw new AdminError(404, e.message);
      throw e;
    }
  };

  const admin: AwsKmsAdmin = {
    setFaults: (c) => faults.set(c),
    failNext: (f) => faults.failNext(f),
    clearFaults: () => faults.clear(),
    faults: () => faults.snapshot(),
    calls: (limit) => calls.list(limit),
    clearCalls: () => calls.clear(),
    waitForCall: (predicate) => calls.waitFor(predicate),
    imports: (limit) => state.captures.list(limit),
    advanceClock: (seconds) => {
      clock.advance(seconds);
      state.sweep();
    },
    reset: () => {
      state.reset();
      calls.clear();
      faults.clear();
      clock.reset();
    },
    keys: () => {
      state.sweep();
      return [...state.keys.values()].map((k) => view(state, k));
    },
    key: (ref) => {
      try {
        return view(state, mustKey(ref));
      } catch (e) {
        if (e instanceof AdminError && e.status === 404) return undefined;
        throw e;
      }
    },
    aliases: () => [...state.aliases.values()].map((a) => ({ aliasName: a.name, targetKeyId: a.targetKeyId })),
    material: (ref, keyMaterialId) => {
      const key = mustKey(ref);
      const m =
        keyMaterialId === undefined
          ? key.materials.find((x) => x.state === "CURRENT")
          : key.materials.find((x) => x.id === keyMaterialId);
      if (!m || !m.imported) throw new AdminError(404, `${key.arn} holds no such key material`);
      const out: AwsKmsMaterialExport = { keyId: key.keyId, keySpec: key.keySpec, keyMaterialId: m.id, kcv: m.kcv };
      if (m.secret) out.secret = Buffer.from(m.secret);
      if (m.privateKey) out.privateKeyPem = m.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
      return out;
    },
    disableKey: (ref) => {
      const key = mustKey(ref);
      key.userDisabled = true;
      state.settle(key);
    },
    enableKey: (ref) => {
      const key = mustKey(ref);
      key.userDisabled = false;
      state.settle(key);
    },
    deleteKey: (ref) => state.removeKey(mustKey(ref)),
    replaceMaterial: async (ref) => {
      const m = await state.replaceMaterial(mustKey(ref));
      return { keyMaterialId: m.id, kcv: m.kcv };
    },
    setTags: (ref, tags) => {
      const key = mustKey(ref);
      key.tags = new Map(Object.entries(tags).map(([k, v]) => [k, String(v)]));
    },
    setAlias: (aliasName, targetRef) => {
      if (!aliasName.startsWith("alias/")) throw new AdminError(400, "alias names start with alias/");
      const key = mustKey(targetRef);
      const now = clock.nowSeconds();
      const existing = state.aliases.get(aliasName);
      if (existing) {
        existing.targetKeyId = key.keyId;
        existing.lastUpdatedDate = now;
      } else {
        state.aliases.set(aliasName, { name: aliasName, targetKeyId: key.keyId, creationDate: now, lastUpdatedDate: now });
      }
    },
    deleteAlias: (aliasName) => {
      if (!state.aliases.delete(aliasName)) throw new AdminError(404, `no alias ${aliasName}`);
    },
  };

  const str = (v: unknown, name: string): string => {
    if (typeof v !== "string") throw new AdminError(400, `${name} must be a string`);
    return v;
  };
  const routes: AdminRoute[] = [
    ...commonAdminRoutes(admin),
    { method: "GET", path: /^\/keys$/, handler: () => admin.keys() },
    { method: "GET", path: /^\/aliases$/, handler: () => admin.aliases() },
    {
      method: "GET",
      path: /^\/keys\/(.+)\/material$/,
      handler: ({ params, query }) => admin.material(params[0] ?? "", query.get("keyMaterialId") ?? undefined),
    },
    { method: "POST", path: /^\/keys\/(.+)\/disable$/, handler: ({ params }) => admin.disableKey(params[0] ?? "") },
    { method: "POST", path: /^\/keys\/(.+)\/enable$/, handler: ({ params }) => admin.enableKey(params[0] ?? "") },
    { method: "POST", path: /^\/keys\/(.+)\/replace-material$/, handler: ({ params }) => admin.replaceMaterial(params[0] ?? "") },
    {
      method: "PUT",
      path: /^\/keys\/(.+)\/tags$/,
      handler: ({ params, body }) => admin.setTags(params[0] ?? "", (body["tags"] ?? {}) as Record<string, string>),
    },
    {
      method: "GET",
      path: /^\/keys\/(.+)$/,
      handler: ({ params }) => {
        const k = admin.key(params[0] ?? "");
        if (!k) throw new AdminError(404, `no key ${params[0] ?? ""}`);
        return k;
      },
    },
    { method: "DELETE", path: /^\/keys\/(.+)$/, handler: ({ params }) => admin.deleteKey(params[0] ?? "") },
    {
      method: "PUT",
      path: /^\/aliases\/(.+)$/,
      handler: ({ params, body }) => admin.setAlias(params[0] ?? "", str(body["targetKeyId"], "targetKeyId")),
    },
    { method: "DELETE", path: /^\/aliases\/(.+)$/, handler: ({ params }) => admin.deleteAlias(params[0] ?? "") },
  ];

  const port = await listen(server, opts.port ?? 0, host);
  let adminServer;
  try {
    adminServer = await startAdminServer(routes, opts.adminPort ?? 0, host);
  } catch (e) {
    await closeServer(server);
    throw e;
  }
  const adminClose = adminServer.close;
  return {
    endpoint: `http://${host}:${port}`,
    adminUrl: adminServer.url,
    region,
    accessKeyId: firstKey?.[0] ?? "",
    secretAccessKey: firstKey?.[1] ?? "",
    admin,
    close: async () => {
      await Promise.all([closeServer(server), adminClose()]);
    },
  };
}
