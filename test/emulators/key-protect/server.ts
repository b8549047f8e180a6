// Serves the Key Protect REST API (/api/v2) on loopback, plain HTTP by default or HTTPS with a per-run CA, with
// bearer-token and bluemix-instance checks, fault injection and the admin HTTP API on a second port.
import { randomUUID } from "node:crypto";
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { startAdminServer } from "../common/admin-http.js";
import { makeTlsMaterial, type TlsMaterial } from "../common/certs.js";
import { FaultInjector } from "../common/faults.js";
import { BodyTooLargeError, closeServer, delay, listen, readBody, sendJson } from "../common/http.js";
import { BoundedLog, type CallRecord } from "../common/records.js";
import { kpAdminRoutes, makeKeyProtectAdmin, type KeyProtectAdmin, type TokenTable } from "./admin.js";
import {
  badBody, forbidden, KpError, methodNotAllowed, missingInstance, routeNotFound, throttled, unauthorized, unavailable,
} from "./errors.js";
import { KeyProtectState, type KpResult } from "./state.js";

export const DEFAULT_TOKEN = "mcko-emulator-token";
export const DEFAULT_INSTANCE = "00000000-0000-4000-8000-00000000a001";

export interface KeyProtectEmulatorOptions {
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Port of the REST endpoint; 0 (default) = any free port. */
  port?: number;
  /** Port of the admin HTTP interface; 0 (default) = any free port. */
  adminPort?: number;
  /** Known instance GUIDs; others get 403. Absent = any instance id, created on first use. */
  instances?: string[];
  /** Bearer tokens accepted for every instance; default [DEFAULT_TOKEN]. */
  tokens?: string[];
  /** Bearer tokens accepted only for the listed instances (pass-through tokens scoped per instance). */
  instanceTokens?: Record<string, string[]>;
  /**
   * IBM Cloud API keys the IAM endpoint (`POST /identity/token` on the same port) exchanges for access tokens, with
   * the instances each token may use ("*" = every instance). Default none.
   */
  apiKeys?: Record<string, "*" | string[]>;
  /**
   * Serve HTTPS: true = with a certificate from a throw-away CA made now, or the given material (e.g. kept across
   * restarts); `caCertPem` in the result. Default false (plain HTTP).
   */
  tls?: boolean | TlsMaterial;
  /** Region and account in CRNs; default us-south and a fixed emulator account. */
  region?: string;
  accountId?: string;
  /** One RSA-4096 import-token key pair for all tokens (fast tests); default false = a fresh pair per token. */
  reuseWrappingKeys?: boolean;
  /** Enforce Key Protect's one rotation per root key per hour; default true. */
  rotationLimit?: boolean;
  /** How many import requests to keep for inspection; default 100. */
  captureLimit?: number;
  /** How many calls the call log keeps; default 10000. */
  callLogLimit?: number;
}

export interface KeyProtectEmulator {
  /** Service URL, e.g. "http://127.0.0.1:PORT"; the API lives under /api/v2. */
  endpoint: string;
  /** Base URL of the admin HTTP interface (routes under /_emulator). */
  adminUrl: string;
  /** The CA that signed the server certificate (tls only). */
  caCertPem?: string;
  admin: KeyProtectAdmin;
  close(): Promise<void>;
}

interface Route {
  operation: string;
  keyId?: string;
  run: (instance: string, body: Record<string, unknown> | undefined, query: URLSearchParams, prefer: string) => KpResult | Promise<KpResult>;
}

const ACTION_OPS: Readonly<Record<string, string>> = {
  enable: "EnableKey", disable: "DisableKey", rotate: "RotateKey", wrap: "WrapKey", unwrap: "UnwrapKey", rewrap: "RewrapKey",
  setKeyForDeletion: "SetKeyForDeletion", unsetKeyForDeletion: "UnsetKeyForDeletion",
};

function route(state: KeyProtectState, method: string, path: string, query: URLSearchParams): Route | KpError {
  const m = /^\/api\/v2\/(import_token|keys)(?:\/([^/]+)(?:\/(metadata|versions|actions\/([^/]+)|aliases\/([^/]+)))?)?\/?$/.exec(path);
  if (!m) return routeNotFound();
  const [, collection, rawId, sub, action, rawAlias] = m;
  const id = rawId ? decodeURIComponent(rawId) : undefined;
  if (id && rawAlias !== undefined) {
    const alias = decodeURIComponent(rawAlias);
    return method === "POST" ? { operation: "CreateKeyAlias", keyId: id, run: (i) => state.createAlias(i, id, alias) } : methodNotAllowed();
  }
  if (collection === "import_token") {
    if (id) return routeNotFound();
    if (method === "POST") return { operation: "CreateImportToken", run: (i, b) => state.createImportToken(i, b ?? {}) };
    if (method === "GET") return { operation: "GetImportToken", run: (i) => state.getImportToken(i) };
    return methodNotAllowed();
  }
  if (!id) {
    if (method === "POST") return { operation: "CreateKey", run: (i, b, _q, p) => state.createKey(i, b, p) };
    if (method === "GET") return { operation: "ListKeys", run: (i, _b, q) => state.listKeys(i, q) };
    return methodNotAllowed();
  }
  const actionName = action ?? (sub === undefined && method === "POST" ? query.get("action") ?? undefined : undefined);
  if (actionName !== undefined) {
    if (method !== "POST") return methodNotAllowed();
    const operation = ACTION_OPS[actionName];
    if (!operation) return badBody("Action could not be performed on key", `unknown action '${actionName}'`);
    return { operation, keyId: id, run: (i, b, _q, p) => state.action(i, id, actionName, b, p) };
  }
  if (sub === "metadata") return method === "GET" ? { operation: "GetKeyMetadata", keyId: id, run: (i) => state.getKey(i, id, false) } : methodNotAllowed();
  if (sub === "versions") return method === "GET" ? { operation: "ListKeyVersions", keyId: id, run: (i) => state.listVersions(i, id) } : methodNotAllowed();
  if (method === "GET") return { operation: "GetKey", keyId: id, run: (i) => state.getKey(i, id, true) };
  if (method === "DELETE") return { operation: "DeleteKey", keyId: id, run: (i, _b, _q, p) => state.deleteKey(i, id, p) };
  return methodNotAllowed();
}

export async function startKeyProtectEmulator(opts: KeyProtectEmulatorOptions = {}): Promise<KeyProtectEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const state = new KeyProtectState({
    region: opts.region ?? "us-south", accountId: opts.accountId ?? "e0a7d0c0ffee4c0ffee4c0ffee4c0f0e",
    reuseWrappingKeys: opts.reuseWrappingKeys ?? false, rotationLimit: opts.rotationLimit ?? true, captureLimit: opts.captureLimit ?? 100,
  });
  const tokens: TokenTable = new Map();
  for (const t of opts.tokens ?? [DEFAULT_TOKEN]) tokens.set(t, "*");
  for (const [t, instances] of Object.entries(opts.instanceTokens ?? {})) tokens.set(t, new Set(instances));
  const knownInstances = opts.instances ? new Set(opts.instances) : undefined;
  const faults = new FaultInjector();
  const calls = new BoundedLog<CallRecord>(opts.callLogLimit ?? 10_000);
  const admin = makeKeyProtectAdmin(state, faults, calls, tokens);
  const apiKeys = new Map(Object.entries(opts.apiKeys ?? {}));

  /** IBM IAM's API-key grant (BYOK.md §5.1): mints a bearer token this emulator accepts; IAM's error bodies. */
  const iamToken = (req: IncomingMessage, res: ServerResponse, raw: Buffer): void => {
    const form = new URLSearchParams(raw.toString("utf8"));
    const iamError = (status: number, errorCode: string, errorMessage: string) => {
      calls.append({ operation: "IamGetToken", status, error: errorCode, committed: false, time: state.now().toISOString() });
      sendJson(res, status, { errorCode, errorMessage, context: { requestId: randomUUID() } }, {}, "application/json");
    };
    if (!/application\/x-www-form-urlencoded/.test(req.headers["content-type"] ?? "")) return iamError(400, "BXNIM0109E", "Property missing or empty. Property: grant_type");
    if (form.get("grant_type") !== "urn:ibm:params:oauth:grant-type:apikey") return iamError(400, "BXNIM0109E", "Property missing or empty. Property: grant_type");
    const apiKey = form.get("apikey") ?? "";
    if (apiKey === "") return iamError(400, "BXNIM0109E", "Property missing or empty. Property: apikey");
    const grant = apiKeys.get(apiKey);
    if (!grant) return iamError(400, "BXNIM0415E", "Provided API key could not be found.");
    const token = `iam-${randomUUID()}`;
    tokens.set(token, grant === "*" ? "*" : new Set(grant));
    const now = Math.floor(state.now().getTime() / 1000);
    calls.append({ operation: "IamGetToken", status: 200, committed: true, time: state.now().toISOString() });
    sendJson(res, 200, { access_token: token, refresh_token: "not_supported", token_type: "Bearer", expires_in: 3600, expiration: now + 3600, scope: "ibm openid" }, {}, "application/json");
  };

  const send = (res: ServerResponse, result: KpResult): void => {
    if (result.status === 204 || result.body === undefined) {
      res.writeHead(result.status);
      res.end();
    } else sendJson(res, result.status, result.body, {}, "application/json");
  };

  function authorize(req: IncomingMessage): string {
    const auth = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "")?.[1];
    const grant = auth ? tokens.get(auth) : undefined;
    if (!grant) throw unauthorized();
    const instance = req.headers["bluemix-instance"];
    if (typeof instance !== "string" || instance === "") throw missingInstance();
    if (knownInstances && !knownInstances.has(instance)) throw forbidden();
    if (grant !== "*" && !grant.has(instance)) throw forbidden();
    return instance;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? "/", "http://kp");
    const method = req.method ?? "GET";
    if (url.pathname === "/identity/token" && method === "POST") return iamToken(req, res, raw);
    const r = route(state, method, url.pathname, url.searchParams);
    const operation = r instanceof KpError ? "Unknown" : r.operation;
    let target = r instanceof KpError ? undefined : r.keyId;
    const log = (rec: Omit<CallRecord, "seq" | "time" | "operation" | "target">): void => {
      const full: Omit<CallRecord, "seq"> = { operation, ...rec, time: state.now().toISOString() };
      if (target !== undefined) full.target = target;
      calls.append(full);
    };
    const fail = (e: KpError, fault?: CallRecord["fault"], committed = false): void => {
      const rec: Omit<CallRecord, "seq" | "time" | "operation" | "target"> = { status: e.status, error: e.code, committed };
      if (fault) rec.fault = fault;
      log(rec);
      sendJson(res, e.status, e.body(), {}, "application/json");
    };
    let instance: string;
    try {
      instance = authorize(req);
    } catch (e) {
      return fail(e as KpError);
    }
    if (target === undefined) target = instance;
    if (r instanceof KpError) return fail(r);

    const decision = faults.decide(operation);
    if (decision.latencyMs > 0) await delay(decision.latencyMs);
    if (decision.kind && !decision.afterCommit) {
      // A timeout never answers; closeServer destroys the socket when the emulator stops.
      if (decision.kind === "timeout") return log({ status: 0, fault: "timeout", committed: false });
      return fail(decision.kind === "throttle" ? throttled() : unavailable(), decision.kind);
    }
    let body: Record<string, unknown> | undefined;
    let result: KpResult;
    try {
      if (raw.length > 0) {
        let parsed: unknown;
        try {
          parsed = JSON.parse(raw.toString("utf8"));
        } catch {
          throw badBody("Action could not be performed on key", "the body is not valid JSON");
        }
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw badBody("Action could not be performed on key");
        body = parsed as Record<string, unknown>;
      }
      result = await r.run(instance, body, url.searchParams, String(req.headers["prefer"] ?? ""));
    } catch (e) {
      if (e instanceof KpError) return fail(e);
      // Unknown errors never leak their message (STYLE.md §12).
      return fail(new KpError(500, "Internal Server Error: The server encountered an internal error"));
    }
    if (decision.kind === "timeout") return log({ status: 0, fault: "timeout", committed: true });
    if (decision.kind) return fail(unavailable(), decision.kind, true);
    log({ status: result.status, committed: true });
    send(res, result);
  }

  const listener = (req: IncomingMessage, res: ServerResponse): void => {
    handle(req, res).catch((e: unknown) => {
      const err = e instanceof BodyTooLargeError ? new KpError(413, `Request Entity Too Large: ${e.message}`) : new KpError(500, "Internal Server Error: The server encountered an internal error");
      sendJson(res, err.status, err.body(), {}, "application/json");
    });
  };
  let caCertPem: string | undefined;
  let server: Server;
  if (opts.tls) {
    const tls = opts.tls === true ? await makeTlsMaterial({ commonName: "MCKO Key Protect emulator" }) : opts.tls;
    caCertPem = tls.caCertPem;
    server = createHttpsServer({ cert: tls.certPem, key: tls.keyPem }, listener);
  } else {
    server = createHttpServer(listener);
  }
  const port = await listen(server, opts.port ?? 0, host);
  let adminServer;
  try {
    adminServer = await startAdminServer(kpAdminRoutes(admin), opts.adminPort ?? 0, host);
  } catch (e) {
    await closeServer(server);
    throw e;
  }
  const adminClose = adminServer.close;
  const result: KeyProtectEmulator = {
    endpoint: `${opts.tls ? "https" : "http"}://${host}:${port}`,
    adminUrl: adminServer.url,
    admin,
    close: async () => {
      await Promise.all([closeServer(server), adminClose()]);
    },
  };
  if (caCertPem) result.caCertPem = caCertPem;
  return result;
}
