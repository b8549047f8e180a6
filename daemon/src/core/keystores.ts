/**
 * Keystores: the external key stores of a vault. Settings are validated by the target's connector factory;
 * credentials are write-only, sealed with the internal credential key (credential-cipher.ts) and never returned,
 * logged or audited. A keystore with credential source CALLER stores none: each call that reaches the cloud must
 * bring the caller's own. Connectors are built on demand and cached per keystore record version; each keystore has
 * one call policy (concurrency limit, retry bounds) shared by every connector built for it.
 */
import { createHash } from "node:crypto";
import { makeCallPolicy } from "../cloud/call-policy.js";
import type { CallPolicy, ConnectorCredentials, ConnectorSettings, KeystoreConnector, KeystoreType } from "../cloud/connector.js";
import type { ConnectorRegistry } from "../cloud/registry.js";
import { StoreConflictError, type JsonValue, type Mutation, type Store, type StoredRecord } from "../store/store.js";
import type { Actor, AuditLog } from "./audit/audit-log.js";
import { toJournalEntry, type AuditEventInput } from "./audit/chain.js";
import type { Clock, IdSource } from "./clock.js";
import { fromConnectorError } from "./cloud-errors.js";
import type { CredentialCipher, SealedCredentials } from "./credential-cipher.js";
import { AbortedError, AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, UnauthenticatedError, type FieldViolation } from "./errors.js";
import { isReplay, requestFingerprint, requestMutation } from "./requests.js";
import type { KeyedLock, KeyedRwLock } from "./locks.js";
import { formatKeystoreName, formatVaultName, storeKeys } from "./names.js";

export type CredentialSource = "STORED" | "CALLER";

/** Proto field of each type's config in the Keystore oneof (for field violations). */
export const CONFIG_FIELD: Readonly<Record<KeystoreType, string>> = {
  AWS_KMS: "aws_kms",
  AZURE_KEY_VAULT: "azure_key_vault",
  GCP_KMS: "gcp_kms",
  IBM_KEY_PROTECT: "ibm_key_protect",
  PKCS11: "pkcs11",
};

export interface KeystoreOptions {
  readonly credentialSource: CredentialSource;
  readonly allowSoftwareWrap: boolean;
  /** 0 = the cloud's minimum. */
  readonly deletionWindowDays: number;
  readonly maxConcurrency: number;
  readonly description: string;
}

export interface CreateKeystoreInput extends KeystoreOptions {
  readonly vault: string;
  readonly keystoreId: string;
  readonly type: KeystoreType;
  readonly settings: ConnectorSettings;
  /** Non-empty credential fields given on the request. */
  readonly credentials: Readonly<Record<string, string>>;
  readonly requestId?: string;
  readonly validateOnly: boolean;
  /** For validate_only with credential source CALLER: the caller's credentials. */
  readonly callerCredentials?: ConnectorCredentials;
}

export interface KeystoreChanges {
  /** Settings to set (merged over the stored ones; "" clears an optional setting). */
  readonly settings?: ConnectorSettings;
  /** Credential fields to set (merged; "" removes a field). */
  readonly credentials?: Readonly<Record<string, string>>;
  readonly options?: Partial<KeystoreOptions>;
}

export interface Keystore extends KeystoreOptions {
  readonly name: string;
  readonly vault: string;
  readonly id: string;
  readonly type: KeystoreType;
  readonly settings: ConnectorSettings;
  readonly hasCredentials: boolean;
  readonly lastTestResult: string;
  readonly lastTestTime?: Date;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly etag: string;
  readonly distributionCount: number;
}

export interface KeystoreRecord extends KeystoreOptions {
  vault: string;
  id: string;
  type: KeystoreType;
  settings: Record<string, string | number | boolean>;
  credentials: SealedCredentials | null;
  lastTestResult: string;
  lastTestTime: string | null;
  createTime: string;
  updateTime: string;
  incarnation: string;
}

export interface KeystoreServiceDeps {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly ids: IdSource;
  readonly registry: ConnectorRegistry;
  readonly cipher: CredentialCipher;
  readonly vaultLock: KeyedRwLock;
  readonly keystoreLock: KeyedLock;
  /** Cloud call bounds for every keystore. */
  readonly cloudAttemptTimeoutMs: number;
  readonly cloudDeadlineMs: number;
}

/** A connector for one use; `release()` closes connectors built for caller credentials. */
export interface OpenedConnector {
  readonly connector: KeystoreConnector;
  readonly keystore: KeystoreRecord;
  release(): void;
}

export class KeystoreService {
  readonly #cache = new Map<string, { version: number; connector: KeystoreConnector }>();
  readonly #policies = new Map<string, { size: number; policy: CallPolicy }>();

  constructor(private readonly deps: KeystoreServiceDeps) {}

  async get(vault: string, id: string): Promise<Keystore> {
    return this.#toKeystore(await this.getRecord(vault, id));
  }

  async getRecord(vault: string, id: string): Promise<StoredRecord<KeystoreRecord>> {
    const rec = await this.deps.store.get<KeystoreRecord>(storeKeys.keystore(vault, id));
    if (!rec) {
      await this.#requireVault(vault);
      throw new NotFoundError(formatKeystoreName(vault, id), "keystore");
    }
    return rec;
  }

  async list(vault: string, options: { pageSize: number; startAfter?: string }): Promise<{ keystores: Keystore[]; nextStartAfter?: string }> {
    await this.#requireVault(vault);
    const prefix = storeKeys.keystorePrefix(vault);
    const page = await this.deps.store.list<KeystoreRecord>(prefix, { pageSize: options.pageSize, ...(options.startAfter ? { startAfter: prefix + options.startAfter } : {}) });
    const keystores = await Promise.all(page.records.map((r) => this.#toKeystore(r)));
    const last = page.records[page.records.length - 1];
    return page.nextStartAfter && last ? { keystores, nextStartAfter: last.value.id } : { keystores };
  }

  async create(actor: Actor, input: CreateKeystoreInput): Promise<Keystore> {
    const name = formatKeystoreName(input.vault, input.keystoreId);
    const fingerprint = requestFingerprint({ m: "CreateKeystore", vault: input.vault, id: input.keystoreId, type: input.type, settings: input.settings, options: optionsOf(input) });
    if (input.requestId && !input.validateOnly && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.vault, input.keystoreId);
    const factory = this.#factory(input.type);
    const prefix = `keystore.${CONFIG_FIELD[input.type]}`;
    const stored = input.credentialSource === "STORED";
    const violations: FieldViolation[] = factory
      .validate(input.settings, stored ? input.credentials : undefined)
      .map((p) => ({ field: `${prefix}.${p.field}`, description: p.description }));
    for (const f of Object.keys(input.credentials)) {
      if (!factory.credentialFields.includes(f)) violations.push({ field: `${prefix}.${f}`, description: "is not a credential field of this keystore type" });
      else if (!stored) violations.push({ field: `${prefix}.${f}`, description: "must not be set when credential_source is CALLER (the caller sends its own per call)" });
    }
    checkOptions(input, violations);
    if (violations.length > 0) throw new InvalidArgumentError(violations);

    const now = this.deps.clock.now().toISOString();
    const record: KeystoreRecord = {
      vault: input.vault,
      id: input.keystoreId,
      type: input.type,
      settings: { ...input.settings },
      credentials: null,
      ...optionsOf(input),
      lastTestResult: "",
      lastTestTime: null,
      createTime: now,
      updateTime: now,
      incarnation: this.deps.ids.uuid(),
    };
    if (input.validateOnly) {
      await this.#requireVault(input.vault);
      const creds = stored ? input.credentials : input.callerCredentials;
      if (!creds) throw credentialsRequired(name);
      const result = await this.#test(record, creds);
      record.lastTestResult = result;
      record.lastTestTime = now;
      return this.#toKeystore({ key: storeKeys.keystore(input.vault, input.keystoreId), version: 0, value: record }, stored);
    }
    if (stored) record.credentials = this.deps.cipher.seal(input.credentials, name);
    return this.deps.vaultLock.shared(input.vault, async () => {
      await this.#requireVault(input.vault);
      if (await this.deps.store.get(storeKeys.keystore(input.vault, input.keystoreId))) throw new AlreadyExistsError(name, `keystore ${name} already exists`);
      const mutations: Mutation[] = [{ op: "put", key: storeKeys.keystore(input.vault, input.keystoreId), value: record as unknown as JsonValue, expectVersion: 0 }];
      if (input.requestId) mutations.push(requestMutation(input.requestId, fingerprint, name, now));
      const event = this.deps.audit.event(actor, name, input.vault, { type: input.type, credentialSource: input.credentialSource, settings: Object.keys(input.settings).sort().join(",") });
      try {
        await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
      } catch (e) {
        if (e instanceof StoreConflictError) {
          if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.vault, input.keystoreId);
          throw new AlreadyExistsError(name, `keystore ${name} already exists`);
        }
        throw e;
      }
      return this.get(input.vault, input.keystoreId);
    });
  }

  async update(actor: Actor, vault: string, id: string, changes: KeystoreChanges, etag: string | undefined, validateOnly: boolean, callerCredentials?: ConnectorCredentials): Promise<Keystore> {
    const name = formatKeystoreName(vault, id);
    return this.deps.keystoreLock.run(storeKeys.keystore(vault, id), async () => {
      const rec = await this.getRecord(vault, id);
      if (etag && etag !== etagOf(rec)) throw new AbortedError(name);
      const r = rec.value;
      const factory = this.#factory(r.type);
      const prefix = `keystore.${CONFIG_FIELD[r.type]}`;
      const settings: Record<string, string | number | boolean> = { ...r.settings };
      for (const [k, v] of Object.entries(changes.settings ?? {})) {
        if (v === "") delete settings[k];
        else settings[k] = v;
      }
      const options: KeystoreOptions = { ...optionsOf(r), ...(changes.options ?? {}) };
      const stored = options.credentialSource === "STORED";
      let creds: Record<string, string> | undefined;
      if (stored) {
        creds = r.credentials ? this.deps.cipher.open(r.credentials, name) : {};
        for (const [k, v] of Object.entries(changes.credentials ?? {})) {
          if (v === "") delete creds[k];
          else creds[k] = v;
        }
      }
      const violations: FieldViolation[] = factory.validate(settings, creds).map((p) => ({ field: `${prefix}.${p.field}`, description: p.description }));
      for (const f of Object.keys(changes.credentials ?? {})) {
        if (!factory.credentialFields.includes(f)) violations.push({ field: `${prefix}.${f}`, description: "is not a credential field of this keystore type" });
        else if (!stored) violations.push({ field: `${prefix}.${f}`, description: "must not be set when credential_source is CALLER" });
      }
      checkOptions(options, violations);
      if (violations.length > 0) throw new InvalidArgumentError(violations);
      const now = this.deps.clock.now().toISOString();
      const next: KeystoreRecord = { ...r, ...options, settings, credentials: stored && creds ? this.deps.cipher.seal(creds, name) : null, updateTime: now };
      if (validateOnly) {
        const use = stored ? creds : callerCredentials;
        if (!use) throw credentialsRequired(name);
        next.lastTestResult = await this.#test(next, use);
        next.lastTestTime = now;
        return this.#toKeystore({ ...rec, value: next });
      }
      const fields = [...Object.keys(changes.settings ?? {}), ...Object.keys(changes.credentials ?? {}), ...Object.keys(changes.options ?? {})].sort().join(",");
      await this.#commit(name, [{ op: "put", key: rec.key, value: next as unknown as JsonValue, expectVersion: rec.version }], this.deps.audit.event(actor, name, vault, { fields }));
      this.#evict(rec.key);
      return this.get(vault, id);
    });
  }

  async delete(actor: Actor, vault: string, id: string, etag: string | undefined): Promise<void> {
    const name = formatKeystoreName(vault, id);
    await this.deps.keystoreLock.run(storeKeys.keystore(vault, id), async () => {
      const rec = await this.getRecord(vault, id);
      if (etag && etag !== etagOf(rec)) throw new AbortedError(name);
      const used = await this.#distributionCount(vault, id);
      if (used > 0) {
        throw new FailedPreconditionError("KEYSTORE_IN_USE", `keystore ${name} still has ${used} distribution(s); delete them first`, { distributions: String(used) });
      }
      await this.#commit(name, [{ op: "delete", key: rec.key, expectVersion: rec.version }], this.deps.audit.event(actor, name, vault, { type: rec.value.type }));
      this.#evict(rec.key);
    });
  }

  /** Tests the connection and records the outcome on the keystore. Cloud refusals come back as `ok: false`. */
  async test(actor: Actor, vault: string, id: string, callerCredentials?: ConnectorCredentials): Promise<{ ok: boolean; detail: string; cloudErrorCode: string }> {
    const name = formatKeystoreName(vault, id);
    return this.deps.keystoreLock.run(storeKeys.keystore(vault, id), async () => {
      const rec = await this.getRecord(vault, id);
      const creds = this.#credentialsOf(rec.value, callerCredentials);
      let out: { ok: boolean; detail: string; cloudErrorCode: string };
      try {
        out = { ok: true, detail: await this.#test(rec.value, creds), cloudErrorCode: "" };
      } catch (e) {
        const code = e instanceof Error && "metadata" in e ? ((e as { metadata: Record<string, string> }).metadata.cloudErrorCode ?? "") : "";
        if (!(e instanceof InvalidArgumentError || e instanceof FailedPreconditionError || (e instanceof Error && e.name === "UnavailableError"))) throw e;
        out = { ok: false, detail: e.message, cloudErrorCode: code };
      }
      const now = this.deps.clock.now().toISOString();
      const next: KeystoreRecord = { ...rec.value, lastTestResult: out.ok ? "OK" : out.detail.slice(0, 500), lastTestTime: now };
      await this.#commit(name, [{ op: "put", key: rec.key, value: next as unknown as JsonValue, expectVersion: rec.version }], this.deps.audit.event(actor, name, vault, { ok: String(out.ok), ...(out.cloudErrorCode ? { cloudErrorCode: out.cloudErrorCode } : {}) }, "OK"));
      return out;
    });
  }

  /**
   * A connector for the keystore: cached for stored credentials; built per call (and closed on release) for the
   * caller's. FAILED_PRECONDITION CLOUD_CREDENTIALS_REQUIRED when the keystore needs the caller's and has none.
   */
  async open(vault: string, id: string, callerCredentials?: ConnectorCredentials): Promise<OpenedConnector> {
    const rec = await this.getRecord(vault, id);
    const r = rec.value;
    if (r.credentialSource === "CALLER") {
      const connector = this.#build(rec.key, r, this.#credentialsOf(r, callerCredentials));
      return { connector, keystore: r, release: () => connector.close() };
    }
    const cached = this.#cache.get(rec.key);
    if (cached && cached.version === rec.version) return { connector: cached.connector, keystore: r, release: () => undefined };
    cached?.connector.close();
    const connector = this.#build(rec.key, r, this.#credentialsOf(r, undefined));
    this.#cache.set(rec.key, { version: rec.version, connector });
    return { connector, keystore: r, release: () => undefined };
  }

  close(): void {
    for (const c of this.#cache.values()) c.connector.close();
    this.#cache.clear();
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #factory(type: KeystoreType) {
    const f = this.deps.registry.get(type);
    if (!f) {
      throw new FailedPreconditionError("KEYSTORE_TYPE_NOT_SUPPORTED", `this daemon has no connector for ${type} keystores yet (supported: ${this.deps.registry.types().join(", ")})`, { keystoreType: type });
    }
    return f;
  }

  #credentialsOf(r: KeystoreRecord, caller: ConnectorCredentials | undefined): ConnectorCredentials {
    const name = formatKeystoreName(r.vault, r.id);
    if (r.credentialSource === "CALLER") {
      const fields = this.#factory(r.type).credentialFields;
      if (!caller || !fields.some((f) => (caller[f] ?? "") !== "")) throw credentialsRequired(name, fields);
      return caller;
    }
    return r.credentials ? this.deps.cipher.open(r.credentials, name) : {};
  }

  #policy(storeKey: string, size: number): CallPolicy {
    const p = this.#policies.get(storeKey);
    if (p && p.size === size) return p.policy;
    const policy = makeCallPolicy({ maxConcurrency: size, attemptTimeoutMs: this.deps.cloudAttemptTimeoutMs, deadlineMs: this.deps.cloudDeadlineMs });
    this.#policies.set(storeKey, { size, policy });
    return policy;
  }

  #build(storeKey: string, r: KeystoreRecord, creds: ConnectorCredentials): KeystoreConnector {
    return this.#factory(r.type).create(r.settings, creds, this.#policy(storeKey, r.maxConcurrency));
  }

  async #test(r: KeystoreRecord, creds: ConnectorCredentials): Promise<string> {
    const connector = this.#factory(r.type).create(r.settings, creds, makeCallPolicy({ maxConcurrency: 1, attemptTimeoutMs: this.deps.cloudAttemptTimeoutMs, deadlineMs: this.deps.cloudDeadlineMs }));
    try {
      return (await connector.testConnection()).detail;
    } catch (e) {
      throw fromConnectorError(e, `keystore.${CONFIG_FIELD[r.type]}`);
    } finally {
      connector.close();
    }
  }

  #evict(storeKey: string): void {
    this.#cache.get(storeKey)?.connector.close();
    this.#cache.delete(storeKey);
  }

  async #distributionCount(vault: string, id: string): Promise<number> {
    let n = 0;
    let after: string | undefined;
    do {
      const page = await this.deps.store.list<{ keystore: string }>(storeKeys.distributionVaultPrefix(vault), { pageSize: 1000, ...(after ? { startAfter: after } : {}) });
      n += page.records.filter((r) => r.value.keystore === id).length;
      after = page.nextStartAfter;
    } while (after);
    return n;
  }

  async #toKeystore(rec: StoredRecord<KeystoreRecord>, hasCredentials?: boolean): Promise<Keystore> {
    const r = rec.value;
    return {
      name: formatKeystoreName(r.vault, r.id),
      vault: r.vault,
      id: r.id,
      type: r.type,
      settings: { ...r.settings },
      ...optionsOf(r),
      hasCredentials: hasCredentials ?? r.credentials !== null,
      lastTestResult: r.lastTestResult,
      ...(r.lastTestTime ? { lastTestTime: new Date(r.lastTestTime) } : {}),
      createTime: new Date(r.createTime),
      updateTime: new Date(r.updateTime),
      etag: rec.version === 0 ? "" : etagOf(rec),
      distributionCount: rec.version === 0 ? 0 : await this.#distributionCount(r.vault, r.id),
    };
  }

  async #commit(name: string, mutations: Mutation[], event: AuditEventInput): Promise<void> {
    try {
      await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
    } catch (e) {
      if (e instanceof StoreConflictError) throw new AbortedError(name, `${name} was changed concurrently; read it again and retry`);
      throw e;
    }
  }

  async #requireVault(vault: string): Promise<void> {
    if (!(await this.deps.store.get(storeKeys.vault(vault)))) throw new NotFoundError(formatVaultName(vault), "vault");
  }

}

function optionsOf(o: KeystoreOptions): KeystoreOptions {
  return {
    credentialSource: o.credentialSource,
    allowSoftwareWrap: o.allowSoftwareWrap,
    deletionWindowDays: o.deletionWindowDays,
    maxConcurrency: o.maxConcurrency,
    description: o.description,
  };
}

function checkOptions(o: KeystoreOptions, v: FieldViolation[]): void {
  if (!Number.isInteger(o.deletionWindowDays) || o.deletionWindowDays < 0 || o.deletionWindowDays > 90) v.push({ field: "keystore.deletion_window_days", description: "must be 0 (the cloud's minimum) or 1-90 days" });
  if (!Number.isInteger(o.maxConcurrency) || o.maxConcurrency < 1 || o.maxConcurrency > 64) v.push({ field: "keystore.max_concurrency", description: "must be 1-64" });
  if (o.description.length > 1024) v.push({ field: "keystore.description", description: "must be at most 1024 characters" });
}

/** UNAUTHENTICATED: the cloud authorizes each caller itself, and this call brought no credentials of its own. */
function credentialsRequired(name: string, fields?: readonly string[]): UnauthenticatedError {
  const which = fields && fields.length > 0 ? ` with one of ${fields.join(", ")}` : "";
  return new UnauthenticatedError(
    `keystore ${name} takes the caller's own cloud credentials (credential source CALLER) and this call carried none: ` +
      `send them in the x-mcko-cloud-credentials metadata (base64 of a JSON object${which}, e.g. {"iam_token": "…"} for IBM Key Protect)`,
    "CLOUD_CREDENTIALS_REQUIRED",
    { resource: name },
  );
}

export function etagOf(rec: { version: number; value: { incarnation: string } }): string {
  return createHash("sha256").update(`${rec.value.incarnation}:${rec.version}`).digest("base64url").slice(0, 16);
}
