/** Vaults: the access boundary that holds keys (and later keystores). */
import { createHash } from "node:crypto";
import { StoreConflictError, type JsonValue, type Mutation, type Store, type StoredRecord } from "../store/store.js";
import type { Actor, AuditLog } from "./audit/audit-log.js";
import { toJournalEntry } from "./audit/chain.js";
import type { Clock, IdSource } from "./clock.js";
import { AbortedError, AlreadyExistsError, FailedPreconditionError, NotFoundError } from "./errors.js";
import { isReplay, requestFingerprint, requestMutation } from "./requests.js";
import type { KeyedRwLock } from "./locks.js";
import { formatVaultName, storeKeys } from "./names.js";

export interface Vault {
  readonly name: string;
  readonly id: string;
  readonly displayName: string;
  readonly description: string;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly etag: string;
  readonly keyCount: number;
}

export interface VaultRecord {
  id: string;
  displayName: string;
  description: string;
  createTime: string;
  updateTime: string;
  incarnation: string;
}

export interface VaultServiceDeps {
  readonly store: Store;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly ids: IdSource;
  readonly vaultLock: KeyedRwLock;
}

export class VaultService {
  constructor(private readonly deps: VaultServiceDeps) {}

  async get(id: string): Promise<Vault> {
    const rec = await this.deps.store.get<VaultRecord>(storeKeys.vault(id));
    if (!rec) throw new NotFoundError(formatVaultName(id), "vault");
    return this.#toVault(rec);
  }

  /** All vault ids (for start-up scans). */
  async ids(): Promise<string[]> {
    const out: string[] = [];
    let after: string | undefined;
    do {
      const page = await this.deps.store.list<VaultRecord>(storeKeys.vaultPrefix(), { pageSize: 1000, ...(after ? { startAfter: after } : {}) });
      out.push(...page.records.map((r) => r.value.id));
      after = page.nextStartAfter;
    } while (after);
    return out;
  }

  async list(options: { pageSize: number; startAfter?: string; visible: (vault: string) => boolean }): Promise<{ vaults: Vault[]; nextStartAfter?: string }> {
    const prefix = storeKeys.vaultPrefix();
    const vaults: Vault[] = [];
    let after = options.startAfter ? prefix + options.startAfter : undefined;
    for (;;) {
      const page = await this.deps.store.list<VaultRecord>(prefix, { pageSize: 500, ...(after ? { startAfter: after } : {}) });
      for (const rec of page.records) {
        after = rec.key;
        if (!options.visible(rec.value.id)) continue;
        vaults.push(await this.#toVault(rec));
        if (vaults.length >= options.pageSize) return { vaults, nextStartAfter: rec.value.id };
      }
      if (page.nextStartAfter === undefined) return { vaults };
    }
  }

  async create(actor: Actor, input: { id: string; displayName: string; description: string; requestId?: string }): Promise<Vault> {
    const name = formatVaultName(input.id);
    const fingerprint = requestFingerprint({ m: "CreateVault", ...input, requestId: undefined });
    if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.id);
    if (await this.deps.store.get(storeKeys.vault(input.id))) throw new AlreadyExistsError(name, `vault ${name} already exists`);
    const now = this.deps.clock.now().toISOString();
    const record: VaultRecord = { id: input.id, displayName: input.displayName, description: input.description, createTime: now, updateTime: now, incarnation: this.deps.ids.uuid() };
    const mutations: Mutation[] = [{ op: "put", key: storeKeys.vault(input.id), value: record as unknown as JsonValue, expectVersion: 0 }];
    if (input.requestId) mutations.push(requestMutation(input.requestId, fingerprint, name, now));
    const event = this.deps.audit.event(actor, name, input.id, { displayName: input.displayName });
    try {
      await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
    } catch (e) {
      if (e instanceof StoreConflictError) {
        if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.id);
        throw new AlreadyExistsError(name, `vault ${name} already exists`);
      }
      throw e;
    }
    return this.get(input.id);
  }

  async update(actor: Actor, id: string, changes: { displayName?: string; description?: string }, etag: string | undefined): Promise<Vault> {
    const name = formatVaultName(id);
    return this.deps.vaultLock.exclusive(id, async () => {
      const rec = await this.deps.store.get<VaultRecord>(storeKeys.vault(id));
      if (!rec) throw new NotFoundError(name, "vault");
      if (etag && etag !== vaultEtag(rec)) throw new AbortedError(name);
      const next: VaultRecord = {
        ...rec.value,
        ...(changes.displayName !== undefined ? { displayName: changes.displayName } : {}),
        ...(changes.description !== undefined ? { description: changes.description } : {}),
        updateTime: this.deps.clock.now().toISOString(),
      };
      const event = this.deps.audit.event(actor, name, id, { fields: Object.keys(changes).join(",") });
      await this.#commit(name, [{ op: "put", key: rec.key, value: next as unknown as JsonValue, expectVersion: rec.version }], event);
      return this.get(id);
    });
  }

  async delete(actor: Actor, id: string, etag: string | undefined): Promise<void> {
    const name = formatVaultName(id);
    await this.deps.vaultLock.exclusive(id, async () => {
      const rec = await this.deps.store.get<VaultRecord>(storeKeys.vault(id));
      if (!rec) throw new NotFoundError(name, "vault");
      if (etag && etag !== vaultEtag(rec)) throw new AbortedError(name);
      const keys = await this.deps.store.count(storeKeys.keyPrefix(id));
      if (keys > 0) {
        throw new FailedPreconditionError("VAULT_NOT_EMPTY", `vault ${name} still holds ${keys} key(s); destroy and delete them first`, { keys: String(keys) });
      }
      const keystores = await this.deps.store.count(storeKeys.keystorePrefix(id));
      if (keystores > 0) {
        throw new FailedPreconditionError("VAULT_NOT_EMPTY", `vault ${name} still has ${keystores} keystore(s); remove them first`, { keys: "0", keystores: String(keystores) });
      }
      const event = this.deps.audit.event(actor, name, id, {});
      await this.#commit(name, [{ op: "delete", key: rec.key, expectVersion: rec.version }], event);
    });
  }

  async #commit(name: string, mutations: Mutation[], event: ReturnType<AuditLog["event"]>): Promise<void> {
    try {
      await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
    } catch (e) {
      if (e instanceof StoreConflictError) throw new AbortedError(name, `${name} was changed concurrently; read it again and retry`);
      throw e;
    }
  }

  async #toVault(rec: StoredRecord<VaultRecord>): Promise<Vault> {
    const r = rec.value;
    return {
      name: formatVaultName(r.id),
      id: r.id,
      displayName: r.displayName,
      description: r.description,
      createTime: new Date(r.createTime),
      updateTime: new Date(r.updateTime),
      etag: vaultEtag(rec),
      keyCount: await this.deps.store.count(storeKeys.keyPrefix(r.id)),
    };
  }

}

function vaultEtag(rec: StoredRecord<VaultRecord>): string {
  return createHash("sha256").update(`${rec.value.incarnation}:${rec.version}`).digest("base64url").slice(0, 16);
}
