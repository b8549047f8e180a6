/**
 * Distributions: a vault key placed in one keystore, following the key. Every change to the cloud is brought about
 * by one idempotent routine, `converge`, which compares what the vault wants (from the key's state and primary
 * version) with what the record says the cloud holds and does the missing steps:
 *
 *   PRE_ACTIVATION → nothing pushed, the distribution waits (PENDING);
 *   ACTIVE → pushed and enabled; SUSPENDED, DEACTIVATED, COMPROMISED → disabled (never pushed when COMPROMISED);
 *   DESTROYED → imported material deleted and deletion scheduled at the keystore's window;
 *   a primary version not yet in the cloud → rotated in the cloud's own way.
 *
 * Crash safety of a push: the distribution is stored PENDING with the request id the cloud key will be tagged with
 * before the cloud is called (`pushStarted`), the cloud key id is stored as soon as the cloud returns it
 * (`pendingKey`), and a push that finds `pushStarted` without `pendingKey` first looks the key up by its tag. The
 * reconciler runs on start and periodically and converges every distribution whose record is PENDING or disagrees
 * with its key, so an interrupted push completes, and a key change made just before a crash still reaches the cloud.
 */
import { createHash } from "node:crypto";
import type { CloudKeyRef, ConnectorCredentials, KeystoreConnector } from "../cloud/connector.js";
import { HsmError, type Hsm } from "../hsm/hsm.js";
import type { Logger } from "../log/logger.js";
import { StoreConflictError, type JsonValue, type Mutation, type Store, type StoredRecord } from "../store/store.js";
import type { Actor, AuditLog } from "./audit/audit-log.js";
import { toJournalEntry } from "./audit/chain.js";
import { SYSTEM_PRINCIPAL } from "./authz.js";
import type { Clock, IdSource } from "./clock.js";
import { fromConnectorError } from "./cloud-errors.js";
import { AlreadyExistsError, FailedPreconditionError, MckoError, NotFoundError, UnavailableError } from "./errors.js";
import { isDestroyed, type KeyState } from "./key-state.js";
import { isReplay, requestFingerprint, requestMutation } from "./requests.js";
import { wrappedVersion, type Key, type KeyChange, type KeyChangeListener, type KeyRecord, type KeyService } from "./keys.js";
import { CONFIG_FIELD, type KeystoreRecord, type KeystoreService } from "./keystores.js";
import type { KeyedLock } from "./locks.js";
import { formatDistributionName, formatKeyName, formatKeystoreName, storeKeys } from "./names.js";

export type SyncState = "PENDING" | "IN_SYNC" | "DRIFTED" | "FAILED";
export type CloudState = "ABSENT" | "ENABLED" | "DISABLED" | "DELETION_SCHEDULED";

export interface DistributedVersion {
  number: number;
  cloudKeyId: string;
  versionId: string;
  pushTime: string;
}

export interface DistributionRecord {
  vault: string;
  key: string;
  keystore: string;
  cloudName: string;
  /** The request id the current (or in-flight) push tags its cloud key with. */
  requestId: string;
  /** A push was started and not finished: on retry, look for its cloud key by tag first. */
  pushStarted: boolean;
  /** The cloud key the in-flight push created (recorded before its material is imported). */
  pendingKey: CloudKeyRef | null;
  /** The cloud key carrying the primary version. */
  current: CloudKeyRef | null;
  /** Every cloud key of this distribution (older ones remain after rotation to a new key). */
  cloudKeys: CloudKeyRef[];
  alias: string;
  versions: DistributedVersion[];
  desired: CloudState;
  observed: CloudState;
  sync: SyncState;
  drift: string[];
  lastError: string;
  /** What the last change could not do as asked (e.g. a cloud that never deletes a key); absent in older records. */
  warnings?: string[];
  softwareStep: string;
  createTime: string;
  updateTime: string;
  lastSyncTime: string | null;
  incarnation: string;
}

export interface Distribution {
  readonly name: string;
  readonly keystoreName: string;
  readonly cloudName: string;
  readonly cloudKeyId: string;
  readonly cloudKeyUri: string;
  readonly cloudAlias: string;
  readonly desired: CloudState;
  readonly observed: CloudState;
  readonly sync: SyncState;
  readonly drift: readonly string[];
  readonly lastError: string;
  readonly warnings: readonly string[];
  readonly versions: readonly { number: number; cloudKeyId: string; versionId: string; pushTime: Date }[];
  readonly requestId: string;
  readonly softwareStep: string;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly lastSyncTime?: Date;
  readonly etag: string;
}

export interface DistributionServiceDeps {
  readonly store: Store;
  readonly hsm: Hsm;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly ids: IdSource;
  readonly keys: KeyService;
  readonly keystores: KeystoreService;
  readonly lock: KeyedLock;
  readonly log: Logger;
}

interface ConvergeOptions {
  readonly actor: Actor;
  readonly callerCredentials?: ConnectorCredentials;
  /** Recreate a cloud key that vanished and fix aliases (SyncDistribution, key changes); false = only report. */
  readonly repair: boolean;
}

const SYSTEM_ACTOR: Actor = { principal: SYSTEM_PRINCIPAL, method: "system/distribution" };

export function desiredFor(state: KeyState): CloudState {
  if (state === "PRE_ACTIVATION") return "ABSENT";
  if (state === "ACTIVE") return "ENABLED";
  if (isDestroyed(state)) return "DELETION_SCHEDULED";
  return "DISABLED";
}

export class DistributionService implements KeyChangeListener {
  readonly #inFlight = new Set<Promise<void>>();
  readonly #queued = new Set<string>();
  #closed = false;

  constructor(private readonly deps: DistributionServiceDeps) {}

  // ---- reads -------------------------------------------------------------------------------------------------

  async get(vault: string, key: string, keystore: string, live: { callerCredentials?: ConnectorCredentials } | undefined): Promise<Distribution> {
    const rec = await this.#getRecord(vault, key, keystore);
    if (!live) return toDistribution(rec);
    const opened = await this.#open(rec.value, live.callerCredentials);
    try {
      const keyRec = await this.deps.keys.getRecord(vault, key);
      const { observed, drift } = await this.#inspect(opened.connector, rec.value, keyRec.value);
      const r: DistributionRecord = { ...rec.value, observed, drift, lastSyncTime: this.deps.clock.now().toISOString() };
      if (drift.length > 0 && r.sync === "IN_SYNC") r.sync = "DRIFTED";
      return toDistribution({ ...rec, value: r });
    } finally {
      opened.release();
    }
  }

  async list(vault: string, key: string | undefined, options: { pageSize: number; startAfter?: string; keystore?: string }): Promise<{ distributions: Distribution[]; nextStartAfter?: string }> {
    if (key) await this.deps.keys.get(vault, key);
    const prefix = key ? storeKeys.distributionKeyPrefix(vault, key) : storeKeys.distributionVaultPrefix(vault);
    const out: Distribution[] = [];
    let after = options.startAfter ? prefix + options.startAfter : undefined;
    for (;;) {
      const page = await this.deps.store.list<DistributionRecord>(prefix, { pageSize: 500, ...(after ? { startAfter: after } : {}) });
      for (const rec of page.records) {
        after = rec.key;
        if (options.keystore && rec.value.keystore !== options.keystore) continue;
        out.push(toDistribution(rec));
        if (out.length >= options.pageSize) {
          const more = page.nextStartAfter !== undefined || rec !== page.records[page.records.length - 1];
          return more ? { distributions: out, nextStartAfter: rec.key.slice(prefix.length) } : { distributions: out };
        }
      }
      if (page.nextStartAfter === undefined) return { distributions: out };
    }
  }

  // ---- writes ------------------------------------------------------------------------------------------------

  /** CreateDistribution: record PENDING, then push (unless the key waits for activation). */
  async create(actor: Actor, input: { vault: string; key: string; keystore: string; cloudName: string; requestId?: string; callerCredentials?: ConnectorCredentials }): Promise<Distribution> {
    const name = formatDistributionName(input.vault, input.key, input.keystore);
    const fingerprint = requestFingerprint({ m: "CreateDistribution", vault: input.vault, key: input.key, keystore: input.keystore, cloudName: input.cloudName });
    if (input.requestId && (await isReplay(this.deps.store, input.requestId, fingerprint))) {
      return toDistribution(await this.#getRecord(input.vault, input.key, input.keystore));
    }
    const keyRec = await this.deps.keys.getRecord(input.vault, input.key);
    const opened = await this.deps.keystores.open(input.vault, input.keystore, input.callerCredentials);
    const storeKey = storeKeys.distribution(input.vault, input.key, input.keystore);
    try {
      const k = keyRec.value;
      const why = opened.connector.unsupportedReason(k.algorithm);
      if (why) {
        throw new FailedPreconditionError("ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE", `${why}; ${formatKeyName(input.vault, input.key)} cannot be distributed to ${formatKeystoreName(input.vault, input.keystore)}`, {
          algorithm: k.algorithm,
          keystoreType: opened.keystore.type,
        });
      }
      if (k.state === "COMPROMISED" || isDestroyed(k.state)) {
        throw new FailedPreconditionError("KEY_NOT_DISTRIBUTABLE", `key ${formatKeyName(input.vault, input.key)} is ${k.state} and cannot be pushed to a keystore`, { state: k.state });
      }
      const requestId = input.requestId ?? this.deps.ids.uuid();
      const now = this.deps.clock.now().toISOString();
      const record: DistributionRecord = {
        vault: input.vault,
        key: input.key,
        keystore: input.keystore,
        cloudName: input.cloudName || input.key,
        requestId,
        pushStarted: false,
        pendingKey: null,
        current: null,
        cloudKeys: [],
        alias: "",
        versions: [],
        desired: desiredFor(k.state),
        observed: "ABSENT",
        sync: "PENDING",
        drift: [],
        lastError: "",
        softwareStep: "",
        createTime: now,
        updateTime: now,
        lastSyncTime: null,
        incarnation: this.deps.ids.uuid(),
      };
      await this.deps.lock.run(storeKey, async () => {
        if (await this.deps.store.get(storeKey)) throw new AlreadyExistsError(name, `${formatKeyName(input.vault, input.key)} is already distributed to ${formatKeystoreName(input.vault, input.keystore)}`);
        const mutations: Mutation[] = [{ op: "put", key: storeKey, value: record as unknown as JsonValue, expectVersion: 0 }];
        if (input.requestId) mutations.push(requestMutation(input.requestId, fingerprint, name, now));
        const event = this.deps.audit.event(actor, name, input.vault, { op: "record", keystore: input.keystore, keystoreType: opened.keystore.type, requestId, keyState: k.state });
        try {
          await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
        } catch (e) {
          if (e instanceof StoreConflictError) throw new AlreadyExistsError(name, `${formatKeyName(input.vault, input.key)} is already distributed to ${formatKeystoreName(input.vault, input.keystore)}`);
          throw e;
        }
      });
    } finally {
      opened.release();
    }
    try {
      return await this.#converge(input.vault, input.key, input.keystore, { actor, repair: true, ...(input.callerCredentials ? { callerCredentials: input.callerCredentials } : {}) }, true);
    } catch (e) {
      await this.#rollBackRejectedPush(actor, input.vault, input.key, input.keystore, e, input.callerCredentials);
      throw e;
    }
  }

  /** SyncDistribution: repair the cloud copy from the vault. */
  async sync(actor: Actor, vault: string, key: string, keystore: string, callerCredentials?: ConnectorCredentials): Promise<Distribution> {
    await this.#getRecord(vault, key, keystore);
    return this.#converge(vault, key, keystore, { actor, repair: true, ...(callerCredentials ? { callerCredentials } : {}) }, true);
  }

  /** DeleteDistribution: delete the material in the cloud, schedule the keys' deletion, forget the distribution. */
  async delete(actor: Actor, vault: string, key: string, keystore: string, callerCredentials?: ConnectorCredentials): Promise<void> {
    const name = formatDistributionName(vault, key, keystore);
    const storeKey = storeKeys.distribution(vault, key, keystore);
    await this.deps.lock.run(storeKey, async () => {
      const rec = await this.#getRecord(vault, key, keystore);
      const r = rec.value;
      const keys = allCloudKeys(r);
      const warnings: string[] = [];
      if (keys.length > 0 || r.pushStarted) {
        const opened = await this.#open(r, callerCredentials);
        try {
          if (r.pushStarted && !r.pendingKey) keys.push(...(await this.#cloud(opened, () => opened.connector.findByRequestId(r.requestId))).filter((k) => !keys.some((x) => x.id === k.id)));
          for (const k of keys) warnings.push(...((await this.#cloud(opened, () => opened.connector.scheduleDeletion(k, opened.keystore.deletionWindowDays)))?.warnings ?? []));
        } finally {
          opened.release();
        }
      }
      if (warnings.length > 0) this.deps.log.warn({ distribution: name, warnings }, "the cloud could not delete everything as asked");
      const event = this.deps.audit.event(actor, name, vault, { op: "delete", cloudKeys: keys.map((k) => k.id).join(","), ...(warnings.length > 0 ? { warnings: warnings.join("; ") } : {}) });
      await this.deps.store.commit({ mutations: [{ op: "delete", key: storeKey, expectVersion: rec.version }], journal: [toJournalEntry(event)] });
    });
  }

  // ---- following keys, reconciling ---------------------------------------------------------------------------

  onKeyChanged(key: Key, change: KeyChange): void {
    if (change.kind === "updated" || change.kind === "created") return;
    this.#track(
      (async () => {
        const page = await this.deps.store.list<DistributionRecord>(storeKeys.distributionKeyPrefix(key.vault, key.id), { pageSize: 1000 });
        // All at once (a deleted key's distributions are converged as destroyed, then forgotten): COMPROMISED must reach every keystore without waiting for the others.
        await Promise.all(page.records.map((rec) => this.#kick(rec.value)));
      })(),
    );
  }

  /**
   * Converges every distribution that is PENDING or disagrees with its key (on start, and periodically). Returns
   * how many it touched. Failures are recorded on the distributions, never thrown.
   */
  async reconcile(vaults: readonly string[]): Promise<number> {
    let n = 0;
    for (const vault of vaults) {
      let after: string | undefined;
      do {
        const page = await this.deps.store.list<DistributionRecord>(storeKeys.distributionVaultPrefix(vault), { pageSize: 500, ...(after ? { startAfter: after } : {}) });
        for (const rec of page.records) {
          const keyRec = await this.deps.store.get<KeyRecord>(storeKeys.key(rec.value.vault, rec.value.key));
          if (!keyRec || this.#needsWork(rec.value, keyRec.value)) {
            n++;
            await this.#kick(rec.value);
          }
        }
        after = page.nextStartAfter;
      } while (after);
    }
    return n;
  }

  /** Waits for background work to finish and stops taking more (shutdown). */
  async drain(): Promise<void> {
    this.#closed = true;
    while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #needsWork(r: DistributionRecord, k: KeyRecord): boolean {
    if (r.sync === "PENDING" || r.pushStarted) return k.state !== "PRE_ACTIVATION" || r.current !== null;
    if (r.sync === "FAILED" || r.sync === "DRIFTED") return false; // needs a person (SyncDistribution)
    if (r.desired !== desiredFor(k.state)) return true;
    const want = desiredFor(k.state);
    if (want !== "ABSENT" && want !== "DELETION_SCHEDULED" && r.current && !r.versions.some((v) => v.number === k.primaryVersion)) return true;
    return false;
  }

  #track(p: Promise<unknown>): void {
    const done: Promise<void> = p.then(
      () => undefined,
      (e: unknown) => this.deps.log.error({ err: e instanceof Error ? e.message : String(e) }, "distribution background work failed"),
    );
    this.#inFlight.add(done);
    void done.finally(() => this.#inFlight.delete(done));
  }

  /** Converges one distribution in the background (coalescing requests that arrive while one is queued). */
  #kick(r: DistributionRecord): Promise<void> {
    const id = storeKeys.distribution(r.vault, r.key, r.keystore);
    if (this.#closed || this.#queued.has(id)) return Promise.resolve();
    this.#queued.add(id);
    const p = this.deps.lock
      .run(id, async () => {
        this.#queued.delete(id);
      })
      .then(() => this.#converge(r.vault, r.key, r.keystore, { actor: SYSTEM_ACTOR, repair: true }, false))
      .then(() => undefined);
    this.#track(p);
    return p.catch(() => undefined);
  }

  async #open(r: DistributionRecord, callerCredentials: ConnectorCredentials | undefined) {
    return this.deps.keystores.open(r.vault, r.keystore, callerCredentials);
  }

  /** Runs a connector call, turning connector failures into domain errors. */
  async #cloud<T>(opened: { keystore: KeystoreRecord }, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw fromConnectorError(e, `keystore.${CONFIG_FIELD[opened.keystore.type]}`);
    }
  }

  async #converge(vault: string, key: string, keystore: string, opts: ConvergeOptions, throwOnError: boolean): Promise<Distribution> {
    const name = formatDistributionName(vault, key, keystore);
    const storeKey = storeKeys.distribution(vault, key, keystore);
    return this.deps.lock.run(storeKey, async () => {
      const rec = await this.#getRecord(vault, key, keystore);
      let version = rec.version;
      const r: DistributionRecord = structuredClone(rec.value);
      const save = async (details: Record<string, string> | undefined, result = "OK", reason = ""): Promise<void> => {
        r.updateTime = this.deps.clock.now().toISOString();
        const journal = details ? [toJournalEntry(this.deps.audit.event(opts.actor, name, vault, details, result, reason))] : [];
        const out = await this.deps.store.commit({ mutations: [{ op: "put", key: storeKey, value: r as unknown as JsonValue, expectVersion: version }], journal });
        version = out.versions.get(storeKey) ?? version + 1;
      };
      const keyRec = await this.deps.store.get<KeyRecord>(storeKeys.key(vault, key));
      // A key whose metadata was deleted (after DESTROYED) leaves its distributions to be cleaned up: converge them as
      // destroyed (deletion scheduled in the cloud), then forget them.
      const keyGone = !keyRec;
      const k: KeyRecord = keyRec?.value ?? ({ vault, id: key, state: "DESTROYED", versions: [], primaryVersion: 0 } as unknown as KeyRecord);
      const details: Record<string, string> = { keystore, keyState: k.state };
      let opened;
      try {
        opened = await this.#open(r, opts.callerCredentials);
      } catch (e) {
        if (e instanceof MckoError && e.reason === "CLOUD_CREDENTIALS_REQUIRED" && !throwOnError) {
          r.sync = "DRIFTED";
          r.desired = desiredFor(k.state);
          r.lastError = `${e.message}; run SyncDistribution with them`;
          await save({ op: "follow", result: "credentials required" }, "FAILED_PRECONDITION", e.reason);
          return toDistribution({ ...rec, version, value: r });
        }
        throw e;
      }
      const c = opened.connector;
      try {
        r.desired = desiredFor(k.state);
        if (r.desired === "ABSENT" && !r.current && !r.pushStarted) {
          r.sync = "PENDING";
          r.observed = "ABSENT";
          r.lastError = "";
          if (rec.value.sync !== "PENDING" || rec.value.lastError !== "") await save(undefined);
          return toDistribution({ ...rec, version, value: r });
        }
        if (r.desired === "DELETION_SCHEDULED") {
          const keys = allCloudKeys(r);
          if (r.pushStarted && !r.pendingKey) keys.push(...(await this.#cloud(opened, () => c.findByRequestId(r.requestId))).filter((x) => !keys.some((y) => y.id === x.id)));
          const warnings: string[] = [];
          for (const ck of keys) warnings.push(...((await this.#cloud(opened, () => c.scheduleDeletion(ck, opened.keystore.deletionWindowDays)))?.warnings ?? []));
          r.warnings = warnings;
          if (warnings.length > 0) details.warnings = warnings.join("; ");
          r.pushStarted = false;
          r.pendingKey = null;
          r.cloudKeys = keys;
          r.observed = keys.length > 0 ? "DELETION_SCHEDULED" : "ABSENT";
          details.op = "schedule-deletion";
          details.cloudKeys = keys.map((x) => x.id).join(",");
          details.deletionWindowDays = String(opened.keystore.deletionWindowDays || 7);
        } else {
          let views = new Map<string, Awaited<ReturnType<KeystoreConnector["describe"]>>>();
          if (r.current) {
            const view = await this.#cloud(opened, () => c.describe(r.current!));
            views.set(r.current.id, view);
            if (!view.exists || view.state === "PENDING_DELETION") {
              // The cloud lost the key (deleted out of band): push the vault's copy again as a new cloud key.
              details.repairedMissing = r.current.id;
              r.cloudKeys = r.cloudKeys.filter((x) => x.id !== r.current!.id);
              r.current = null;
              r.versions = [];
              r.requestId = this.deps.ids.uuid();
            } else if (view.state === "PENDING_IMPORT") {
              details.reimported = r.current.id;
              r.pendingKey = r.current;
              r.pushStarted = true;
              r.current = null;
              r.versions = [];
            }
          }
          r.warnings = [];
          if (!r.current && k.state !== "COMPROMISED") {
            await this.#push(r, k, opened, c, save, details);
            views = new Map();
          } else if (r.current && !r.versions.some((v) => v.number === k.primaryVersion) && !isDestroyed(k.state)) {
            await this.#rotate(r, k, opened, c, details);
            views = new Map();
          } else if (r.current && opts.repair) {
            const target = await this.#cloud(opened, () => c.resolveName(r.cloudName));
            if (target?.id !== r.current.id) {
              const res = await this.#cloud(opened, () => c.push({ ...this.#pushBase(r, k, opened.keystore), existingKey: r.current! }));
              r.alias = res.alias;
              details.aliasRepaired = res.alias;
            }
          }
          // Enabled state follows the key, for every cloud key of the distribution; disable last (after pushes).
          const want = r.desired === "ENABLED";
          const changed: string[] = [];
          for (const ck of allCloudKeys(r)) {
            const view = views.get(ck.id) ?? (await this.#cloud(opened, () => c.describe(ck)));
            if (!view.exists) continue;
            const isEnabled = view.state === "ENABLED";
            if ((view.state === "ENABLED" || view.state === "DISABLED") && isEnabled !== want) {
              await this.#cloud(opened, () => c.setEnabled(ck, want));
              changed.push(ck.id);
            }
          }
          if (changed.length > 0) details.enabledSet = `${want}:${changed.join(",")}`;
          r.observed = r.current ? (want ? "ENABLED" : "DISABLED") : "ABSENT";
          details.op ??= changed.length > 0 ? (want ? "enable" : "disable") : "check";
        }
        r.sync = "IN_SYNC";
        r.drift = [];
        r.lastError = "";
        r.lastSyncTime = this.deps.clock.now().toISOString();
        const unchanged = details.op === "check" && rec.value.sync === "IN_SYNC" && rec.value.desired === r.desired;
        if (keyGone) {
          const event = this.deps.audit.event(opts.actor, name, vault, { ...details, op: "forget", reason: "key deleted" });
          await this.deps.store.commit({ mutations: [{ op: "delete", key: storeKey, expectVersion: version }], journal: [toJournalEntry(event)] });
        } else if (!unchanged) await save(details);
        return toDistribution({ ...rec, version, value: r });
      } catch (e) {
        const mapped = fromConnectorError(e, `keystore.${CONFIG_FIELD[opened.keystore.type]}`);
        const transient = mapped instanceof UnavailableError;
        r.sync = transient ? "PENDING" : "FAILED";
        r.lastError = mapped instanceof Error ? mapped.message.slice(0, 1000) : String(mapped);
        const reason = mapped instanceof MckoError ? mapped.reason : "INTERNAL";
        try {
          await save({ ...details, op: details.op ?? "converge", error: reason }, mapped instanceof MckoError ? mapped.kind : "INTERNAL", reason);
        } catch (saveErr) {
          this.deps.log.error({ err: saveErr instanceof Error ? saveErr.message : String(saveErr), distribution: name }, "could not record a distribution failure");
        }
        if (throwOnError) throw mapped;
        this.deps.log.warn({ distribution: name, reason }, "distribution could not be brought in line; recorded on the distribution");
        return toDistribution({ ...rec, version, value: r });
      } finally {
        opened.release();
      }
    });
  }

  #pushBase(r: DistributionRecord, k: KeyRecord, ks: KeystoreRecord) {
    const version = k.primaryVersion;
    return {
      requestId: r.requestId,
      algorithm: k.algorithm,
      cloudName: r.cloudName,
      deletionWindowDays: ks.deletionWindowDays,
      description: `MCKO ${formatKeyName(k.vault, k.id)} version ${version}`,
      tags: { "mcko:key": formatKeyName(k.vault, k.id), "mcko:version": String(version), "mcko:distribution": formatDistributionName(r.vault, r.key, r.keystore) },
      wrap: async (spki: Buffer, format: Parameters<Hsm["wrapForKeystore"]>[1]["format"]) => {
        const wrapped = wrappedVersion(k, version);
        if (!wrapped) throw new FailedPreconditionError("KEY_NOT_DISTRIBUTABLE", `version ${version} of ${formatKeyName(k.vault, k.id)} has no material`, { state: k.state });
        try {
          return await this.deps.hsm.wrapForKeystore(wrapped, { wrappingKeySpki: spki, format, allowSoftwareWrap: ks.allowSoftwareWrap });
        } catch (e) {
          if (e instanceof HsmError && e.reason === "HSM_MECHANISM_UNSUPPORTED") {
            throw new FailedPreconditionError("SOFTWARE_WRAP_NOT_ALLOWED", `${e.message} (keystore ${formatKeystoreName(ks.vault, ks.id)})`, { format, keystoreType: ks.type }, [
              { type: "KEYSTORE_ALLOW_SOFTWARE_WRAP", subject: formatKeystoreName(ks.vault, ks.id), description: `${format} needs allow_software_wrap on this HSM` },
            ]);
          }
          throw e;
        }
      },
      sealWithMaterial: async (iv: Buffer, plaintext: Buffer) => {
        const wrapped = wrappedVersion(k, version);
        if (!wrapped) throw new FailedPreconditionError("KEY_NOT_DISTRIBUTABLE", `version ${version} of ${formatKeyName(k.vault, k.id)} has no material`, { state: k.state });
        return this.deps.hsm.aesGcmEncrypt(wrapped, { iv, plaintext });
      },
    };
  }

  async #push(r: DistributionRecord, k: KeyRecord, opened: { keystore: KeystoreRecord }, c: KeystoreConnector, save: (d: Record<string, string> | undefined) => Promise<void>, details: Record<string, string>): Promise<void> {
    let existing = r.pendingKey ?? undefined;
    if (!existing && r.pushStarted) {
      // Interrupted after CreateKey but before its id was recorded: find the key by its request-id tag.
      const found = await this.#cloud(opened, () => c.findByRequestId(r.requestId));
      existing = found[0];
      for (const extra of found.slice(1)) await this.#cloud(opened, () => c.scheduleDeletion(extra, opened.keystore.deletionWindowDays));
      if (existing) details.resumedCloudKey = existing.id;
    }
    if (!r.pushStarted) {
      r.pushStarted = true;
      await save(undefined);
    }
    const result = await this.#cloud(opened, () =>
      c.push({
        ...this.#pushBase(r, k, opened.keystore),
        ...(existing ? { existingKey: existing } : {}),
        onKeyCreated: async (created) => {
          r.pendingKey = created;
          await save({ op: "cloud-key-created", cloudKeyId: created.id, requestId: r.requestId });
        },
      }),
    );
    r.current = result.key;
    if (!r.cloudKeys.some((x) => x.id === result.key.id)) r.cloudKeys.push(result.key);
    r.pendingKey = null;
    r.pushStarted = false;
    r.alias = result.alias;
    r.softwareStep = result.softwareStep;
    r.versions = [{ number: k.primaryVersion, cloudKeyId: result.key.id, versionId: result.versionId, pushTime: this.deps.clock.now().toISOString() }];
    details.op ??= "push";
    details.cloudKeyId = result.key.id;
    details.version = String(k.primaryVersion);
    details.softwareStep = result.softwareStep;
    details.requestId = r.requestId;
  }

  async #rotate(r: DistributionRecord, k: KeyRecord, opened: { keystore: KeystoreRecord }, c: KeystoreConnector, details: Record<string, string>): Promise<void> {
    const rotateRequestId = this.deps.ids.uuid();
    const result = await this.#cloud(opened, () => c.rotate({ ...this.#pushBase({ ...r, requestId: rotateRequestId }, k, opened.keystore), current: r.current! }));
    if (result.key.id !== r.current!.id) {
      r.cloudKeys.push(result.key);
      r.current = result.key;
      r.requestId = rotateRequestId;
    }
    r.alias = result.alias;
    r.softwareStep = result.softwareStep;
    r.versions.push({ number: k.primaryVersion, cloudKeyId: result.key.id, versionId: result.versionId, pushTime: this.deps.clock.now().toISOString() });
    details.op = "rotate";
    details.cloudKeyId = result.key.id;
    details.version = String(k.primaryVersion);
    details.softwareStep = result.softwareStep;
  }

  /** What the cloud holds compared with the vault's wishes (for GetDistribution read_live). */
  async #inspect(c: KeystoreConnector, r: DistributionRecord, k: KeyRecord): Promise<{ observed: CloudState; drift: string[] }> {
    const drift: string[] = [];
    const desired = desiredFor(k.state);
    if (!r.current) {
      if (desired === "ENABLED" || desired === "DISABLED") {
        if (k.state !== "COMPROMISED") drift.push("not pushed yet");
      }
      return { observed: r.observed === "DELETION_SCHEDULED" ? "DELETION_SCHEDULED" : "ABSENT", drift };
    }
    const view = await this.#cloudPlain(c, () => c.describe(r.current!));
    let observed: CloudState;
    if (!view.exists) {
      observed = "ABSENT";
      if (desired !== "DELETION_SCHEDULED") drift.push(`cloud key ${r.current.id} is missing`);
      return { observed, drift };
    }
    if (view.state === "PENDING_DELETION") observed = "DELETION_SCHEDULED";
    else if (view.state === "ENABLED") observed = "ENABLED";
    else observed = "DISABLED";
    if (view.state === "PENDING_IMPORT" && desired !== "DELETION_SCHEDULED") drift.push(`cloud key ${r.current.id} holds no key material (${view.rawState})`);
    if (desired !== observed && !(desired === "DISABLED" && view.state === "PENDING_IMPORT")) drift.push(`cloud key ${r.current.id} is ${observed}, the vault wants ${desired}`);
    if (desired === "ENABLED" || desired === "DISABLED") {
      if (view.tags["mcko:key"] !== formatKeyName(k.vault, k.id)) drift.push(`tag mcko:key is ${JSON.stringify(view.tags["mcko:key"] ?? null)}, expected ${formatKeyName(k.vault, k.id)}`);
      const target = await this.#cloudPlain(c, () => c.resolveName(r.cloudName));
      if (!target) drift.push(`alias ${r.alias} is missing`);
      else if (target.id !== r.current.id) drift.push(`alias ${r.alias} points to ${target.id}, not ${r.current.id}`);
      const primary = r.versions.find((v) => v.number === k.primaryVersion);
      if (!primary) drift.push(`primary version ${k.primaryVersion} is not in the cloud`);
      else if (view.currentVersionId && primary.versionId && view.currentVersionId !== primary.versionId) drift.push(`the cloud's current material ${view.currentVersionId} is not the vault's version ${k.primaryVersion} (${primary.versionId})`);
    }
    return { observed, drift };
  }

  async #cloudPlain<T>(c: KeystoreConnector, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw fromConnectorError(e, `keystore.${CONFIG_FIELD[c.type]}`);
    }
  }

  /**
   * After a failed first push: a rejection (not a transient failure) leaves nothing behind — the cloud key it
   * created, if any, is scheduled for deletion and the distribution is forgotten, so the store is as before.
   * Transient failures keep the PENDING record for the reconciler.
   */
  async #rollBackRejectedPush(actor: Actor, vault: string, key: string, keystore: string, err: unknown, callerCredentials: ConnectorCredentials | undefined): Promise<void> {
    if (err instanceof UnavailableError || !(err instanceof MckoError)) return;
    const storeKey = storeKeys.distribution(vault, key, keystore);
    await this.deps.lock.run(storeKey, async () => {
      const rec = await this.deps.store.get<DistributionRecord>(storeKey);
      if (!rec || rec.value.current) return;
      const r = rec.value;
      try {
        if (r.pendingKey || r.pushStarted) {
          const opened = await this.#open(r, callerCredentials);
          try {
            const keys = r.pendingKey ? [r.pendingKey] : await opened.connector.findByRequestId(r.requestId);
            for (const k of keys) await opened.connector.scheduleDeletion(k, opened.keystore.deletionWindowDays);
          } finally {
            opened.release();
          }
        }
      } catch (e) {
        // Credentials or settings the cloud refuses cannot have created anything; anything else might have.
        const mapped = fromConnectorError(e, "keystore");
        const refused = mapped instanceof MckoError && (mapped.reason === "CLOUD_CREDENTIALS_REJECTED" || mapped.kind === "INVALID_ARGUMENT");
        if (!refused) {
          this.deps.log.warn({ err: e instanceof Error ? e.message : String(e) }, "could not clean up after a rejected push; the reconciler keeps the record");
          return;
        }
      }
      const mutations: Mutation[] = [{ op: "delete", key: storeKey, expectVersion: rec.version }];
      const reqRec = await this.deps.store.get(storeKeys.request(r.requestId));
      if (reqRec) mutations.push({ op: "delete", key: reqRec.key, expectVersion: reqRec.version });
      const event = this.deps.audit.event(actor, formatDistributionName(vault, key, keystore), vault, { op: "roll-back", reason: err.reason, cloudKey: r.pendingKey?.id ?? "" });
      await this.deps.store.commit({ mutations, journal: [toJournalEntry(event)] });
    });
  }

  async #getRecord(vault: string, key: string, keystore: string): Promise<StoredRecord<DistributionRecord>> {
    const rec = await this.deps.store.get<DistributionRecord>(storeKeys.distribution(vault, key, keystore));
    if (!rec) {
      await this.deps.keys.get(vault, key);
      throw new NotFoundError(formatDistributionName(vault, key, keystore), "distribution");
    }
    return rec;
  }

}

function allCloudKeys(r: DistributionRecord): CloudKeyRef[] {
  const out = [...r.cloudKeys];
  if (r.pendingKey && !out.some((x) => x.id === r.pendingKey!.id)) out.push(r.pendingKey);
  return out;
}

export function toDistribution(rec: StoredRecord<DistributionRecord>): Distribution {
  const r = rec.value;
  return {
    name: formatDistributionName(r.vault, r.key, r.keystore),
    keystoreName: formatKeystoreName(r.vault, r.keystore),
    cloudName: r.cloudName,
    cloudKeyId: r.current?.id ?? "",
    cloudKeyUri: r.current?.uri ?? "",
    cloudAlias: r.alias,
    desired: r.desired,
    observed: r.observed,
    sync: r.sync,
    drift: [...r.drift],
    lastError: r.lastError,
    warnings: [...(r.warnings ?? [])],
    versions: r.versions.map((v) => ({ ...v, pushTime: new Date(v.pushTime) })),
    requestId: r.requestId,
    softwareStep: r.softwareStep,
    createTime: new Date(r.createTime),
    updateTime: new Date(r.updateTime),
    ...(r.lastSyncTime ? { lastSyncTime: new Date(r.lastSyncTime) } : {}),
    etag: createHash("sha256").update(`${r.incarnation}:${rec.version}`).digest("base64url").slice(0, 16),
  };
}
