/**
 * Keys and their versions: creation in the HSM, the NIST lifecycle, rotation, scheduled activation, deactivation
 * and rotation, destruction of material. Every state-changing method loads the record, checks the transition in
 * the pure table (key-state.ts), does the HSM work, then writes the record and its audit event in one atomic,
 * durable store commit; it returns only after that commit.
 */
import { createHash } from "node:crypto";
import type { Hsm, KeyAlgorithm, WrappedKey } from "../hsm/hsm.js";
import { kcvMethod } from "../hsm/hsm.js";
import { StoreConflictError, type JsonValue, type Mutation, type Store, type StoredRecord } from "../store/store.js";
import type { AuditLog, Actor } from "./audit/audit-log.js";
import { toJournalEntry, type AuditEventInput } from "./audit/chain.js";
import type { Clock, IdSource } from "./clock.js";
import {
  AbortedError,
  AlreadyExistsError,
  FailedPreconditionError,
  InvalidArgumentError,
  NotFoundError,
} from "./errors.js";
import { parseFilter } from "./filter.js";
import { allowedTargets, isDestroyed, isRotatable, transitionResult, type KeyState } from "./key-state.js";
import type { KeyedLock, KeyedRwLock } from "./locks.js";
import { formatKeyName, formatVaultName, storeKeys } from "./names.js";
import { isReplay, requestFingerprint, requestMutation } from "./requests.js";

export interface KeyVersion {
  readonly number: number;
  readonly kcv: string;
  readonly kcvMethod: string;
  readonly createTime: Date;
  readonly publicKey?: Buffer;
  readonly destroyTime?: Date;
}

export interface Key {
  readonly name: string;
  readonly vault: string;
  readonly id: string;
  readonly algorithm: KeyAlgorithm;
  readonly state: KeyState;
  readonly versions: readonly KeyVersion[];
  readonly primaryVersion: number;
  readonly activationTime?: Date;
  readonly deactivationTime?: Date;
  readonly rotationPeriodSeconds?: number;
  readonly nextRotationTime?: Date;
  readonly labels: Readonly<Record<string, string>>;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly etag: string;
  readonly protectionLevel: string;
  readonly compromiseTime?: Date;
  readonly destroyTime?: Date;
}

/** Stored form of a version. `blob` is the RFC 5649 wrap under the master key; null once destroyed. */
export interface VersionRecord {
  number: number;
  kcv: string;
  kcvMethod: string;
  createTime: string;
  blob: string | null;
  masterKcv: string | null;
  publicKey: string | null;
  destroyTime: string | null;
}

export interface KeyRecord {
  vault: string;
  id: string;
  algorithm: KeyAlgorithm;
  state: KeyState;
  versions: VersionRecord[];
  primaryVersion: number;
  activationTime: string | null;
  deactivationTime: string | null;
  rotationPeriodSeconds: number | null;
  nextRotationTime: string | null;
  labels: Record<string, string>;
  createTime: string;
  updateTime: string;
  protectionLevel: string;
  compromiseTime: string | null;
  destroyTime: string | null;
  /** Random per creation, so etags never repeat across a delete and re-create. */
  incarnation: string;
}

export const MIN_ROTATION_PERIOD_SECONDS = 3600;
export const MAX_ROTATION_PERIOD_SECONDS = 100 * 365 * 86400;

export interface CreateKeyInput {
  readonly vault: string;
  readonly keyId: string;
  readonly algorithm: KeyAlgorithm;
  readonly activationTime?: Date;
  readonly deactivationTime?: Date;
  readonly rotationPeriodSeconds?: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly initialState?: "PRE_ACTIVATION" | "ACTIVE";
  readonly requestId?: string;
}

/** Fields present are changed; `null` clears an optional field. */
export interface KeyUpdate {
  readonly activationTime?: Date | null;
  readonly deactivationTime?: Date | null;
  readonly rotationPeriodSeconds?: number | null;
  readonly labels?: Readonly<Record<string, string>>;
}

/** What happened to a key, for listeners such as the distribution machinery. */
export type KeyChange =
  | { readonly kind: "created" }
  | { readonly kind: "state"; readonly from: KeyState; readonly to: KeyState }
  | { readonly kind: "rotated"; readonly version: number }
  | { readonly kind: "updated" }
  | { readonly kind: "deleted" };

export interface KeyChangeListener {
  /** Called after the change is durable. Must not throw; errors are the listener's to handle. */
  onKeyChanged(key: Key, change: KeyChange): void;
}

export interface KeyServiceDeps {
  readonly store: Store;
  readonly hsm: Hsm;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly ids: IdSource;
  readonly keyLock: KeyedLock;
  readonly vaultLock: KeyedRwLock;
  readonly listeners?: readonly KeyChangeListener[];
}

const FILTER_FIELDS = (f: string) => f === "state" || f === "algorithm" || /^labels\.[a-z][a-z0-9_-]{0,62}$/.test(f);

export class KeyService {
  constructor(private readonly deps: KeyServiceDeps) {}

  // ---- reads -------------------------------------------------------------------------------------------------

  async get(vault: string, id: string): Promise<Key> {
    const rec = await this.deps.store.get<KeyRecord>(storeKeys.key(vault, id));
    if (!rec) {
      await this.#requireVault(vault);
      throw new NotFoundError(formatKeyName(vault, id), "key");
    }
    return toKey(rec);
  }

  /** Internal: the stored record including wrapped blobs (for distribution and export paths, never the API). */
  async getRecord(vault: string, id: string): Promise<StoredRecord<KeyRecord>> {
    const rec = await this.deps.store.get<KeyRecord>(storeKeys.key(vault, id));
    if (!rec) throw new NotFoundError(formatKeyName(vault, id), "key");
    return rec;
  }

  /** Validates a filter without running it (so page tokens can be checked up front). */
  static checkFilter(filter: string): void {
    parseFilter(filter, FILTER_FIELDS);
  }

  async list(vault: string, options: { pageSize: number; startAfter?: string; filter: string }): Promise<{ keys: Key[]; nextStartAfter?: string }> {
    const terms = parseFilter(options.filter, FILTER_FIELDS);
    for (const t of terms) {
      if (t.field === "state" && !isKeyStateName(t.value)) throw new InvalidArgumentError([{ field: "filter", description: `unknown state ${JSON.stringify(t.value)}` }]);
    }
    await this.#requireVault(vault);
    const prefix = storeKeys.keyPrefix(vault);
    const matches = (r: KeyRecord) =>
      terms.every((t) => (t.field === "state" ? r.state === t.value : t.field === "algorithm" ? r.algorithm === t.value : r.labels[t.field.slice(7)] === t.value));
    const keys: Key[] = [];
    let after = options.startAfter ? prefix + options.startAfter : undefined;
    let scanned = 0;
    for (;;) {
      const page = await this.deps.store.list<KeyRecord>(prefix, { pageSize: 500, ...(after ? { startAfter: after } : {}) });
      for (const rec of page.records) {
        scanned += 1;
        after = rec.key;
        if (matches(rec.value)) {
          keys.push(toKey(rec));
          if (keys.length >= options.pageSize) {
            const more = page.nextStartAfter !== undefined || rec !== page.records[page.records.length - 1];
            return more ? { keys, nextStartAfter: rec.value.id } : { keys };
          }
        }
      }
      if (page.nextStartAfter === undefined) return { keys };
      // Bound the work of one call for very selective filters: hand back a token to continue.
      if (scanned >= 20_000) return { keys, nextStartAfter: after!.slice(prefix.length) };
    }
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  async create(actor: Actor, input: CreateKeyInput): Promise<Key> {
    const name = formatKeyName(input.vault, input.keyId);
    const fingerprint = input.requestId ? requestFingerprint({ m: "CreateKey", ...input, requestId: undefined }) : "";
    if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.vault, input.keyId);
    const now = this.deps.clock.now();
    checkSchedule(input.activationTime ?? null, input.deactivationTime ?? null, "key");
    let state: KeyState;
    if (input.initialState === "ACTIVE") {
      if (input.activationTime && input.activationTime > now) {
        throw new InvalidArgumentError([{ field: "initial_state", description: "cannot be ACTIVE when key.activation_time is in the future; leave it unset or use PRE_ACTIVATION" }]);
      }
      state = "ACTIVE";
    } else if (input.initialState === "PRE_ACTIVATION") state = "PRE_ACTIVATION";
    else state = input.activationTime && input.activationTime > now ? "PRE_ACTIVATION" : "ACTIVE";

    return this.deps.vaultLock.shared(input.vault, async () => {
      await this.#requireVault(input.vault);
      if (await this.deps.store.get(storeKeys.key(input.vault, input.keyId))) throw new AlreadyExistsError(name, `key ${name} already exists`);
      const wrapped = await this.deps.hsm.generateKey(input.algorithm);
      const nowIso = now.toISOString();
      const record: KeyRecord = {
        vault: input.vault,
        id: input.keyId,
        algorithm: input.algorithm,
        state,
        versions: [versionRecord(1, wrapped, nowIso)],
        primaryVersion: 1,
        activationTime: input.activationTime?.toISOString() ?? (state === "ACTIVE" ? nowIso : null),
        deactivationTime: input.deactivationTime?.toISOString() ?? null,
        rotationPeriodSeconds: input.rotationPeriodSeconds ?? null,
        nextRotationTime: input.rotationPeriodSeconds ? new Date(now.getTime() + input.rotationPeriodSeconds * 1000).toISOString() : null,
        labels: { ...input.labels },
        createTime: nowIso,
        updateTime: nowIso,
        protectionLevel: this.deps.hsm.kind,
        compromiseTime: null,
        destroyTime: null,
        incarnation: this.deps.ids.uuid(),
      };
      const event = this.deps.audit.event(actor, name, input.vault, {
        algorithm: input.algorithm,
        state,
        version: "1",
        kcv: wrapped.kcv,
        kcvMethod: kcvMethod(input.algorithm),
        protectionLevel: this.deps.hsm.kind,
      });
      const mutations: Mutation[] = [{ op: "put", key: storeKeys.key(input.vault, input.keyId), value: record as unknown as JsonValue, expectVersion: 0 }];
      if (input.requestId) mutations.push(requestMutation(input.requestId, fingerprint, name, nowIso));
      try {
        const result = await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
        const key = toKey({ key: storeKeys.key(input.vault, input.keyId), version: result.versions.get(storeKeys.key(input.vault, input.keyId)) ?? 1, value: record });
        this.#notify(key, { kind: "created" });
        return key;
      } catch (e) {
        if (e instanceof StoreConflictError) {
          // A concurrent create won: either the same request retried (return its result) or another one.
          if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) return this.get(input.vault, input.keyId);
          throw new AlreadyExistsError(name, `key ${name} already exists`);
        }
        throw e;
      }
    });
  }

  async update(actor: Actor, vault: string, id: string, update: KeyUpdate, etag: string | undefined): Promise<Key> {
    return this.#mutate(vault, id, etag, async (rec, now) => {
      const r = rec.value;
      if (isDestroyed(r.state)) {
        throw new FailedPreconditionError("KEY_DESTROYED", `key ${formatKeyName(vault, id)} is ${r.state}; its metadata can no longer change`, { state: r.state });
      }
      const next: KeyRecord = { ...r, labels: { ...r.labels } };
      const changed: string[] = [];
      if (update.activationTime !== undefined) {
        if (r.state !== "PRE_ACTIVATION" && update.activationTime?.toISOString() !== r.activationTime) {
          throw new FailedPreconditionError("KEY_ALREADY_ACTIVATED", `key ${formatKeyName(vault, id)} is ${r.state}: activation_time can only change while it is PRE_ACTIVATION`, { state: r.state });
        }
        next.activationTime = update.activationTime?.toISOString() ?? null;
        changed.push("activation_time");
      }
      if (update.deactivationTime !== undefined) {
        next.deactivationTime = update.deactivationTime?.toISOString() ?? null;
        changed.push("deactivation_time");
      }
      checkSchedule(next.activationTime ? new Date(next.activationTime) : null, next.deactivationTime ? new Date(next.deactivationTime) : null, "key");
      if (update.rotationPeriodSeconds !== undefined) {
        next.rotationPeriodSeconds = update.rotationPeriodSeconds;
        const last = new Date(r.versions.find((v) => v.number === r.primaryVersion)?.createTime ?? r.createTime);
        next.nextRotationTime = update.rotationPeriodSeconds ? new Date(Math.max(now.getTime(), last.getTime() + update.rotationPeriodSeconds * 1000)).toISOString() : null;
        changed.push("rotation_period");
      }
      if (update.labels !== undefined) {
        next.labels = { ...update.labels };
        changed.push("labels");
      }
      next.updateTime = now.toISOString();
      return { next, event: this.deps.audit.event(actor, formatKeyName(vault, id), vault, { fields: changed.join(",") }), change: { kind: "updated" } };
    });
  }

  async setState(actor: Actor, vault: string, id: string, target: KeyState, etag: string | undefined, reason: string): Promise<Key> {
    return this.#mutate(vault, id, etag, async (rec, now) => this.#transition(actor, rec.value, target, now, reason));
  }

  async rotate(actor: Actor, vault: string, id: string, etag: string | undefined, requestId: string | undefined): Promise<Key> {
    const fingerprint = requestFingerprint({ m: "RotateKey", vault, id });
    if (requestId && (await isReplay(this.deps.store, requestId, fingerprint))) return this.get(vault, id);
    return this.#mutate(
      vault,
      id,
      etag,
      async (rec, now) => {
        const r = rec.value;
        if (!isRotatable(r.state)) {
          throw new FailedPreconditionError(
            "KEY_NOT_ROTATABLE",
            `key ${formatKeyName(vault, id)} is ${r.state}; only PRE_ACTIVATION, ACTIVE and SUSPENDED keys can be rotated`,
            { state: r.state },
            [{ type: "KEY_STATE", subject: formatKeyName(vault, id), description: `state is ${r.state}` }],
          );
        }
        const wrapped = await this.deps.hsm.generateKey(r.algorithm);
        const number = Math.max(...r.versions.map((v) => v.number)) + 1;
        const nowIso = now.toISOString();
        const next: KeyRecord = {
          ...r,
          versions: [...r.versions, versionRecord(number, wrapped, nowIso)],
          primaryVersion: number,
          nextRotationTime: r.rotationPeriodSeconds ? new Date(now.getTime() + r.rotationPeriodSeconds * 1000).toISOString() : null,
          updateTime: nowIso,
        };
        const event = this.deps.audit.event(actor, formatKeyName(vault, id), vault, { version: String(number), kcv: wrapped.kcv, previousPrimary: String(r.primaryVersion) });
        return { next, event, change: { kind: "rotated", version: number } };
      },
      requestId ? requestMutation(requestId, fingerprint, formatKeyName(vault, id), this.deps.clock.now().toISOString()) : undefined,
    );
  }

  async delete(actor: Actor, vault: string, id: string, etag: string | undefined): Promise<void> {
    const name = formatKeyName(vault, id);
    await this.deps.keyLock.run(storeKeys.key(vault, id), async () => {
      const rec = await this.getRecord(vault, id);
      checkEtag(rec, etag, name);
      if (!isDestroyed(rec.value.state)) {
        throw new FailedPreconditionError(
          "KEY_NOT_DESTROYED",
          `key ${name} is ${rec.value.state}; only destroyed keys can be deleted. Destroy it first (SetKeyState to DEACTIVATED, then DESTROYED)`,
          { state: rec.value.state },
        );
      }
      const event = this.deps.audit.event(actor, name, vault, { state: rec.value.state });
      await this.commitOrAbort(name, [{ op: "delete", key: rec.key, expectVersion: rec.version }], event);
      this.#notify(toKey(rec), { kind: "deleted" });
    });
  }

  /**
   * Applies due scheduled transitions and rotations (activation, deactivation, rotation period). Returns how many
   * keys changed. Each change is audited as the `system` principal.
   */
  async runSchedule(actorFor: (action: string) => Actor): Promise<number> {
    const now = this.deps.clock.now();
    let changed = 0;
    for (const [storeKey, due] of this.#schedule) {
      if (due > now.getTime()) continue;
      const [, vault, id] = storeKey.split("/");
      try {
        const rec = await this.deps.store.get<KeyRecord>(storeKey);
        if (!rec) {
          this.#schedule.delete(storeKey);
          continue;
        }
        const r = rec.value;
        if (r.state === "PRE_ACTIVATION" && r.activationTime && Date.parse(r.activationTime) <= now.getTime()) {
          await this.setState(actorFor("system/activate"), vault!, id!, "ACTIVE", undefined, "scheduled activation_time reached");
          changed++;
        } else if ((r.state === "ACTIVE" || r.state === "SUSPENDED") && r.deactivationTime && Date.parse(r.deactivationTime) <= now.getTime()) {
          await this.setState(actorFor("system/deactivate"), vault!, id!, "DEACTIVATED", undefined, "scheduled deactivation_time reached");
          changed++;
        } else if (r.state === "ACTIVE" && r.nextRotationTime && Date.parse(r.nextRotationTime) <= now.getTime()) {
          await this.rotate(actorFor("system/rotate"), vault!, id!, undefined, undefined);
          changed++;
        } else {
          this.#trackSchedule(storeKey, r);
        }
      } catch {
        // Leave it scheduled; the next tick retries. Failures are in the log through the caller.
      }
    }
    return changed;
  }

  /** Rebuilds the schedule index from the store (on start). */
  async loadSchedule(vaults: readonly string[]): Promise<void> {
    for (const vault of vaults) {
      let after: string | undefined;
      do {
        const page = await this.deps.store.list<KeyRecord>(storeKeys.keyPrefix(vault), { pageSize: 1000, ...(after ? { startAfter: after } : {}) });
        for (const rec of page.records) this.#trackSchedule(rec.key, rec.value);
        after = page.nextStartAfter;
      } while (after);
    }
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  readonly #schedule = new Map<string, number>();

  #trackSchedule(storeKey: string, r: KeyRecord): void {
    const times: number[] = [];
    if (r.state === "PRE_ACTIVATION" && r.activationTime) times.push(Date.parse(r.activationTime));
    if ((r.state === "ACTIVE" || r.state === "SUSPENDED") && r.deactivationTime) times.push(Date.parse(r.deactivationTime));
    if (r.state === "ACTIVE" && r.nextRotationTime) times.push(Date.parse(r.nextRotationTime));
    if (times.length === 0) this.#schedule.delete(storeKey);
    else this.#schedule.set(storeKey, Math.min(...times));
  }

  async #transition(actor: Actor, r: KeyRecord, target: KeyState, now: Date, reason: string) {
    const name = formatKeyName(r.vault, r.id);
    const result = transitionResult(r.state, target);
    if (!result) {
      const allowed = allowedTargets(r.state);
      throw new FailedPreconditionError(
        "KEY_STATE_TRANSITION_NOT_ALLOWED",
        `key ${name} cannot go from ${r.state} to ${target}` + (allowed.length ? `; allowed from ${r.state}: ${allowed.join(", ")}` : `; ${r.state} is final`),
        { from: r.state, to: target },
        [{ type: "KEY_STATE", subject: name, description: `transition ${r.state} -> ${target} is not allowed by NIST SP 800-57` }],
      );
    }
    const nowIso = now.toISOString();
    const next: KeyRecord = { ...r, state: result, updateTime: nowIso };
    const details: Record<string, string> = { from: r.state, to: result };
    if (reason) details.reason = reason;
    if (result === "ACTIVE" && !r.activationTime) next.activationTime = nowIso;
    if (result === "ACTIVE" && r.state === "PRE_ACTIVATION") {
      next.activationTime = r.activationTime && Date.parse(r.activationTime) <= now.getTime() ? r.activationTime : nowIso;
      if (r.rotationPeriodSeconds) next.nextRotationTime = new Date(now.getTime() + r.rotationPeriodSeconds * 1000).toISOString();
    }
    if (result === "COMPROMISED") {
      next.compromiseTime = nowIso;
      details.alert = "KEY_COMPROMISED";
    }
    if (result === "DEACTIVATED" && (!r.deactivationTime || Date.parse(r.deactivationTime) > now.getTime())) next.deactivationTime = nowIso;
    if (isDestroyed(result)) {
      // Erase every version's material; keep the metadata (NIST: destroyed keys keep their attributes).
      next.versions = r.versions.map((v) => ({ ...v, blob: null, masterKcv: null, destroyTime: v.destroyTime ?? nowIso }));
      next.destroyTime = nowIso;
      next.nextRotationTime = null;
      details.versionsErased = String(r.versions.filter((v) => v.blob !== null).length);
    }
    if (result !== "ACTIVE") next.nextRotationTime = result === "SUSPENDED" ? r.nextRotationTime : null;
    return { next, event: this.deps.audit.event(actor, name, r.vault, details), change: { kind: "state", from: r.state, to: result } as KeyChange };
  }

  async #mutate(
    vault: string,
    id: string,
    etag: string | undefined,
    fn: (rec: StoredRecord<KeyRecord>, now: Date) => Promise<{ next: KeyRecord; event: AuditEventInput; change: KeyChange }>,
    extra?: Mutation,
  ): Promise<Key> {
    const storeKey = storeKeys.key(vault, id);
    const name = formatKeyName(vault, id);
    return this.deps.keyLock.run(storeKey, async () => {
      const rec = await this.getRecord(vault, id);
      checkEtag(rec, etag, name);
      const { next, event, change } = await fn(rec, this.deps.clock.now());
      const mutations: Mutation[] = [{ op: "put", key: storeKey, value: next as unknown as JsonValue, expectVersion: rec.version }];
      if (extra) mutations.push(extra);
      const result = await this.commitOrAbort(name, mutations, event);
      const key = toKey({ key: storeKey, version: result.versions.get(storeKey) ?? rec.version + 1, value: next });
      this.#trackSchedule(storeKey, next);
      this.#notify(key, change);
      return key;
    });
  }

  private async commitOrAbort(name: string, mutations: Mutation[], event: AuditEventInput) {
    try {
      return await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
    } catch (e) {
      if (e instanceof StoreConflictError) throw new AbortedError(name, `${name} was changed concurrently; read it again and retry`);
      throw e;
    }
  }

  #notify(key: Key, change: KeyChange): void {
    if (change.kind === "created") this.#trackSchedule(storeKeys.key(key.vault, key.id), fromKeyForSchedule(key));
    for (const l of this.deps.listeners ?? []) l.onKeyChanged(key, change);
  }

  async #requireVault(vault: string): Promise<void> {
    if (!(await this.deps.store.get(storeKeys.vault(vault)))) throw new NotFoundError(formatVaultName(vault), "vault");
  }

}


function versionRecord(number: number, w: WrappedKey, createTime: string): VersionRecord {
  return {
    number,
    kcv: w.kcv,
    kcvMethod: kcvMethod(w.algorithm),
    createTime,
    blob: w.blob.toString("base64"),
    masterKcv: w.masterKcv,
    publicKey: w.publicKey ? w.publicKey.toString("base64") : null,
    destroyTime: null,
  };
}

export function checkSchedule(activation: Date | null, deactivation: Date | null, prefix: string): void {
  if (activation && deactivation && deactivation <= activation) {
    throw new InvalidArgumentError([{ field: `${prefix}.deactivation_time`, description: "must be after activation_time" }]);
  }
}

function checkEtag(rec: StoredRecord<KeyRecord>, etag: string | undefined, name: string): void {
  if (etag && etag !== keyEtag(rec)) throw new AbortedError(name);
}

export function keyEtag(rec: { version: number; value: { incarnation: string } }): string {
  return createHash("sha256").update(`${rec.value.incarnation}:${rec.version}`).digest("base64url").slice(0, 16);
}

export function isKeyStateName(s: string): s is KeyState {
  return ["PRE_ACTIVATION", "ACTIVE", "SUSPENDED", "DEACTIVATED", "COMPROMISED", "DESTROYED", "DESTROYED_COMPROMISED"].includes(s);
}

/** The wrapped material of one version, for the HSM (BYOK pushes, verification). Undefined once destroyed. */
export function wrappedVersion(r: KeyRecord, number: number): WrappedKey | undefined {
  const v = r.versions.find((x) => x.number === number);
  if (!v || v.blob === null || v.masterKcv === null) return undefined;
  return {
    algorithm: r.algorithm,
    blob: Buffer.from(v.blob, "base64"),
    kcv: v.kcv,
    masterKcv: v.masterKcv,
    ...(v.publicKey ? { publicKey: Buffer.from(v.publicKey, "base64") } : {}),
  };
}

function fromKeyForSchedule(k: Key): KeyRecord {
  return {
    state: k.state,
    activationTime: k.activationTime?.toISOString() ?? null,
    deactivationTime: k.deactivationTime?.toISOString() ?? null,
    nextRotationTime: k.nextRotationTime?.toISOString() ?? null,
  } as KeyRecord;
}

export function toKey(rec: StoredRecord<KeyRecord>): Key {
  const r = rec.value;
  const date = (s: string | null) => (s ? new Date(s) : undefined);
  return {
    name: formatKeyName(r.vault, r.id),
    vault: r.vault,
    id: r.id,
    algorithm: r.algorithm,
    state: r.state,
    versions: r.versions.map((v) => ({
      number: v.number,
      kcv: v.kcv,
      kcvMethod: v.kcvMethod,
      createTime: new Date(v.createTime),
      ...(v.publicKey ? { publicKey: Buffer.from(v.publicKey, "base64") } : {}),
      ...(v.destroyTime ? { destroyTime: new Date(v.destroyTime) } : {}),
    })),
    primaryVersion: r.primaryVersion,
    ...(r.activationTime ? { activationTime: date(r.activationTime)! } : {}),
    ...(r.deactivationTime ? { deactivationTime: date(r.deactivationTime)! } : {}),
    ...(r.rotationPeriodSeconds ? { rotationPeriodSeconds: r.rotationPeriodSeconds } : {}),
    ...(r.nextRotationTime ? { nextRotationTime: date(r.nextRotationTime)! } : {}),
    labels: { ...r.labels },
    createTime: new Date(r.createTime),
    updateTime: new Date(r.updateTime),
    etag: keyEtag(rec),
    protectionLevel: r.protectionLevel,
    ...(r.compromiseTime ? { compromiseTime: date(r.compromiseTime)! } : {}),
    ...(r.destroyTime ? { destroyTime: date(r.destroyTime)! } : {}),
  };
}
