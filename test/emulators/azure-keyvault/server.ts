/**
 * Azure Key Vault emulator: the keys REST API over HTTPS with its own CA, the bearer challenge @azure/keyvault-keys
 * expects, api-versions 7.0–7.6 and 2025-07-01, real error bodies, fault injection and an admin interface (in-process
 * and over plain HTTP). See README.md.
 */
import { createServer, type Server as HttpsServer } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import { AdminError, commonAdminRoutes, startAdminServer, type AdminRoute, type CommonAdmin } from "../common/admin-http.js";
import { makeTlsMaterial, type TlsMaterial } from "../common/certs.js";
import { FaultInjector } from "../common/faults.js";
import { BodyTooLargeError, closeServer, delay, keepAliveLong, listen, readBody, sendJson } from "../common/http.js";
import { BoundedLog, EmulatorClock, type CallRecord } from "../common/records.js";
import { VaultError, VaultState, type VaultKey } from "./vault.js";

export const DEFAULT_TOKEN = "mcko-emulator-token";
export const DEFAULT_TENANT = "11111111-2222-3333-4444-555555555555";

export interface AzureKeyVaultEmulatorOptions {
  /** HTTPS port of the vault; 0 (default) = any free port. */
  port?: number;
  /** Port of the plain-HTTP admin interface; 0 (default) = any free port. */
  adminPort?: number;
  /** Listen address; default 127.0.0.1. */
  host?: string;
  /** Bearer tokens the vault accepts; default ["mcko-emulator-token"]. */
  tokens?: string[];
  /** Tenant named in the challenge's authorization URL. */
  tenantId?: string;
  /** Resource named in the challenge; default "https://vault.azure.net". */
  resource?: string;
  /** Certificate material to serve; default: a fresh CA and server certificate for localhost / 127.0.0.1 / ::1. */
  tls?: TlsMaterial;
  /** Days a deleted key stays recoverable before it is purged; default 90. */
  recoverableDays?: number;
  captureLimit?: number;
  callLogLimit?: number;
}

export interface AzureKeyVersionView {
  version: string;
  kty: string;
  keyOps: string[];
  enabled: boolean;
  notBefore?: string;
  expiresOn?: string;
  created: string;
  updated: string;
  tags: Record<string, string>;
  /** AES enc-zero for oct keys; SHA-256 of the SPKI for RSA/EC (kcv.ts). */
  kcv: string;
  origin: "generated" | "byok" | "jwk";
}

export interface AzureKeyView {
  name: string;
  deleted: boolean;
  deletedDate?: string;
  scheduledPurgeDate?: string;
  latestVersion?: string;
  versions: AzureKeyVersionView[];
}

export interface AzureMaterialExport {
  name: string;
  version: string;
  kty: string;
  kcv: string;
  /** oct keys. */
  secret?: Buffer;
  /** RSA / EC keys, PKCS#8 PEM. */
  privateKeyPem?: string;
}

export interface AzureKeyVaultAdmin extends CommonAdmin {
  /** Every key, live and soft-deleted. */
  keys(): AzureKeyView[];
  key(name: string): AzureKeyView | undefined;
  /** The material of a version (latest when absent). */
  material(name: string, version?: string): AzureMaterialExport;
  /** Out-of-band changes. Without a version they apply to every version. */
  disableKey(name: string, version?: string): void;
  enableKey(name: string, version?: string): void;
  /** Removes the key at once, without soft delete (as if purged behind MCKO's back). */
  deleteKey(name: string): void;
  /** Soft-deletes the key out of band (recoverable, shows under deleted keys). */
  softDeleteKey(name: string): void;
  /** Replaces the latest version's material in place with random material of the same type. */
  replaceMaterial(name: string): Promise<{ version: string; kcv: string }>;
  /** Replaces the tags of a version (latest when absent). */
  setTags(name: string, tags: Record<string, string>, version?: string): void;
}

export interface AzureKeyVaultEmulator {
  /** e.g. "https://127.0.0.1:8443"; the vault URL for KeyClient. */
  endpoint: string;
  /** The CA certificate (PEM) that signed the server certificate; pass it as tlsOptions.ca. */
  caCertPem: string;
  adminUrl: string;
  tenantId: string;
  /** A token the vault accepts. */
  token: string;
  admin: AzureKeyVaultAdmin;
  close(): Promise<void>;
}

const API_VERSION = /^(7\.[0-6](-preview(\.\d+)?)?|2025-07-01)$/;
const iso = (s: number | undefined): string | undefined => (s === undefined ? undefined : new Date(s * 1000).toISOString());

interface Route {
  operation: string;
  name?: string;
  run: (base: string, body: Record<string, unknown>) => unknown;
  /** Status of a successful answer; default 200. */
  status?: number;
}

function route(state: VaultState, method: string, segs: string[]): Route | undefined {
  const [top, name, a, b] = segs;
  const n = segs.length;
  if (top === "keys") {
    if (n === 1 && method === "GET") return { operation: "GetKeys", run: (base) => state.GetKeys(base) };
    if (!name) return undefined;
    if (n === 3 && a === "create" && method === "POST") {
      return { operation: "CreateKey", name, run: (base, body) => state.CreateKey(base, name, body) };
    }
    if (n === 3 && a === "rotate" && method === "POST") return { operation: "RotateKey", name, run: (base) => state.RotateKey(base, name) };
    if (n === 3 && a === "versions" && method === "GET") {
      return { operation: "GetKeyVersions", name, run: (base) => state.GetKeyVersions(base, name) };
    }
    if (n <= 3 && method === "PUT" && !a) return { operation: "ImportKey", name, run: (base, body) => state.ImportKey(base, name, body) };
    if (n <= 3 && method === "GET") return { operation: "GetKey", name, run: (base) => state.GetKey(base, name, a) };
    if (n <= 3 && method === "PATCH") return { operation: "UpdateKey", name, run: (base, body) => state.UpdateKey(base, name, a, body) };
    if (n <= 2 && method === "DELETE") return { operation: "DeleteKey", name, run: (base) => state.DeleteKey(base, name) };
    const op = n === 4 ? b : n === 3 ? a : undefined;
    const version = n === 4 ? a : undefined;
    if (method === "POST" && op) {
      const crypt = { encrypt: "encrypt", decrypt: "decrypt", wrapkey: "wrapKey", unwrapkey: "unwrapKey" } as const;
      const names = { encrypt: "Encrypt", decrypt: "Decrypt", wrapkey: "WrapKey", unwrapkey: "UnwrapKey" } as const;
      const c = op.toLowerCase();
      if (c in crypt) {
        const key = c as keyof typeof crypt;
        return { operation: names[key], name, run: (base, body) => state.Crypt(base, name, version, crypt[key], body) };
      }
      if (c === "sign") return { operation: "Sign", name, run: (base, body) => state.Sign(base, name, version, body) };
      if (c === "verify") return { operation: "Verify", name, run: (_base, body) => state.Verify(name, version, body) };
    }
    return undefined;
  }
  if (top === "deletedkeys") {
    if (n === 1 && method === "GET") return { operation: "GetDeletedKeys", run: (base) => state.GetDeletedKeys(base) };
    if (!name) return undefined;
    if (n === 2 && method === "GET") return { operation: "GetDeletedKey", name, run: (base) => state.GetDeletedKey(base, name) };
    if (n === 2 && method === "DELETE") {
      return { operation: "PurgeDeletedKey", name, status: 204, run: () => state.PurgeDeletedKey(name) };
    }
    if (n === 3 && a === "recover" && method === "POST") {
      return { operation: "RecoverDeletedKey", name, run: (base) => state.RecoverDeletedKey(base, name) };
    }
  }
  return undefined;
}

function keyView(name: string, k: VaultKey, deleted?: { deletedDate: number; scheduledPurgeDate: number }): AzureKeyView {
  const v: AzureKeyView = {
    name,
    deleted: deleted !== undefined,
    versions: k.versions.map((x) => {
      const out: AzureKeyVersionView = {
        version: x.version,
        kty: x.kty,
        keyOps: [...x.keyOps],
        enabled: x.enabled,
        created: iso(x.created) ?? "",
        updated: iso(x.updated) ?? "",
        tags: { ...x.tags },
        kcv: x.kcv,
        origin: x.origin,
      };
      if (x.nbf !== undefined) out.notBefore = iso(x.nbf) ?? "";
      if (x.exp !== undefined) out.expiresOn = iso(x.exp) ?? "";
      return out;
    }),
  };
  const latest = k.versions[k.versions.length - 1];
  if (latest) v.latestVersion = latest.version;
  if (deleted) {
    v.deletedDate = iso(deleted.deletedDate) ?? "";
    v.scheduledPurgeDate = iso(deleted.scheduledPurgeDate) ?? "";
  }
  return v;
}

export async function startAzureKeyVaultEmulator(opts: AzureKeyVaultEmulatorOptions = {}): Promise<AzureKeyVaultEmulator> {
  const host = opts.host ?? "127.0.0.1";
  const tokens = new Set(opts.tokens ?? [DEFAULT_TOKEN]);
  const tenantId = opts.tenantId ?? DEFAULT_TENANT;
  const resource = opts.resource ?? "https://vault.azure.net";
  const challenge = `Bearer authorization="https://login.microsoftonline.com/${tenantId}", resource="${resource}"`;
  const tls = opts.tls ?? (await makeTlsMaterial({ commonName: "MCKO Azure Key Vault emulator" }));
  const clock = new EmulatorClock();
  const faults = new FaultInjector();
  const calls = new BoundedLog<CallRecord>(opts.callLogLimit ?? 10_000);
  const state = new VaultState({ clock, captureLimit: opts.captureLimit ?? 100, recoverableDays: opts.recoverableDays ?? 90 });

  const sendVault = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void => {
    if (status === 204) {
      res.writeHead(204, headers);
      res.end();
      return;
    }
    sendJson(res, status, body, headers);
  };
  const log = (rec: Omit<CallRecord, "seq" | "time">): void => {
    calls.append({ ...rec, time: new Date(clock.nowMs()).toISOString() });
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const raw = await readBody(req);
    const url = new URL(req.url ?? "/", "https://vault");
    const method = req.method ?? "GET";
    // "/keys/k/" (the SDK's form for "latest version") and "/keys/k" are the same resource.
    const segs = url.pathname.split("/").filter((s) => s !== "");
    const r = route(state, method, segs);
    const operation = r?.operation ?? `${method} ${url.pathname}`;
    const base = `https://${req.headers.host ?? host}`;
    const fail = (e: VaultError, extra: Partial<CallRecord> = {}): void => {
      const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: e.status, error: e.code, committed: false, ...extra };
      if (r?.name !== undefined) rec.target = r.name;
      log(rec);
      const headers: Record<string, string> = {};
      if (e.status === 401) headers["www-authenticate"] = challenge;
      if (e.status === 429) headers["retry-after"] = "0";
      sendVault(res, e.status, e.body(), headers);
    };

    const auth = req.headers.authorization;
    if (!auth) return fail(new VaultError(401, "Unauthorized", "AKV10000: Request is missing a Bearer or PoP token."));
    const m = /^Bearer (.+)$/i.exec(auth);
    if (!m || !tokens.has(m[1] ?? "")) {
      return fail(new VaultError(401, "Unauthorized", "AKV10022: Invalid token: the bearer token is not accepted by this key vault."));
    }
    const apiVersion = url.searchParams.get("api-version");
    if (apiVersion === null) return fail(new VaultError(400, "BadParameter", "The api-version query parameter (?api-version=) is required for all requests."));
    if (!API_VERSION.test(apiVersion)) {
      return fail(new VaultError(400, "BadParameter", `The specified version (${apiVersion}) is not recognized. Consider using the latest supported version (2025-07-01).`));
    }
    if (!r) return fail(new VaultError(404, "NotFound", `The requested resource ${url.pathname} was not found.`));
    let body: Record<string, unknown> = {};
    if (raw.length > 0) {
      try {
        const parsed: unknown = JSON.parse(raw.toString("utf8"));
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SyntaxError("not an object");
        body = parsed as Record<string, unknown>;
      } catch {
        return fail(new VaultError(400, "BadParameter", "The request body is not valid JSON."));
      }
    }

    const decision = faults.decide(operation);
    if (decision.latencyMs > 0) await delay(decision.latencyMs);
    if (decision.kind && !decision.afterCommit) {
      if (decision.kind === "timeout") {
        const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: 0, fault: "timeout", committed: false };
        if (r.name !== undefined) rec.target = r.name;
        log(rec);
        return;
      }
      return fail(
        decision.kind === "throttle"
          ? new VaultError(429, "Throttled", "Request was not processed because too many requests were received. Reason: VaultRequestTypeLimitReached")
          : new VaultError(500, "InternalServerError", "The service encountered an internal error. Please try again."),
        { fault: decision.kind },
      );
    }
    let result: unknown;
    try {
      state.sweep();
      result = await r.run(base, body);
    } catch (e) {
      if (e instanceof VaultError) return fail(e);
      return fail(new VaultError(500, "InternalServerError", e instanceof Error ? e.message : String(e)));
    }
    const rec: Omit<CallRecord, "seq" | "time"> = { operation, status: r.status ?? 200, committed: true };
    if (r.name !== undefined) rec.target = r.name;
    if (decision.kind) {
      rec.fault = decision.kind;
      rec.status = decision.kind === "timeout" ? 0 : 500;
      log(rec);
      if (decision.kind === "server-error") {
        sendVault(res, 500, new VaultError(500, "InternalServerError", "The service encountered an internal error. Please try again.").body());
      }
      return;
    }
    log(rec);
    sendVault(res, r.status ?? 200, result);
  }

  const server: HttpsServer = createServer({ cert: tls.certPem, key: tls.keyPem }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      const err =
        e instanceof BodyTooLargeError
          ? new VaultError(413, "BadParameter", e.message)
          : new VaultError(500, "InternalServerError", e instanceof Error ? e.message : String(e));
      sendVault(res, err.status, err.body());
    });
  });
  keepAliveLong(server);

  const live = (name: string): VaultKey => {
    const k = state.keys.get(name);
    if (!k) throw new AdminError(404, `no key ${name}`);
    return k;
  };
  const versionsOf = (name: string, version?: string): VaultKey["versions"] => {
    const k = live(name);
    if (version === undefined) return k.versions;
    const v = k.versions.find((x) => x.version === version);
    if (!v) throw new AdminError(404, `no version ${name}/${version}`);
    return [v];
  };

  const admin: AzureKeyVaultAdmin = {
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
      return [
        ...[...state.keys.entries()].map(([name, k]) => keyView(name, k)),
        ...[...state.deleted.entries()].map(([name, d]) => keyView(name, d.key, d)),
      ];
    },
    key: (name) => {
      state.sweep();
      const k = state.keys.get(name);
      if (k) return keyView(name, k);
      const d = state.deleted.get(name);
      return d ? keyView(name, d.key, d) : undefined;
    },
    material: (name, version) => {
      const [v] = version === undefined ? versionsOf(name).slice(-1) : versionsOf(name, version);
      if (!v) throw new AdminError(404, `key ${name} has no versions`);
      const out: AzureMaterialExport = { name, version: v.version, kty: v.kty, kcv: v.kcv };
      if (v.secret) out.secret = Buffer.from(v.secret);
      if (v.privateKey) out.privateKeyPem = v.privateKey.export({ format: "pem", type: "pkcs8" }).toString();
      return out;
    },
    disableKey: (name, version) => {
      for (const v of versionsOf(name, version)) {
        v.enabled = false;
        v.updated = clock.nowSeconds();
      }
    },
    enableKey: (name, version) => {
      for (const v of versionsOf(name, version)) {
        v.enabled = true;
        v.updated = clock.nowSeconds();
      }
    },
    deleteKey: (name) => {
      live(name);
      state.keys.delete(name);
    },
    softDeleteKey: (name) => {
      live(name);
      state.DeleteKey("https://emulator", name);
    },
    replaceMaterial: async (name) => {
      live(name);
      const v = await state.replaceMaterial(name);
      return { version: v.version, kcv: v.kcv };
    },
    setTags: (name, tags, version) => {
      const [v] = version === undefined ? versionsOf(name).slice(-1) : versionsOf(name, version);
      if (!v) throw new AdminError(404, `key ${name} has no versions`);
      v.tags = Object.fromEntries(Object.entries(tags).map(([k, x]) => [k, String(x)]));
      v.updated = clock.nowSeconds();
    },
  };

  const optVersion = (q: URLSearchParams): string | undefined => q.get("version") ?? undefined;
  const routes: AdminRoute[] = [
    ...commonAdminRoutes(admin),
    { method: "GET", path: /^\/keys$/, handler: () => admin.keys() },
    { method: "GET", path: /^\/keys\/([^/]+)\/material$/, handler: ({ params, query }) => admin.material(params[0] ?? "", optVersion(query)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/disable$/, handler: ({ params, query }) => admin.disableKey(params[0] ?? "", optVersion(query)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/enable$/, handler: ({ params, query }) => admin.enableKey(params[0] ?? "", optVersion(query)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/soft-delete$/, handler: ({ params }) => admin.softDeleteKey(params[0] ?? "") },
    { method: "POST", path: /^\/keys\/([^/]+)\/replace-material$/, handler: ({ params }) => admin.replaceMaterial(params[0] ?? "") },
    {
      method: "PUT",
      path: /^\/keys\/([^/]+)\/tags$/,
      handler: ({ params, query, body }) => admin.setTags(params[0] ?? "", (body["tags"] ?? {}) as Record<string, string>, optVersion(query)),
    },
    {
      method: "GET",
      path: /^\/keys\/([^/]+)$/,
      handler: ({ params }) => {
        const k = admin.key(params[0] ?? "");
        if (!k) throw new AdminError(404, `no key ${params[0] ?? ""}`);
        return k;
      },
    },
    { method: "DELETE", path: /^\/keys\/([^/]+)$/, handler: ({ params }) => admin.deleteKey(params[0] ?? "") },
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
  const [token] = tokens;
  return {
    endpoint: `https://${host.includes(":") ? `[${host}]` : host}:${port}`,
    caCertPem: tls.caCertPem,
    adminUrl: adminServer.url,
    tenantId,
    token: token ?? "",
    admin,
    close: async () => {
      await Promise.all([closeServer(server), adminClose()]);
    },
  };
}
