// The Key Protect emulator's admin interface: the common one (../common/admin-http.ts) plus Key Protect state,
// KCVs, out-of-band changes and the bearer tokens it accepts. In-process here; over HTTP via kpAdminRoutes().
import { randomBytes, randomUUID } from "node:crypto";
import { AdminError, commonAdminRoutes, type AdminRoute, type CommonAdmin } from "../common/admin-http.js";
import type { FaultInjector } from "../common/faults.js";
import type { BoundedLog, CallRecord } from "../common/records.js";
import { kcvOf } from "./crypto.js";
import type { KeyProtectState, KpCapturedImport, KpKey, KpKeyState } from "./state.js";

export interface KpKeyView {
  id: string;
  instance: string;
  name: string;
  /** The key's description as stored (Key Protect has no tags; clients such as MCKO keep theirs here). */
  description?: string;
  /** 0 Pre-activation, 1 Active, 2 Suspended, 3 Deactivated, 5 Destroyed. */
  state: KpKeyState;
  extractable: boolean;
  imported: boolean;
  deleted: boolean;
  creationDate: string;
  expirationDate?: string;
  deletionDate?: string;
  lastRotateDate?: string;
  aliases: string[];
  dualAuthDelete: boolean;
  setForDeletion: boolean;
  currentVersion?: string;
  /** KCV of the current version (AES enc-zero, hex), when the material is 16/24/32 bytes. */
  kcv?: string;
  /** Oldest first. */
  versions: Array<{ id: string; creationDate: string; kcv?: string }>;
}

export interface KeyProtectStateView {
  now: string;
  instances: Array<{
    id: string;
    importToken?: { creationDate: string; expirationDate: string; maxAllowedRetrievals: number; remainingRetrievals: number; publicKeyPem: string };
    keys: KpKeyView[];
  }>;
}

/** Bearer tokens the emulator accepts: token → "*" (every instance) or the instances it may use. */
export type TokenTable = Map<string, "*" | Set<string>>;

export interface KeyProtectAdmin extends CommonAdmin {
  imports(limit?: number): KpCapturedImport[];
  state(): KeyProtectStateView;
  /** Every key (of one instance when given), in creation order. */
  keys(instance?: string): KpKeyView[];
  key(id: string): KpKeyView | undefined;
  /** Current-version KCV per key id. */
  kcvs(): Record<string, string>;
  kcv(keyId: string, versionId?: string): string | undefined;
  /** The raw material of a version (the current one by default), to prove what the emulator holds. */
  material(keyId: string, versionId?: string): Buffer;
  // Out-of-band changes, as if someone used the console behind MCKO's back.
  setKeyState(id: string, state: KpKeyState): void;
  disableKey(id: string): void;
  enableKey(id: string): void;
  /** State 5 (Destroyed), as DELETE does. */
  deleteKey(id: string): void;
  /** Removes the key entirely (later calls answer 404). */
  purgeKey(id: string): void;
  /** Replaces the current version's material (must stay 16/24/32 bytes for root keys). */
  replaceMaterial(id: string, material: Buffer): void;
  /** Adds a version (random material unless given); returns its id. */
  rotateKey(id: string, material?: Buffer): string;
  setName(id: string, name: string): void;
  setAliases(id: string, aliases: string[]): void;
  setDualAuth(id: string, enabled: boolean): void;
  expireImportToken(instance: string): void;
  /** Accept a bearer token, for every instance or only the given ones. */
  addToken(token: string, instances?: string[]): void;
  revokeToken(token: string): void;
}

function findKey(state: KeyProtectState, id: string): KpKey {
  for (const inst of state.instances.values()) {
    const k = inst.keys.get(id);
    if (k) return k;
  }
  throw new AdminError(404, `no key ${id}`);
}

function keyView(state: KeyProtectState, k: KpKey): KpKeyView {
  state.key(k.instance, k.id, "Key could not be retrieved");
  const current = k.versions.at(-1);
  const v: KpKeyView = {
    id: k.id, instance: k.instance, name: k.name, state: k.state, extractable: k.extractable, imported: k.imported,
    deleted: k.state === 5, creationDate: k.creationDate.toISOString(), aliases: [...k.aliases], dualAuthDelete: k.dualAuthDelete,
    setForDeletion: k.setForDeletion,
    versions: k.versions.map((ver) => {
      const out: { id: string; creationDate: string; kcv?: string } = { id: ver.id, creationDate: ver.creationDate.toISOString() };
      const kcv = kcvOf(ver.material);
      if (kcv) out.kcv = kcv;
      return out;
    }),
  };
  if (k.description !== undefined) v.description = k.description;
  if (k.expirationDate) v.expirationDate = k.expirationDate.toISOString();
  if (k.deletionDate) v.deletionDate = k.deletionDate.toISOString();
  if (k.lastRotateDate) v.lastRotateDate = k.lastRotateDate.toISOString();
  if (current) {
    v.currentVersion = current.id;
    const kcv = kcvOf(current.material);
    if (kcv) v.kcv = kcv;
  }
  return v;
}

export function makeKeyProtectAdmin(state: KeyProtectState, faults: FaultInjector, calls: BoundedLog<CallRecord>, tokens: TokenTable): KeyProtectAdmin {
  const all = (): KpKey[] => [...state.instances.values()].flatMap((i) => [...i.keys.values()]);
  const version = (id: string, versionId?: string) => {
    const k = findKey(state, id);
    const v = versionId ? k.versions.find((x) => x.id === versionId) : k.versions.at(-1);
    if (!v) throw new AdminError(404, `no version ${versionId ?? "(current)"} of key ${id}`);
    return v;
  };
  const touch = (k: KpKey) => (k.lastUpdateDate = state.now());
  return {
    setFaults: (c) => faults.set(c),
    failNext: (f) => faults.failNext(f),
    clearFaults: () => faults.clear(),
    faults: () => faults.snapshot(),
    calls: (limit) => calls.list(limit),
    clearCalls: () => calls.clear(),
    waitForCall: (predicate) => calls.waitFor(predicate),
    imports: (limit) => state.captures.list(limit),
    advanceClock: (seconds) => state.clock.advance(seconds),
    reset: () => {
      state.reset();
      calls.clear();
      faults.clear();
    },
    state: () => ({
      now: state.now().toISOString(),
      instances: [...state.instances.values()].map((i) => {
        const out: KeyProtectStateView["instances"][number] = { id: i.id, keys: [...i.keys.values()].map((k) => keyView(state, k)) };
        if (i.token) {
          out.importToken = {
            creationDate: i.token.creationDate.toISOString(), expirationDate: i.token.expirationDate.toISOString(),
            maxAllowedRetrievals: i.token.maxAllowedRetrievals, remainingRetrievals: i.token.remainingRetrievals, publicKeyPem: i.token.publicKeyPem,
          };
        }
        return out;
      }),
    }),
    keys: (instance) => all().filter((k) => instance === undefined || k.instance === instance).map((k) => keyView(state, k)),
    key: (id) => {
      const k = all().find((x) => x.id === id);
      return k ? keyView(state, k) : undefined;
    },
    kcvs: () => {
      const out: Record<string, string> = {};
      for (const k of all()) {
        const kcv = k.versions.at(-1) ? kcvOf(k.versions.at(-1)?.material ?? Buffer.alloc(0)) : undefined;
        if (kcv) out[k.id] = kcv;
      }
      return out;
    },
    kcv: (id, versionId) => {
      try {
        return kcvOf(version(id, versionId).material);
      } catch {
        return undefined;
      }
    },
    material: (id, versionId) => Buffer.from(version(id, versionId).material),
    setKeyState: (id, s) => {
      if (![0, 1, 2, 3, 5].includes(s)) throw new AdminError(400, `state must be 0, 1, 2, 3 or 5, got ${s}`);
      const k = findKey(state, id);
      k.state = s;
      if (s === 5) k.deletionDate = state.now();
      touch(k);
    },
    disableKey: (id) => {
      const k = findKey(state, id);
      k.state = 2;
      touch(k);
    },
    enableKey: (id) => {
      const k = findKey(state, id);
      k.state = 1;
      touch(k);
    },
    deleteKey: (id) => {
      const k = findKey(state, id);
      k.state = 5;
      k.deletionDate = state.now();
      touch(k);
    },
    purgeKey: (id) => {
      const k = findKey(state, id);
      state.instances.get(k.instance)?.keys.delete(id);
    },
    replaceMaterial: (id, material) => {
      const k = findKey(state, id);
      if (!k.extractable && ![16, 24, 32].includes(material.length)) throw new AdminError(400, "root key material must be 16, 24 or 32 bytes");
      const v = k.versions.at(-1);
      if (!v) throw new AdminError(404, `key ${id} has no version`);
      v.material = Buffer.from(material);
    },
    rotateKey: (id, material) => {
      const k = findKey(state, id);
      const versionId = randomUUID();
      k.versions.push({ id: versionId, creationDate: state.now(), material: material ? Buffer.from(material) : randomBytes(32) });
      k.lastRotateDate = state.now();
      touch(k);
      return versionId;
    },
    setName: (id, name) => {
      const k = findKey(state, id);
      k.name = name;
      touch(k);
    },
    setAliases: (id, aliases) => {
      const k = findKey(state, id);
      k.aliases = [...aliases];
      touch(k);
    },
    setDualAuth: (id, enabled) => {
      const k = findKey(state, id);
      k.dualAuthDelete = enabled;
      if (!enabled) k.setForDeletion = false;
    },
    expireImportToken: (instance) => {
      const t = state.instances.get(instance)?.token;
      if (!t) throw new AdminError(404, `instance ${instance} has no import token`);
      t.expirationDate = state.now();
    },
    addToken: (token, instances) => {
      tokens.set(token, instances ? new Set(instances) : "*");
    },
    revokeToken: (token) => {
      tokens.delete(token);
    },
  };
}

const str = (v: unknown, name: string): string => {
  if (typeof v !== "string" || v === "") throw new AdminError(400, `${name} must be a non-empty string`);
  return v;
};

/**
 * HTTP routes (under /_emulator, JSON, Buffers as base64), besides the common ones:
 *   GET  /state, /kcv, /keys, /keys/{id}, /keys/{id}/material[?version=]
 *   POST /keys/{id}/{disable|enable|delete|purge};  PUT /keys/{id}/state {state};  POST /keys/{id}/material {material}
 *   POST /keys/{id}/rotate {material?};  PUT /keys/{id}/name {name};  PUT /keys/{id}/aliases {aliases}
 *   PUT  /keys/{id}/dual-auth {enabled};  POST /instances/{id}/import-token/expire
 *   PUT  /tokens/{token} {instances?};  DELETE /tokens/{token}
 */
export function kpAdminRoutes(admin: KeyProtectAdmin): AdminRoute[] {
  const p = (params: string[]) => params[0] ?? "";
  return [
    ...commonAdminRoutes(admin),
    { method: "GET", path: /^\/state$/, handler: () => admin.state() },
    { method: "GET", path: /^\/kcv$/, handler: () => admin.kcvs() },
    { method: "GET", path: /^\/keys$/, handler: ({ query }) => admin.keys(query.get("instance") ?? undefined) },
    { method: "GET", path: /^\/keys\/([^/]+)\/material$/, handler: ({ params, query }) => admin.material(p(params), query.get("version") ?? undefined) },
    {
      method: "GET",
      path: /^\/keys\/([^/]+)$/,
      handler: ({ params }) => {
        const k = admin.key(p(params));
        if (!k) throw new AdminError(404, `no key ${p(params)}`);
        return k;
      },
    },
    { method: "POST", path: /^\/keys\/([^/]+)\/disable$/, handler: ({ params }) => admin.disableKey(p(params)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/enable$/, handler: ({ params }) => admin.enableKey(p(params)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/delete$/, handler: ({ params }) => admin.deleteKey(p(params)) },
    { method: "POST", path: /^\/keys\/([^/]+)\/purge$/, handler: ({ params }) => admin.purgeKey(p(params)) },
    { method: "PUT", path: /^\/keys\/([^/]+)\/state$/, handler: ({ params, body }) => admin.setKeyState(p(params), Number(body["state"]) as KpKeyState) },
    {
      method: "POST",
      path: /^\/keys\/([^/]+)\/material$/,
      handler: ({ params, body }) => admin.replaceMaterial(p(params), Buffer.from(str(body["material"], "material"), "base64")),
    },
    {
      method: "POST",
      path: /^\/keys\/([^/]+)\/rotate$/,
      handler: ({ params, body }) => ({
        versionId: admin.rotateKey(p(params), typeof body["material"] === "string" ? Buffer.from(body["material"], "base64") : undefined),
      }),
    },
    { method: "PUT", path: /^\/keys\/([^/]+)\/name$/, handler: ({ params, body }) => admin.setName(p(params), str(body["name"], "name")) },
    {
      method: "PUT",
      path: /^\/keys\/([^/]+)\/aliases$/,
      handler: ({ params, body }) => admin.setAliases(p(params), Array.isArray(body["aliases"]) ? body["aliases"].map(String) : []),
    },
    { method: "PUT", path: /^\/keys\/([^/]+)\/dual-auth$/, handler: ({ params, body }) => admin.setDualAuth(p(params), body["enabled"] === true) },
    { method: "POST", path: /^\/instances\/([^/]+)\/import-token\/expire$/, handler: ({ params }) => admin.expireImportToken(p(params)) },
    {
      method: "PUT",
      path: /^\/tokens\/([^/]+)$/,
      handler: ({ params, body }) => admin.addToken(p(params), Array.isArray(body["instances"]) ? body["instances"].map(String) : undefined),
    },
    { method: "DELETE", path: /^\/tokens\/([^/]+)$/, handler: ({ params }) => admin.revokeToken(p(params)) },
  ];
}
