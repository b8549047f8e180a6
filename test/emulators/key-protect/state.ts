// Key Protect state and REST semantics (BYOK.md §5), independent of HTTP wiring: every operation takes the
// parsed request and returns the status and JSON body to send, or throws KpError.
import crypto, { randomUUID, type KeyObject } from "node:crypto";
import { BoundedLog, EmulatorClock, type CapturedImport } from "../common/records.js";
import { checkEncryptedNonce, decryptTokenPayload, kcvOf, parseCiphertext, unwrap, wrap } from "./crypto.js";
import {
  authorizationsNotMet, badBody, badCiphertext, collectionMismatch, importTokenExpired, importTokenMissing, invalidField,
  invalidState, keyDeleted, keyNotFound, noBody, nonceIvMismatch, nonceMismatch, notDualAuth, payloadRequired, rootRequired,
  rotationLimited, type Context,
} from "./errors.js";

/** NIST SP 800-57 state integers as Key Protect uses them. */
export type KpKeyState = 0 | 1 | 2 | 3 | 5;

export interface KpVersion {
  id: string;
  creationDate: Date;
  material: Buffer;
}

export interface KpKey {
  id: string;
  instance: string;
  name: string;
  description?: string;
  extractable: boolean;
  imported: boolean;
  state: KpKeyState;
  creationDate: Date;
  lastUpdateDate: Date;
  lastRotateDate?: Date;
  expirationDate?: Date;
  deletionDate?: Date;
  aliases: string[];
  /** Oldest first; the last one is the current version. */
  versions: KpVersion[];
  dualAuthDelete: boolean;
  setForDeletion: boolean;
}

export interface KpImportToken {
  creationDate: Date;
  expirationDate: Date;
  maxAllowedRetrievals: number;
  remainingRetrievals: number;
  nonce: Buffer;
  privateKey: KeyObject;
  privateKeyPem: string;
  publicKeyPem: string;
}

interface Instance {
  id: string;
  keys: Map<string, KpKey>;
  token?: KpImportToken;
}

/**
 * A key import as received (common CapturedImport): keyRef = the key id ("" when rejected before creation), version =
 * the version written, wrappingAlgorithm "RSAES_OAEP_SHA_256" (import token) or "NONE" (plain base64 payload),
 * wrappingKeySpec "RSA_4096" or "NONE", wrappedBlob = the decoded `payload` as received.
 */
export interface KpCapturedImport extends CapturedImport {
  instance: string;
  operation: "CreateKey" | "RotateKey";
  /** Decoded `encryptedNonce` and `iv` as received (empty for plain imports). */
  encryptedNonce: Buffer;
  iv: Buffer;
  /** The import token's nonce the encryptedNonce must carry (empty for plain imports). */
  nonce: Buffer;
}

export interface KpResult {
  status: number;
  body?: unknown;
}

export interface StateOptions {
  region: string;
  accountId: string;
  reuseWrappingKeys: boolean;
  rotationLimit: boolean;
  captureLimit: number;
}

const KEY_TYPE = "application/vnd.ibm.kms.key+json";
const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const envelope = (collectionType: string, resources: unknown[]): unknown => ({
  metadata: { collectionType, collectionTotal: resources.length },
  resources,
});

function b64(value: unknown, ctx: Context, field: string): Buffer {
  if (typeof value !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(value) || value.length % 4 !== 0) {
    throw invalidField(ctx, field, "a base64 encoded string");
  }
  return Buffer.from(value, "base64");
}

export class KeyProtectState {
  readonly clock = new EmulatorClock();
  readonly instances = new Map<string, Instance>();
  readonly captures: BoundedLog<KpCapturedImport>;
  #pairs = new Map<number, Promise<crypto.KeyPairKeyObjectResult>>();

  constructor(readonly opts: StateOptions) {
    this.captures = new BoundedLog<KpCapturedImport>(opts.captureLimit);
  }

  now(): Date {
    return new Date(this.clock.nowMs());
  }

  reset(): void {
    this.instances.clear();
    this.captures.clear();
    this.clock.reset();
  }

  instance(id: string): Instance {
    let inst = this.instances.get(id);
    if (!inst) {
      inst = { id, keys: new Map() };
      this.instances.set(id, inst);
    }
    return inst;
  }

  /** The key, after time-driven transitions (expiry → Deactivated). Throws 404 for unknown ids. */
  key(instance: string, id: string, ctx: Context): KpKey {
    const key = this.instances.get(instance)?.keys.get(id);
    if (!key) throw keyNotFound(ctx);
    this.#refresh(key);
    return key;
  }

  #refresh(key: KpKey): void {
    if ((key.state === 1 || key.state === 2) && key.expirationDate && key.expirationDate <= this.now()) key.state = 3;
  }

  crn(key: KpKey): string {
    return `crn:v1:bluemix:public:kms:${this.opts.region}:a/${this.opts.accountId}:${key.instance}:key:${key.id}`;
  }

  view(key: KpKey, withPayload: boolean): Record<string, unknown> {
    const current = key.versions.at(-1);
    const v: Record<string, unknown> = {
      type: KEY_TYPE, id: key.id, name: key.name, state: key.state, extractable: key.extractable, crn: this.crn(key),
      keyRingID: "default", imported: key.imported, deleted: key.state === 5, creationDate: key.creationDate.toISOString(),
      createdBy: "IBMid-mcko-emulator", algorithmType: "AES", lastUpdateDate: key.lastUpdateDate.toISOString(),
      dualAuthDelete: { enabled: key.dualAuthDelete, keySetForDeletion: key.setForDeletion },
    };
    if (key.description !== undefined) v["description"] = key.description;
    if (key.aliases.length > 0) v["aliases"] = [...key.aliases];
    if (key.expirationDate) v["expirationDate"] = key.expirationDate.toISOString();
    if (key.lastRotateDate) v["lastRotateDate"] = key.lastRotateDate.toISOString();
    if (current) v["keyVersion"] = { id: current.id, creationDate: current.creationDate.toISOString() };
    if (key.deletionDate) {
      v["deletionDate"] = key.deletionDate.toISOString();
      v["deletedBy"] = "IBMid-mcko-emulator";
      v["purgeAllowedFrom"] = new Date(key.deletionDate.getTime() + 4 * HOUR_MS).toISOString();
      v["purgeScheduledOn"] = new Date(key.deletionDate.getTime() + 90 * DAY_MS).toISOString();
      v["restoreExpirationDate"] = new Date(key.deletionDate.getTime() + 30 * DAY_MS).toISOString();
    }
    if (withPayload && key.extractable && current && key.state !== 5) v["payload"] = current.material.toString("base64");
    return v;
  }

  // ---- import token -------------------------------------------------------------------------------------------
  #keyPair(): Promise<crypto.KeyPairKeyObjectResult> {
    const generate = () =>
      new Promise<crypto.KeyPairKeyObjectResult>((resolve, reject) =>
        crypto.generateKeyPair("rsa", { modulusLength: 4096 }, (e, publicKey, privateKey) => (e ? reject(e) : resolve({ publicKey, privateKey }))));
    if (!this.opts.reuseWrappingKeys) return generate();
    let p = this.#pairs.get(4096);
    if (!p) {
      p = generate();
      this.#pairs.set(4096, p);
    }
    return p;
  }

  #tokenMeta(t: KpImportToken): Record<string, unknown> {
    return {
      creationDate: t.creationDate.toISOString(), expirationDate: t.expirationDate.toISOString(),
      maxAllowedRetrievals: t.maxAllowedRetrievals, remainingRetrievals: t.remainingRetrievals,
    };
  }

  async createImportToken(instance: string, body: Record<string, unknown>): Promise<KpResult> {
    const ctx: Context = "Import token could not be created";
    const expiration = body["expiration"] ?? 600;
    const retrievals = body["maxAllowedRetrievals"] ?? 1;
    if (typeof expiration !== "number" || !Number.isInteger(expiration) || expiration < 300 || expiration > 86400) {
      throw invalidField(ctx, "expiration", "an integer between 300 and 86400 (seconds)");
    }
    if (typeof retrievals !== "number" || !Number.isInteger(retrievals) || retrievals < 1 || retrievals > 500) {
      throw invalidField(ctx, "maxAllowedRetrievals", "an integer between 1 and 500");
    }
    const pair = await this.#keyPair();
    const now = this.now();
    const token: KpImportToken = {
      creationDate: now, expirationDate: new Date(now.getTime() + expiration * 1000), maxAllowedRetrievals: retrievals,
      remainingRetrievals: retrievals, nonce: crypto.randomBytes(12), privateKey: pair.privateKey,
      privateKeyPem: pair.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      publicKeyPem: pair.publicKey.export({ format: "pem", type: "spki" }).toString(),
    };
    this.instance(instance).token = token;
    return { status: 200, body: this.#tokenMeta(token) };
  }

  getImportToken(instance: string): KpResult {
    const ctx: Context = "Import token could not be retrieved";
    const token = this.instances.get(instance)?.token;
    if (!token) throw importTokenMissing(ctx);
    if (token.expirationDate <= this.now() || token.remainingRetrievals <= 0) throw importTokenExpired(ctx);
    token.remainingRetrievals--;
    return {
      status: 200,
      body: { ...this.#tokenMeta(token), payload: Buffer.from(token.publicKeyPem).toString("base64"), nonce: token.nonce.toString("base64") },
    };
  }

  /**
   * Recovers the material of a create/rotate request: plain base64, or an import-token payload whose encryptedNonce
   * must decrypt, under the material, to the token's nonce. Every attempt is captured.
   */
  #material(
    instance: string, res: Record<string, unknown>, ctx: Context, root: boolean, op: KpCapturedImport["operation"],
    keyRef: string, version: string,
  ): Buffer {
    const payload = b64(res["payload"], ctx, "payload");
    const hasNonce = res["encryptedNonce"] !== undefined || res["iv"] !== undefined;
    const capture: Omit<KpCapturedImport, "seq"> = {
      time: this.now().toISOString(), keyRef, wrappingAlgorithm: "NONE", wrappingKeySpec: "NONE", wrappedBlob: payload,
      wrappingPrivateKeyPem: "", wrappingPublicKeyPem: "", accepted: false, instance, operation: op,
      encryptedNonce: Buffer.alloc(0), iv: Buffer.alloc(0), nonce: Buffer.alloc(0),
    };
    const fail = (e: Error & { reasons?: { code: string }[] }): never => {
      capture.error = e.reasons?.[0]?.code ?? e.message;
      if (op === "CreateKey") capture.keyRef = "";
      this.captures.append(capture);
      throw e;
    };
    let material = payload;
    if (hasNonce) {
      const alg = res["encryptionAlgorithm"] ?? "RSAES_OAEP_SHA_256";
      capture.wrappingAlgorithm = typeof alg === "string" ? alg : "";
      capture.wrappingKeySpec = "RSA_4096";
      if (alg !== "RSAES_OAEP_SHA_256") fail(invalidField(ctx, "encryptionAlgorithm", "RSAES_OAEP_SHA_256"));
      const encryptedNonce = b64(res["encryptedNonce"], ctx, "encryptedNonce");
      const iv = b64(res["iv"], ctx, "iv");
      capture.encryptedNonce = encryptedNonce;
      capture.iv = iv;
      const token = this.instances.get(instance)?.token;
      if (!token) return fail(importTokenMissing(ctx));
      capture.wrappingPrivateKeyPem = token.privateKeyPem;
      capture.wrappingPublicKeyPem = token.publicKeyPem;
      capture.nonce = Buffer.from(token.nonce);
      if (token.expirationDate <= this.now()) fail(importTokenExpired(ctx));
      try {
        material = decryptTokenPayload(token.privateKey, payload);
      } catch {
        fail(invalidField(ctx, "payload", "key material encrypted with the import token's public key (RSAES_OAEP_SHA_256)"));
      }
      const check = checkEncryptedNonce(material, iv, encryptedNonce, token.nonce);
      if (check === "iv") fail(nonceIvMismatch(ctx));
      if (check === "nonce") fail(nonceMismatch(ctx));
    }
    if (root && ![16, 24, 32].includes(material.length)) {
      fail(invalidField(ctx, "payload", "a base64 encoded key material of 128, 192 or 256 bits"));
    }
    if (!root && (material.length === 0 || material.length > 7500)) fail(invalidField(ctx, "payload", "a base64 encoded secret of 1 to 7500 bytes"));
    capture.accepted = true;
    capture.version = version;
    const kcv = kcvOf(material);
    if (kcv) capture.materialKcv = kcv;
    this.captures.append(capture);
    return material;
  }

  // ---- keys ---------------------------------------------------------------------------------------------------
  createKey(instance: string, body: Record<string, unknown> | undefined, prefer: string): KpResult {
    const ctx: Context = "Key could not be created";
    if (!body) throw noBody(ctx);
    const metadata = body["metadata"] as Record<string, unknown> | undefined;
    const resources = body["resources"];
    if (!metadata || typeof metadata !== "object" || !Array.isArray(resources)) throw badBody(ctx);
    if (metadata["collectionTotal"] !== resources.length) throw collectionMismatch(ctx);
    if (resources.length !== 1) throw badBody(ctx, "exactly one resource is required");
    const res = resources[0] as Record<string, unknown>;
    if (typeof res !== "object" || res === null) throw badBody(ctx);
    const name = res["name"];
    if (typeof name !== "string" || name.length < 2 || name.length > 90) throw invalidField(ctx, "name", "a string of 2 to 90 characters");
    const description = res["description"];
    if (description !== undefined && (typeof description !== "string" || description.length > 240)) {
      throw invalidField(ctx, "description", "a string of at most 240 characters");
    }
    const extractable = res["extractable"] ?? false;
    if (typeof extractable !== "boolean") throw invalidField(ctx, "extractable", "a boolean");
    let expirationDate: Date | undefined;
    if (res["expirationDate"] !== undefined) {
      const t = typeof res["expirationDate"] === "string" ? Date.parse(res["expirationDate"]) : NaN;
      if (!Number.isFinite(t) || t <= this.now().getTime()) throw invalidField(ctx, "expirationDate", "an RFC 3339 date in the future");
      expirationDate = new Date(t);
    }
    const aliases = res["aliases"] ?? [];
    if (!Array.isArray(aliases) || aliases.length > 5 || aliases.some((a) => typeof a !== "string")) {
      throw invalidField(ctx, "aliases", "an array of at most 5 strings");
    }
    const id = randomUUID();
    const versionId = randomUUID();
    const imported = res["payload"] !== undefined;
    const material = imported ? this.#material(instance, res, ctx, !extractable, "CreateKey", id, versionId) : crypto.randomBytes(32);
    const now = this.now();
    const key: KpKey = {
      id, instance, name, extractable, imported, state: 1, creationDate: now, lastUpdateDate: now, aliases: aliases as string[],
      versions: [{ id: versionId, creationDate: now, material }], dualAuthDelete: false, setForDeletion: false,
    };
    if (typeof description === "string") key.description = description;
    if (expirationDate) key.expirationDate = expirationDate;
    this.instance(instance).keys.set(id, key);
    const view = prefer.includes("return=minimal") ? { type: KEY_TYPE, id } : this.view(key, false);
    return { status: 201, body: envelope(KEY_TYPE, [view]) };
  }

  listKeys(instance: string, query: URLSearchParams): KpResult {
    const limit = Number(query.get("limit") ?? 200);
    const offset = Number(query.get("offset") ?? 0);
    const ctx: Context = "Key could not be retrieved";
    if (!Number.isInteger(limit) || limit < 1 || limit > 5000) throw invalidField(ctx, "limit", "an integer between 1 and 5000");
    if (!Number.isInteger(offset) || offset < 0) throw invalidField(ctx, "offset", "a non-negative integer");
    const states = (query.get("state") ?? "0,1,2,3").split(",").map(Number);
    const extractable = query.get("extractable");
    const all = [...(this.instances.get(instance)?.keys.values() ?? [])].filter((k) => {
      this.#refresh(k);
      return states.includes(k.state) && (extractable === null || String(k.extractable) === extractable);
    });
    return { status: 200, body: envelope(KEY_TYPE, all.slice(offset, offset + limit).map((k) => this.view(k, false))) };
  }

  getKey(instance: string, id: string, withPayload: boolean): KpResult {
    const key = this.key(instance, id, "Key could not be retrieved");
    return { status: 200, body: envelope(KEY_TYPE, [this.view(key, withPayload)]) };
  }

  listVersions(instance: string, id: string): KpResult {
    const key = this.key(instance, id, "Key versions could not be retrieved");
    const resources = [...key.versions].reverse().map((v) => ({ id: v.id, creationDate: v.creationDate.toISOString() }));
    return { status: 200, body: envelope("application/vnd.ibm.kms.key_version+json", resources) };
  }

  /** POST /keys/{id}/aliases/{alias}: 2-90 letters, digits, - and _, not a UUID, unique in the instance, ≤5 per key. */
  createAlias(instance: string, id: string, alias: string): KpResult {
    const ctx: Context = "Alias could not be created";
    const key = this.key(instance, id, ctx);
    if (key.state === 5) throw keyDeleted(ctx);
    if (!/^[a-zA-Z0-9_-]{2,90}$/.test(alias) || /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(alias)) {
      throw invalidField(ctx, "alias", "2 to 90 letters, digits, - or _, and not a UUID");
    }
    const holder = [...(this.instances.get(instance)?.keys.values() ?? [])].find((k) => k.state !== 5 && k.aliases.includes(alias));
    if (holder && holder.id !== id) throw invalidField(ctx, "alias", "unique in the instance");
    if (!key.aliases.includes(alias)) {
      if (key.aliases.length >= 5) throw invalidField(ctx, "alias", "one of at most 5 aliases per key");
      key.aliases.push(alias);
      key.lastUpdateDate = this.now();
    }
    const view = { keyId: key.id, alias, creationDate: this.now().toISOString() };
    return { status: 201, body: envelope("application/vnd.ibm.kms.alias+json", [view]) };
  }

  deleteKey(instance: string, id: string, prefer: string): KpResult {
    const ctx: Context = "Key could not be deleted";
    const key = this.key(instance, id, ctx);
    if (key.state === 5) throw keyDeleted(ctx);
    if (key.dualAuthDelete && !key.setForDeletion) throw authorizationsNotMet();
    const now = this.now();
    key.state = 5;
    key.deletionDate = now;
    key.lastUpdateDate = now;
    return prefer.includes("return=representation")
      ? { status: 200, body: envelope(KEY_TYPE, [this.view(key, false)]) }
      : { status: 204 };
  }

  /** POST /keys/{id}/actions/{action} (and the older ?action= form). */
  action(instance: string, id: string, action: string, body: Record<string, unknown> | undefined, prefer: string): KpResult {
    const ctx: Context = action === "enable" ? "Key could not be enabled" : action === "disable" ? "Key could not be disabled" : "Action could not be performed on key";
    const key = this.key(instance, id, ctx);
    if (key.state === 5) throw keyDeleted(ctx);
    const now = this.now();
    const done = (): KpResult => {
      key.lastUpdateDate = now;
      return prefer.includes("return=representation") ? { status: 200, body: envelope(KEY_TYPE, [this.view(key, false)]) } : { status: 204 };
    };
    switch (action) {
      case "enable":
        if (key.state !== 2) throw invalidState(ctx, "suspended");
        key.state = 1;
        return done();
      case "disable":
        if (key.state !== 1) throw invalidState(ctx, "active");
        key.state = 2;
        return done();
      case "rotate": {
        if (key.extractable) throw rootRequired();
        if (key.state !== 1 && key.state !== 3) throw invalidState(ctx, "active");
        if (this.opts.rotationLimit && key.lastRotateDate && now.getTime() - key.lastRotateDate.getTime() < HOUR_MS) throw rotationLimited();
        const hasPayload = body?.["payload"] !== undefined;
        if (key.imported && !hasPayload) throw payloadRequired();
        const versionId = randomUUID();
        const material = hasPayload && body ? this.#material(instance, body, ctx, true, "RotateKey", key.id, versionId) : crypto.randomBytes(32);
        key.versions.push({ id: versionId, creationDate: now, material });
        key.lastRotateDate = now;
        return done();
      }
      case "wrap": {
        if (key.extractable) throw rootRequired();
        if (key.state !== 1) throw invalidState(ctx, "active");
        const aad = this.#aad(body, ctx);
        const generated = body?.["plaintext"] === undefined;
        const plaintext = generated ? crypto.randomBytes(32) : b64(body?.["plaintext"], ctx, "plaintext");
        if (plaintext.length === 0 || plaintext.length > 7500) throw invalidField(ctx, "plaintext", "a base64 encoded key material");
        const current = key.versions.at(-1);
        if (!current) throw badCiphertext();
        const out: Record<string, unknown> = { ciphertext: wrap(key.id, current.id, current.material, plaintext, aad), keyVersion: { id: current.id } };
        if (generated) out["plaintext"] = plaintext.toString("base64");
        return { status: 200, body: out };
      }
      case "unwrap":
      case "rewrap": {
        if (key.extractable) throw rootRequired();
        if (key.state !== 1 && key.state !== 3) throw invalidState(ctx, "active");
        if (!body) throw noBody(ctx);
        if (typeof body["ciphertext"] !== "string") throw invalidField(ctx, "ciphertext", "the original base64 encoded ciphertext from the wrap operation");
        const aad = this.#aad(body, ctx);
        const parsed = parseCiphertext(body["ciphertext"]);
        const version = parsed && parsed.handle === key.id ? key.versions.find((v) => v.id === parsed.keyVersion) : undefined;
        const plaintext = parsed && version ? unwrap(version.material, parsed, aad) : undefined;
        if (!plaintext || !version) throw badCiphertext();
        const current = key.versions.at(-1) ?? version;
        if (action === "unwrap") {
          const out: Record<string, unknown> = { plaintext: plaintext.toString("base64"), keyVersion: { id: version.id } };
          if (current.id !== version.id) out["rewrappedKeyVersion"] = { id: current.id };
          return { status: 200, body: out };
        }
        return {
          status: 200,
          body: { ciphertext: wrap(key.id, current.id, current.material, plaintext, aad), keyVersion: { id: current.id }, rewrappedKeyVersion: { id: version.id } },
        };
      }
      case "setKeyForDeletion":
      case "unsetKeyForDeletion":
        if (!key.dualAuthDelete) throw notDualAuth();
        if (key.state !== 1 && key.state !== 2 && key.state !== 3) throw invalidState(ctx, "active");
        key.setForDeletion = action === "setKeyForDeletion";
        return { status: 204 };
      default:
        throw badBody(ctx, `unknown action '${action}'`);
    }
  }

  #aad(body: Record<string, unknown> | undefined, ctx: Context): string[] | undefined {
    const aad = body?.["aad"];
    if (aad === undefined) return undefined;
    if (!Array.isArray(aad) || aad.some((a) => typeof a !== "string")) throw invalidField(ctx, "aad", "an array of strings");
    return aad as string[];
  }
}
