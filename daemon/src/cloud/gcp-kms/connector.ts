/**
 * Google Cloud KMS connector (BYOK.md §4): the keystore's key ring (created when missing) holds one import-only
 * CryptoKey per distribution, named by the cloud name, with the purpose and algorithm that fit the vault key and
 * MCKO's tags as labels. Material arrives through an ImportJob (one per import method and protection level, found by
 * its `mcko-` id, reused while ACTIVE and not about to expire, renewed otherwise) → Hsm.wrapForKeystore for the
 * job's public key → ImportCryptoKeyVersion → for ENCRYPT_DECRYPT keys UpdateCryptoKeyPrimaryVersion, explicitly.
 * Rotation imports a new version the same way. Enable/disable set every version's state; deletion destroys every
 * version (DESTROY_SCHEDULED for the key's destroy_scheduled_duration, fixed at creation from the keystore's
 * deletion window) — Google never deletes a CryptoKey itself, which comes back as a warning.
 *
 * Idempotency: the CryptoKey carries `mcko-request-id` and `mcko-base-version` (the highest version id when this
 * request took the key), so a resumed push knows whether its import already went through; an import whose answer
 * was lost is found again among the versions newer than that base made by the same ImportJob.
 */
import { createPublicKey } from "node:crypto";
import type { ByokFormat, KeyAlgorithm } from "../../hsm/hsm.js";
import { callWithRetry } from "../call-policy.js";
import {
  ConnectorError,
  type CallPolicy,
  type CloudKeyRef,
  type CloudKeyView,
  type ConnectorCredentials,
  type ConnectorFactory,
  type ConnectorSettings,
  type DeletionOutcome,
  type KeystoreConnector,
  type PushRequest,
  type PushResult,
  type RotateRequest,
} from "../connector.js";
import { compileGcpSettings, GCP_CREDENTIAL_FIELDS, parseCredentialsJson, validateGcpSettings, type GcpImportMethod, type GcpKmsSettings } from "./config.js";
import { translateGcpError } from "./errors.js";
import { createGcpKmsApi, type GcpCryptoKey, type GcpImportJob, type GcpKmsApi, type GcpVersion } from "./sdk.js";

export const REQUEST_ID_LABEL = "mcko-request-id";
const BASE_VERSION_LABEL = "mcko-base-version";

interface Spec {
  readonly purpose: "ENCRYPT_DECRYPT" | "RAW_ENCRYPT_DECRYPT" | "ASYMMETRIC_DECRYPT" | "ASYMMETRIC_SIGN" | "MAC";
  readonly algorithm: string;
  readonly asymmetric: boolean;
}

const SPECS: Partial<Record<KeyAlgorithm, Spec>> = {
  AES_128: { purpose: "RAW_ENCRYPT_DECRYPT", algorithm: "AES_128_GCM", asymmetric: false },
  AES_256: { purpose: "ENCRYPT_DECRYPT", algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", asymmetric: false },
  RSA_2048: { purpose: "ASYMMETRIC_DECRYPT", algorithm: "RSA_DECRYPT_OAEP_2048_SHA256", asymmetric: true },
  RSA_3072: { purpose: "ASYMMETRIC_DECRYPT", algorithm: "RSA_DECRYPT_OAEP_3072_SHA256", asymmetric: true },
  RSA_4096: { purpose: "ASYMMETRIC_DECRYPT", algorithm: "RSA_DECRYPT_OAEP_4096_SHA256", asymmetric: true },
  EC_P256: { purpose: "ASYMMETRIC_SIGN", algorithm: "EC_SIGN_P256_SHA256", asymmetric: true },
  EC_P384: { purpose: "ASYMMETRIC_SIGN", algorithm: "EC_SIGN_P384_SHA384", asymmetric: true },
  HMAC_SHA256: { purpose: "MAC", algorithm: "HMAC_SHA256", asymmetric: false },
  HMAC_SHA384: { purpose: "MAC", algorithm: "HMAC_SHA384", asymmetric: false },
  HMAC_SHA512: { purpose: "MAC", algorithm: "HMAC_SHA512", asymmetric: false },
};

const FORMAT: Record<GcpImportMethod, ByokFormat> = {
  RSA_OAEP_3072_SHA256_AES_256: "RSA_AES_KWP_SHA256",
  RSA_OAEP_4096_SHA256_AES_256: "RSA_AES_KWP_SHA256",
  RSA_OAEP_3072_SHA1_AES_256: "RSA_AES_KWP_SHA1",
  RSA_OAEP_4096_SHA1_AES_256: "RSA_AES_KWP_SHA1",
  RSA_OAEP_3072_SHA256: "RSA_OAEP_SHA256",
  RSA_OAEP_4096_SHA256: "RSA_OAEP_SHA256",
};

/** Versions that hold (or are about to hold) material. */
const LIVE = new Set(["ENABLED", "DISABLED", "PENDING_IMPORT"]);
const CRYPTO_KEY_ID = /^[a-zA-Z0-9_-]{1,63}$/;
/** An ImportJob this close to its expiry is not used for a new import. */
const JOB_MARGIN_MS = 3600_000;
const DAY_S = 86_400;

export class GcpKmsConnector implements KeystoreConnector {
  readonly type = "GCP_KMS" as const;
  readonly #ring: string;
  #ringReady: Promise<void> | undefined;
  readonly #jobs = new Map<GcpImportMethod, Promise<GcpImportJob>>();

  constructor(
    private readonly settings: GcpKmsSettings,
    private readonly api: GcpKmsApi,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
    /** Why the given credentials_json cannot be used (caller credentials are checked only here); every call fails with it. */
    private readonly credentialsProblem?: string,
  ) {
    this.#ring = `projects/${settings.project}/locations/${settings.location}/keyRings/${settings.keyRing}`;
  }

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    if (SPECS[algorithm]) return undefined;
    if (algorithm === "AES_192") return "Google Cloud KMS has no 192-bit AES keys (it imports AES-128 as AES_128_GCM raw keys and AES-256)";
    return `Google Cloud KMS cannot import ${algorithm} keys`;
  }

  async testConnection(): Promise<{ detail: string }> {
    const where = `Google Cloud KMS${this.settings.endpoint ? ` at ${this.settings.endpoint.host}:${this.settings.endpoint.port}` : ""}`;
    const how = this.settings.endpoint?.plaintext ? "answered over plaintext gRPC (emulator; no credentials sent)" : "answered and accepted the credentials";
    try {
      await this.#call("GetKeyRing", (o) => this.api.getKeyRing(this.#ring, o));
      return { detail: `${where} ${how}; key ring ${this.#ring} exists` };
    } catch (e) {
      if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
    }
    await this.#call("ListKeyRings", (o) => this.api.listKeyRings(`projects/${this.settings.project}/locations/${this.settings.location}`, o));
    return { detail: `${where} ${how}; key ring ${this.#ring} does not exist yet, the first push creates it` };
  }

  async push(req: PushRequest): Promise<PushResult> {
    const spec = this.#spec(req.algorithm);
    await this.#ensureKeyRing();
    let key: GcpCryptoKey;
    if (req.existingKey) key = await this.#getKey(this.#nameOf(req.existingKey));
    else {
      key = await this.#createOrAdopt(req, spec);
      await req.onKeyCreated?.(this.#ref(key));
    }
    this.#checkFits(key, spec);
    const versions = await this.#versions(key.name);
    if (key.labels[REQUEST_ID_LABEL] !== req.requestId) {
      // A key this request did not make or adopt (e.g. one left from an earlier push): take it over from here.
      key = await this.#relabel(key, req, versions);
    }
    const base = Number(key.labels[BASE_VERSION_LABEL] ?? "0") || 0;
    // The import of this very push may have gone through before a crash or a lost answer: nothing more to do.
    const mine = versions.filter((v) => Number(v.id) > base && LIVE.has(v.state));
    let version: GcpVersion;
    let softwareStep: PushResult["softwareStep"] = "none";
    if (mine.length > 0) version = mine.reduce((a, b) => (Number(a.id) >= Number(b.id) ? a : b));
    else {
      const out = await this.#importVersion(key, req, spec, versions);
      version = out.version;
      softwareStep = out.softwareStep;
    }
    await this.#makeCurrent(key, version, spec, req);
    return { key: this.#ref(key), alias: this.#ref(key).id, versionId: version.id, softwareStep };
  }

  async rotate(req: RotateRequest): Promise<PushResult> {
    const spec = this.#spec(req.algorithm);
    const key = await this.#getKey(this.#nameOf(req.current));
    this.#checkFits(key, spec);
    const { version, softwareStep } = await this.#importVersion(key, req, spec, await this.#versions(key.name));
    await this.#makeCurrent(key, version, spec, req);
    return { key: this.#ref(key), alias: this.#ref(key).id, versionId: version.id, softwareStep };
  }

  async setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    const from = enabled ? "DISABLED" : "ENABLED";
    for (const v of await this.#versions(this.#nameOf(key))) {
      if (v.state === from) await this.#call("UpdateCryptoKeyVersion", (o) => this.api.setVersionState(v.name, enabled ? "ENABLED" : "DISABLED", o));
    }
  }

  async scheduleDeletion(key: CloudKeyRef, windowDays: number): Promise<DeletionOutcome> {
    const name = this.#nameOf(key);
    let ck: GcpCryptoKey;
    try {
      ck = await this.#getKey(name);
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return { warnings: [] };
      throw e;
    }
    let destroyed = 0;
    for (const v of await this.#versions(name)) {
      if (v.state !== "ENABLED" && v.state !== "DISABLED") continue;
      try {
        await this.#call("DestroyCryptoKeyVersion", (o) => this.api.destroyVersion(v.name, o));
        destroyed++;
      } catch (e) {
        // Destroyed or scheduled meanwhile (a concurrent call, a retried answer): the wanted outcome.
        if (!(e instanceof ConnectorError && (e.kind === "NOT_FOUND" || e.details.cloudCode === "FAILED_PRECONDITION"))) throw e;
      }
    }
    const days = Math.round(ck.destroyScheduledSeconds / DAY_S);
    const warnings = [
      `Google Cloud KMS cannot delete CryptoKey ${name}: ${destroyed > 0 ? `${destroyed} version(s) were scheduled for destruction in ${days} day(s)` : "it holds no version left to destroy"}; the key and its name stay in the key ring`,
    ];
    if (windowDays > 0 && ck.destroyScheduledSeconds > 0 && windowDays !== days) {
      warnings.push(`CryptoKey ${name} destroys versions after ${days} day(s), fixed when it was created; the keystore's deletion window of ${windowDays} day(s) cannot change that`);
    }
    return { warnings };
  }

  async describe(key: CloudKeyRef): Promise<CloudKeyView> {
    let ck: GcpCryptoKey;
    try {
      ck = await this.#getKey(this.#nameOf(key));
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return { exists: false, state: "ABSENT", rawState: "NOT_FOUND", tags: {} };
      throw e;
    }
    const versions = await this.#versions(ck.name);
    const tags = labelsToTags(ck.labels);
    const live = versions.filter((v) => LIVE.has(v.state));
    const primary = ck.primary ? live.find((v) => v.name === ck.primary!.name) : undefined;
    const current = primary ?? (live.length > 0 ? live.reduce((a, b) => (Number(a.id) >= Number(b.id) ? a : b)) : undefined);
    if (!current) {
      const gone = versions.find((v) => v.state === "DESTROY_SCHEDULED" || v.state === "DESTROYED");
      if (gone) return { exists: true, state: "PENDING_DELETION", rawState: gone.state, tags };
      return { exists: true, state: "PENDING_IMPORT", rawState: versions.length === 0 ? "NO_VERSIONS" : "IMPORT_FAILED", tags };
    }
    const state: CloudKeyView["state"] = current.state === "ENABLED" ? "ENABLED" : current.state === "DISABLED" ? "DISABLED" : "PENDING_IMPORT";
    return { exists: true, state, rawState: current.state, tags, currentVersionId: current.id };
  }

  async resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    if (!CRYPTO_KEY_ID.test(cloudName)) return undefined;
    try {
      return this.#ref(await this.#getKey(`${this.#ring}/cryptoKeys/${cloudName}`));
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return undefined;
      throw e;
    }
  }

  async findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    let keys: GcpCryptoKey[];
    try {
      keys = await this.#call("ListCryptoKeys", (o) => this.api.listCryptoKeys(this.#ring, o));
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return [];
      throw e;
    }
    return keys.filter((k) => k.labels[REQUEST_ID_LABEL] === requestId).map((k) => this.#ref(k));
  }

  close(): void {
    this.api.close();
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #spec(algorithm: KeyAlgorithm): Spec {
    const spec = SPECS[algorithm];
    if (!spec) throw new ConnectorError("UNSUPPORTED_ALGORITHM", this.unsupportedReason(algorithm)!);
    return spec;
  }

  #ref(key: GcpCryptoKey): CloudKeyRef {
    return { id: key.name.slice(key.name.lastIndexOf("/") + 1), uri: key.name };
  }

  #nameOf(key: CloudKeyRef): string {
    return key.uri.startsWith("projects/") ? key.uri : `${this.#ring}/cryptoKeys/${key.id}`;
  }

  #checkFits(key: GcpCryptoKey, spec: Spec): void {
    if (key.purpose !== spec.purpose) {
      throw new ConnectorError("REJECTED", `CryptoKey ${key.name} has purpose ${key.purpose}, but a ${spec.algorithm} key needs ${spec.purpose}; Google Cloud KMS cannot change or delete a key, so use another cloud_name`, { cloudCode: "FAILED_PRECONDITION", operation: "ImportCryptoKeyVersion" });
    }
    if (key.protectionLevel && key.protectionLevel !== this.settings.protectionLevel) {
      throw new ConnectorError("REJECTED", `CryptoKey ${key.name} has protection level ${key.protectionLevel}, the keystore imports at ${this.settings.protectionLevel}; use another cloud_name or protection_level`, { cloudCode: "FAILED_PRECONDITION", operation: "ImportCryptoKeyVersion" });
    }
  }

  #ensureKeyRing(): Promise<void> {
    this.#ringReady ??= (async () => {
      try {
        await this.#call("GetKeyRing", (o) => this.api.getKeyRing(this.#ring, o));
        return;
      } catch (e) {
        if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
      }
      const parent = `projects/${this.settings.project}/locations/${this.settings.location}`;
      try {
        await this.#call("CreateKeyRing", (o) => this.api.createKeyRing(parent, this.settings.keyRing, o));
      } catch (e) {
        if (!(e instanceof ConnectorError && e.details.cloudCode === "ALREADY_EXISTS")) throw e;
      }
    })();
    this.#ringReady.catch(() => (this.#ringReady = undefined));
    return this.#ringReady;
  }

  #getKey(name: string): Promise<GcpCryptoKey> {
    return this.#call("GetCryptoKey", (o) => this.api.getCryptoKey(name, o));
  }

  async #versions(name: string): Promise<GcpVersion[]> {
    return this.#call("ListCryptoKeyVersions", (o) => this.api.listVersions(name, o));
  }

  #labels(req: PushRequest): Record<string, string> {
    return { ...tagsToLabels(req.tags), [REQUEST_ID_LABEL]: req.requestId };
  }

  async #createOrAdopt(req: PushRequest, spec: Spec): Promise<GcpCryptoKey> {
    if (!CRYPTO_KEY_ID.test(req.cloudName)) {
      throw new ConnectorError("REJECTED", `cloud name ${JSON.stringify(req.cloudName.slice(0, 80))} is not a Cloud KMS CryptoKey id (1-63 letters, digits, underscores and hyphens)`, { cloudCode: "INVALID_ARGUMENT", operation: "CreateCryptoKey" });
    }
    const name = `${this.#ring}/cryptoKeys/${req.cloudName}`;
    const labels: Record<string, string> = { ...this.#labels(req), [BASE_VERSION_LABEL]: "0" };
    const window = Math.min(120, Math.max(1, req.deletionWindowDays || 1));
    try {
      return await this.#call("CreateCryptoKey", (o) =>
        this.api.createCryptoKey(this.#ring, req.cloudName, { purpose: spec.purpose, algorithm: spec.algorithm, protectionLevel: this.settings.protectionLevel, labels, destroyScheduledSeconds: window * DAY_S }, o),
      );
    } catch (e) {
      if (!(e instanceof ConnectorError && e.details.cloudCode === "ALREADY_EXISTS")) throw e;
    }
    // The name is taken: by this push (a CreateCryptoKey whose answer was lost), by this distribution earlier (a
    // Google key is never deleted, so a distribution made again, or a key whose versions were destroyed, finds its
    // old key), or by someone else.
    const existing = await this.#getKey(name);
    if (existing.labels[REQUEST_ID_LABEL] === req.requestId) return existing;
    const ours = ["mcko-vault", "mcko-key", "mcko-keystore"].every((l) => labels[l] !== undefined && existing.labels[l] === labels[l]);
    if (!ours) {
      throw new ConnectorError("REJECTED", `Google Cloud KMS already holds a CryptoKey ${name} that is not this distribution's; choose another cloud_name`, { cloudCode: "ALREADY_EXISTS", operation: "CreateCryptoKey" });
    }
    this.#checkFits(existing, spec);
    return this.#relabel(existing, req, await this.#versions(name));
  }

  /** Tags the key with this request and the version base above which its import will be. */
  async #relabel(key: GcpCryptoKey, req: PushRequest, versions: readonly GcpVersion[]): Promise<GcpCryptoKey> {
    const base = versions.reduce((m, v) => Math.max(m, Number(v.id) || 0), 0);
    const labels = { ...key.labels, ...this.#labels(req), [BASE_VERSION_LABEL]: String(base) };
    await this.#call("UpdateCryptoKey", (o) => this.api.updateLabels(key.name, labels, o));
    return { ...key, labels };
  }

  /** The ImportJob for `method`: cached, else an ACTIVE `mcko-` job of the ring not about to expire, else a new one. */
  async #importJob(method: GcpImportMethod): Promise<GcpImportJob> {
    const fresh = (j: GcpImportJob) => j.state === "ACTIVE" && !!j.publicKeyPem && (!j.expireTime || j.expireTime.getTime() - Date.now() > JOB_MARGIN_MS);
    const cached = this.#jobs.get(method);
    if (cached) {
      const job = await cached.catch(() => undefined);
      if (job && fresh(job)) return job;
      if (this.#jobs.get(method) === cached) this.#jobs.delete(method);
      const again = this.#jobs.get(method);
      if (again) return again;
    }
    const level = this.settings.protectionLevel;
    const p = (async () => {
      const jobs = await this.#call("ListImportJobs", (o) => this.api.listImportJobs(this.#ring, o));
      const reusable = jobs
        .filter((j) => j.name.slice(j.name.lastIndexOf("/") + 1).startsWith("mcko-") && j.importMethod === method && j.protectionLevel === level && fresh(j))
        .sort((a, b) => (b.expireTime?.getTime() ?? 0) - (a.expireTime?.getTime() ?? 0));
      if (reusable[0]) return reusable[0];
      const id = `mcko-${method.toLowerCase().replace(/_/g, "-")}-${level.toLowerCase()}-${Date.now().toString(36)}`;
      const name = `${this.#ring}/importJobs/${id}`;
      let job: GcpImportJob;
      try {
        job = await this.#call("CreateImportJob", (o) => this.api.createImportJob(this.#ring, id, method, level, o));
      } catch (e) {
        if (!(e instanceof ConnectorError && e.details.cloudCode === "ALREADY_EXISTS")) throw e;
        job = await this.#call("GetImportJob", (o) => this.api.getImportJob(name, o));
      }
      // The job's key pair is generated asynchronously (minutes for HSM jobs in Google Cloud).
      const until = Date.now() + this.policy.deadlineMs;
      for (let wait = 100; job.state === "PENDING_GENERATION" && Date.now() < until; wait = Math.min(2000, wait * 2)) {
        await new Promise((r) => setTimeout(r, wait));
        job = await this.#call("GetImportJob", (o) => this.api.getImportJob(name, o));
      }
      if (!fresh(job)) throw new ConnectorError("UNAVAILABLE", `ImportJob ${name} is ${job.state}, not ACTIVE, after ${this.policy.deadlineMs} ms`, { cloudCode: job.state, operation: "GetImportJob", retryable: true });
      return job;
    })();
    this.#jobs.set(method, p);
    p.catch(() => {
      if (this.#jobs.get(method) === p) this.#jobs.delete(method);
    });
    return p;
  }

  async #importVersion(key: GcpCryptoKey, req: PushRequest, spec: Spec, before: readonly GcpVersion[]): Promise<{ version: GcpVersion; softwareStep: PushResult["softwareStep"] }> {
    let method = this.settings.importMethod;
    // Asymmetric material (PKCS#8) is too long for a plain RSA-OAEP import: the RSA-AES method of the same size and hash.
    if (spec.asymmetric && (method === "RSA_OAEP_3072_SHA256" || method === "RSA_OAEP_4096_SHA256")) method = `${method}_AES_256` as GcpImportMethod;
    const base = before.reduce((m, v) => Math.max(m, Number(v.id) || 0), 0);
    for (let round = 0; ; round++) {
      const job = await this.#importJob(method);
      const spki = createPublicKey(job.publicKeyPem!).export({ type: "spki", format: "der" });
      const wrapped = await req.wrap(spki, FORMAT[method]);
      let version: GcpVersion;
      try {
        let attempt = 0;
        version = await this.#call("ImportCryptoKeyVersion", async (o) => {
          // An import whose answer was lost may have made the version: look for it before importing again.
          if (attempt++ > 0) {
            const found = (await this.api.listVersions(key.name, o)).filter((v) => Number(v.id) > base && v.importJob === job.name);
            if (found.length > 0) return found.reduce((a, b) => (Number(a.id) >= Number(b.id) ? a : b));
          }
          return this.api.importVersion(key.name, spec.algorithm, job.name, wrapped.blob, o);
        });
      } catch (e) {
        // The job expired between our look and the import (or was expired out of band): renew it once.
        if (round === 0 && e instanceof ConnectorError && e.details.cloudCode === "FAILED_PRECONDITION" && /ImportJob/.test(e.message)) {
          this.#jobs.delete(method);
          continue;
        }
        throw e;
      } finally {
        wrapped.blob.fill(0);
      }
      const until = Date.now() + this.policy.deadlineMs;
      for (let wait = 100; version.state === "PENDING_IMPORT" && Date.now() < until; wait = Math.min(2000, wait * 2)) {
        await new Promise((r) => setTimeout(r, wait));
        version = await this.#call("GetCryptoKeyVersion", (o) => this.api.getVersion(version.name, o));
      }
      if (version.state === "IMPORT_FAILED") {
        throw new ConnectorError("REJECTED", `Google Cloud KMS could not import the material into ${key.name}: ${version.importFailureReason || "IMPORT_FAILED"}`, { cloudCode: "IMPORT_FAILED", operation: "ImportCryptoKeyVersion" });
      }
      return { version, softwareStep: wrapped.softwareStep };
    }
  }

  /** ENCRYPT_DECRYPT keys: the version becomes primary (explicitly: imports never do by themselves); labels follow. */
  async #makeCurrent(key: GcpCryptoKey, version: GcpVersion, spec: Spec, req: PushRequest): Promise<void> {
    if (spec.purpose === "ENCRYPT_DECRYPT" && key.primary?.id !== version.id && version.state === "ENABLED") {
      await this.#call("UpdateCryptoKeyPrimaryVersion", (o) => this.api.updatePrimaryVersion(key.name, version.id, o));
    }
    const labels = { ...key.labels, ...tagsToLabels(req.tags) };
    if (Object.entries(labels).some(([k, v]) => key.labels[k] !== v)) await this.#call("UpdateCryptoKey", (o) => this.api.updateLabels(key.name, labels, o));
  }

  #call<T>(operation: string, fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    if (this.credentialsProblem) return Promise.reject(new ConnectorError("INVALID_CONFIG", `credentials_json ${this.credentialsProblem}`, { field: "credentials_json", operation }));
    return callWithRetry(this.policy, operation, async (signal) => {
      try {
        return await fn({ abortSignal: signal });
      } catch (e) {
        throw translateGcpError(e, operation, this.credentials);
      }
    });
  }
}

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/**
 * MCKO tags → Cloud KMS labels (lower-case letters, digits, `_` and `-`, at most 63 each): resource names are split
 * into their ids (`mcko:key` vaults/V/keys/K → `mcko-vault` V, `mcko-key` K; `mcko:distribution` adds
 * `mcko-keystore`), other keys have `:` → `-`; values that still do not fit are dropped rather than mangled.
 */
export function tagsToLabels(tags: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(tags)) {
    const dist = k === "mcko:distribution" ? /^vaults\/([^/]+)\/keys\/([^/]+)\/distributions\/([^/]+)$/.exec(v) : null;
    const key = k === "mcko:key" ? /^vaults\/([^/]+)\/keys\/([^/]+)$/.exec(v) : null;
    const parts: Array<[string, string]> = dist
      ? [["mcko-vault", dist[1]!], ["mcko-key", dist[2]!], ["mcko-keystore", dist[3]!]]
      : key
        ? [["mcko-vault", key[1]!], ["mcko-key", key[2]!]]
        : [[k.toLowerCase().replace(/:/g, "-"), v]];
    for (const [lk, lv] of parts) if (LABEL_KEY.test(lk) && LABEL_VALUE.test(lv)) out[lk] = lv;
  }
  return out;
}

/** Cloud KMS labels → MCKO tags (the inverse of `tagsToLabels` for MCKO's own; other labels as they are). */
export function labelsToTags(labels: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k === "mcko-vault" || k === "mcko-key" || k === "mcko-keystore" || k === BASE_VERSION_LABEL) continue;
    out[k.startsWith("mcko-") ? `mcko:${k.slice(5)}` : k] = v;
  }
  const vault = labels["mcko-vault"];
  const key = labels["mcko-key"];
  if (vault && key) {
    out["mcko:key"] = `vaults/${vault}/keys/${key}`;
    if (labels["mcko-keystore"]) out["mcko:distribution"] = `vaults/${vault}/keys/${key}/distributions/${labels["mcko-keystore"]}`;
  }
  return out;
}

export const gcpKmsFactory: ConnectorFactory = {
  type: "GCP_KMS",
  credentialFields: GCP_CREDENTIAL_FIELDS,
  validate: (settings: ConnectorSettings, credentials: ConnectorCredentials | undefined) => validateGcpSettings(settings, credentials),
  create(settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector {
    const s = compileGcpSettings(settings);
    const parsed = credentials.credentials_json ? parseCredentialsJson(credentials.credentials_json) : undefined;
    // A plaintext endpoint (emulator) never carries credentials.
    const api = createGcpKmsApi(s, s.endpoint?.plaintext || typeof parsed === "string" ? undefined : parsed, policy.attemptTimeoutMs);
    return new GcpKmsConnector(s, api, policy, credentials, typeof parsed === "string" ? parsed : undefined);
  },
};
