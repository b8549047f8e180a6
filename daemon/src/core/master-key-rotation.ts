/**
 * Master-key rotation (`mcko hsm rotate-master`, MasterKeyService.RotateMasterKey): a new master key is made in the
 * HSM, every wrapped blob (each key version's blob in the vault store, and the internal keys) is re-wrapped under
 * it in the background, the recorded master KCV switches to it, and the old master is destroyed once nothing
 * refers to it.
 *
 * Resumable: the rotation's progress lives in the internal store (`internal/master-rotation`) and every step is
 * idempotent, so a crash at any point (SIGKILL included) resumes on the next start:
 *   CREATING    recorded before the HSM creates the new master; on resume the HSM's current master tells whether
 *               the creation landed (software keyring: the file names the new one current), else it is created.
 *   REWRAPPING  new master KCV and a cursor over the vault's key records (`key/…`, store-key order). A record is
 *               re-wrapped under its key lock in one vault commit; the cursor is committed after it, so a crash
 *               between the two only re-visits records whose blobs are already under the new master (skipped).
 *   FINISHING   after a final sweep (each vault under its exclusive lock, so no key creation that started under
 *               the old master is still in flight) found no blob under another master: the internal keys are
 *               re-wrapped and the master record switched in the same internal commit.
 *   DONE        the old master was destroyed (a repeat destroy after a crash finds it gone) and the end audited.
 * While a rotation is pending the daemon starts with the rotation's new master as the expected one (several
 * masters share the pkcs11 label then), see `startupMasterKcv`.
 *
 * A crash between the HSM's creation of the new master and the REWRAPPING commit: a software keyring then already
 * names the new master current, and it is adopted; a pkcs11 token holds an unrecorded master object beside the old
 * one, which wraps nothing (the CREATING record lists the masters that existed before) and is destroyed before a
 * new one is made.
 * Readers that hold a blob in memory across the old master's destruction (a BYOK push started before the end)
 * fail with HSM_MASTER_KEY_NOT_FOUND and must re-read the key record.
 */
import type { Hsm, MasterRotatableHsm, WrappedKey } from "../hsm/hsm.js";
import { HsmError, isMasterRotatable } from "../hsm/hsm.js";
import type { JsonValue, Store, StoredRecord } from "../store/store.js";
import { StoreConflictError } from "../store/store.js";
import type { Actor, AuditLog } from "./audit/audit-log.js";
import type { Clock, IdSource } from "./clock.js";
import { FailedPreconditionError, NotFoundError } from "./errors.js";
import { MASTER_RECORD_KEY, rewrapInternalKeys, type MasterRecord } from "./internal-keys.js";
import type { KeyRecord } from "./keys.js";
import type { KeyedLock, KeyedRwLock } from "./locks.js";
import { storeKeys } from "./names.js";

export const ROTATION_RECORD_KEY = "internal/master-rotation";

export type RotationState = "CREATING" | "REWRAPPING" | "FINISHING" | "DONE";

/** The stored rotation (one record: the latest rotation). */
export interface RotationRecord {
  id: string;
  state: RotationState;
  oldMasterKcv: string;
  /** Every master the HSM held before the new one was made (absent in records from before this field). */
  preexistingMasterKcvs?: string[];
  newMasterKcv: string | null;
  /** Last vault store key (`key/{vault}/{id}`) whose blobs are under the new master; null before the first. */
  cursor: string | null;
  keysTotal: number;
  keysDone: number;
  blobsRewrapped: number;
  requestedBy: string;
  createTime: string;
  updateTime: string;
  endTime: string | null;
  /** The last failure that stopped the background work (it resumes on the next start or RotateMasterKey). */
  lastError: string | null;
}

/** A rotation as the API shows it. */
export interface MasterKeyRotation {
  readonly name: string;
  readonly state: RotationState;
  readonly oldMasterKcv: string;
  readonly newMasterKcv: string;
  readonly keysTotal: number;
  readonly keysDone: number;
  readonly blobsRewrapped: number;
  readonly requestedBy: string;
  readonly createTime: Date;
  readonly updateTime: Date;
  readonly endTime?: Date;
  readonly lastError: string;
}

export function formatRotationName(id: string): string {
  return `masterKeyRotations/${id}`;
}

/** `masterKeyRotations/{id}` → id; undefined when the string is not such a name. */
export function parseRotationName(name: string): string | undefined {
  const m = /^masterKeyRotations\/([0-9a-f-]{36})$/.exec(name);
  return m ? m[1] : undefined;
}

/**
 * The master KCV the HSM must present at start: the pending rotation's new master once it exists, else the
 * recorded one. `newerMasterPossible` is true while a rotation was interrupted in CREATING: the HSM may then
 * already hold (and a software keyring already name as current) a new master whose KCV was never recorded.
 */
export async function startupMasterKcv(internal: Store): Promise<{ expected: string | undefined; newerMasterPossible: boolean }> {
  const master = (await internal.get<MasterRecord>(MASTER_RECORD_KEY))?.value.kcv;
  const rotation = (await internal.get<RotationRecord>(ROTATION_RECORD_KEY))?.value;
  if (rotation && rotation.state !== "DONE" && rotation.state !== "CREATING" && rotation.newMasterKcv) {
    return { expected: rotation.newMasterKcv, newerMasterPossible: false };
  }
  return { expected: master, newerMasterPossible: rotation?.state === "CREATING" };
}

export interface MasterKeyRotationDeps {
  /** The internal store: master record, internal keys, rotation record. */
  readonly internal: Store;
  /** The vault store: key records with their blobs. */
  readonly store: Store;
  readonly hsm: Hsm;
  readonly audit: AuditLog;
  readonly clock: Clock;
  readonly ids: IdSource;
  /** The KeyService's per-key lock: a re-wrap never races a key change. */
  readonly keyLock: KeyedLock;
  /** The vault lock (key creation holds it shared): the final sweep holds it exclusively per vault. */
  readonly vaultLock: KeyedRwLock;
  /** Key records re-wrapped per progress commit. */
  readonly batchSize: number;
  /**
   * Test hook for crash tests: after this many keys are done (and committed) the worker re-wraps one more key's
   * blobs without committing progress and then halts, leaving the rotation pending. Never set in production.
   */
  readonly haltAfterKeys?: number;
  /** Failures of the background work (it stops and resumes on the next start or request). */
  readonly onError: (message: string) => void;
}

const SYSTEM_ACTOR_METHOD = "system/master-key-rotation";

export class MasterKeyRotationService {
  readonly #deps: MasterKeyRotationDeps;
  #worker: Promise<void> | undefined;
  #stopping = false;
  #halted: (() => void) | undefined;
  /** Serialises starts (two concurrent RotateMasterKey calls must not make two masters). */
  #starting: Promise<unknown> = Promise.resolve();

  constructor(deps: MasterKeyRotationDeps) {
    this.#deps = deps;
  }

  /** The latest rotation, if any was ever started. */
  async latest(): Promise<MasterKeyRotation | undefined> {
    const rec = await this.#deps.internal.get<RotationRecord>(ROTATION_RECORD_KEY);
    return rec ? toRotation(rec.value) : undefined;
  }

  async get(id: string): Promise<MasterKeyRotation> {
    const rec = await this.#deps.internal.get<RotationRecord>(ROTATION_RECORD_KEY);
    if (!rec || rec.value.id !== id) throw new NotFoundError(formatRotationName(id), "master key rotation");
    return toRotation(rec.value);
  }

  /**
   * Starts a rotation: audits the start, records CREATING, has the HSM make the new master, records REWRAPPING
   * and starts the background work. Refused while another rotation is pending (its name is in the error).
   */
  async start(actor: Actor): Promise<MasterKeyRotation> {
    const run = this.#starting.then(() => this.#start(actor));
    this.#starting = run.catch(() => undefined);
    return run;
  }

  async #start(actor: Actor): Promise<MasterKeyRotation> {
    const hsm = this.#rotatableHsm();
    const existing = await this.#deps.internal.get<RotationRecord>(ROTATION_RECORD_KEY);
    if (existing && existing.value.state !== "DONE") {
      const name = formatRotationName(existing.value.id);
      this.resume();
      throw new FailedPreconditionError(
        "MASTER_KEY_ROTATION_IN_PROGRESS",
        `master key rotation ${name} is still running (${existing.value.state}); watch it with GetMasterKeyRotation`,
        { operation: name },
      );
    }
    const master = await this.#deps.internal.get<MasterRecord>(MASTER_RECORD_KEY);
    const oldMasterKcv = master?.value.kcv ?? (await hsm.masterKeyCheckValue());
    const id = this.#deps.ids.uuid();
    const name = formatRotationName(id);
    const now = this.#deps.clock.now().toISOString();
    await this.#deps.audit.record([this.#deps.audit.event(actor, name, null, { phase: "start", oldMasterKcv, backend: hsm.kind })]);
    const record: RotationRecord = {
      id,
      state: "CREATING",
      oldMasterKcv,
      preexistingMasterKcvs: await hsm.masterKeyCheckValues(),
      newMasterKcv: null,
      cursor: null,
      keysTotal: await this.#deps.store.count("key/"),
      keysDone: 0,
      blobsRewrapped: 0,
      requestedBy: actor.principal.subject,
      createTime: now,
      updateTime: now,
      endTime: null,
      lastError: null,
    };
    let version = await this.#put(record, existing?.version ?? 0);
    const newMasterKcv = await hsm.createMasterKey();
    version = await this.#put({ ...record, state: "REWRAPPING", newMasterKcv, updateTime: this.#deps.clock.now().toISOString() }, version);
    this.resume();
    return this.get(id);
  }

  /** Starts the background work if a rotation is pending and no worker runs (on daemon start, after a failure). */
  resume(): void {
    if (this.#worker || this.#stopping) return;
    this.#worker = this.#work()
      .catch((e: unknown) => this.#fail(e))
      .finally(() => (this.#worker = undefined));
  }

  /** Resolves when no background work runs (the rotation finished, stopped on an error, or none was pending). */
  async idle(): Promise<void> {
    await this.#worker;
  }

  /** Stops the background work between two steps and waits for it; the rotation stays pending. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#halted?.();
    await this.#worker;
  }

  async #work(): Promise<void> {
    const hsm = this.#rotatableHsm();
    for (;;) {
      if (this.#stopping) return;
      const rec = await this.#deps.internal.get<RotationRecord>(ROTATION_RECORD_KEY);
      if (!rec || rec.value.state === "DONE") return;
      const r = rec.value;
      if (r.state === "CREATING") {
        // Interrupted around the HSM's creation: a current master that did not exist before is the new one
        // (software keyring); masters made but never current nor recorded (pkcs11) wrap nothing and go.
        const known = new Set(r.preexistingMasterKcvs ?? [r.oldMasterKcv]);
        const current = await hsm.masterKeyCheckValue();
        let newMasterKcv: string;
        if (!known.has(current)) newMasterKcv = current;
        else {
          for (const kcv of await hsm.masterKeyCheckValues()) if (!known.has(kcv)) await hsm.destroyMasterKey(kcv);
          newMasterKcv = await hsm.createMasterKey();
        }
        await this.#put({ ...r, state: "REWRAPPING", newMasterKcv, updateTime: this.#now() }, rec.version);
      } else if (r.state === "REWRAPPING") {
        await this.#rewrapAll(hsm, rec);
      } else {
        await this.#finish(hsm, rec);
      }
    }
  }

  /** Walks the key records from the cursor, then sweeps until no blob is under another master; then FINISHING. */
  async #rewrapAll(hsm: MasterRotatableHsm, start: StoredRecord<RotationRecord>): Promise<void> {
    let rec = start;
    const target = rec.value.newMasterKcv!;
    for (;;) {
      if (this.#stopping) return;
      const page = await this.#deps.store.list<KeyRecord>("key/", { pageSize: this.#deps.batchSize, ...(rec.value.cursor ? { startAfter: rec.value.cursor } : {}) });
      if (page.records.length === 0) break;
      let blobs = 0;
      for (const key of page.records) {
        if (this.#deps.haltAfterKeys !== undefined && rec.value.keysDone >= this.#deps.haltAfterKeys) {
          await this.#rewrapRecord(hsm, key.key, target);
          await new Promise<void>((resolve) => (this.#halted = resolve));
          return;
        }
        blobs += await this.#rewrapRecord(hsm, key.key, target);
      }
      const last = page.records[page.records.length - 1]!.key;
      const keysDone = rec.value.keysDone + page.records.length;
      const next: RotationRecord = {
        ...rec.value,
        cursor: last,
        keysDone,
        keysTotal: Math.max(rec.value.keysTotal, keysDone),
        blobsRewrapped: rec.value.blobsRewrapped + blobs,
        updateTime: this.#now(),
        lastError: null,
      };
      rec = { ...rec, value: next, version: await this.#put(next, rec.version) };
      if (page.nextStartAfter === undefined) break;
    }
    // Keys created while the walk ran may have been generated under the old master just before the switch: sweep
    // each vault with creation paused until a sweep re-wraps nothing.
    let swept = 0;
    for (;;) {
      if (this.#stopping) return;
      const n = await this.#sweep(hsm, target);
      if (n === 0) break;
      swept += n;
    }
    const done: RotationRecord = { ...rec.value, state: "FINISHING", keysTotal: rec.value.keysDone, blobsRewrapped: rec.value.blobsRewrapped + swept, updateTime: this.#now() };
    await this.#put(done, rec.version);
  }

  async #sweep(hsm: MasterRotatableHsm, target: string): Promise<number> {
    let total = 0;
    let after: string | undefined;
    for (;;) {
      const vaults = await this.#deps.store.list<{ id?: string }>(storeKeys.vaultPrefix(), { pageSize: 100, ...(after ? { startAfter: after } : {}) });
      for (const v of vaults.records) {
        const vault = v.key.slice(storeKeys.vaultPrefix().length);
        total += await this.#deps.vaultLock.exclusive(vault, async () => {
          let n = 0;
          let keyAfter: string | undefined;
          for (;;) {
            const page = await this.#deps.store.list<KeyRecord>(storeKeys.keyPrefix(vault), { pageSize: 200, ...(keyAfter ? { startAfter: keyAfter } : {}) });
            for (const key of page.records) {
              if (key.value.versions.some((x) => x.blob !== null && x.masterKcv !== target)) n += await this.#rewrapRecord(hsm, key.key, target);
            }
            if (page.nextStartAfter === undefined) return n;
            keyAfter = page.nextStartAfter;
          }
        });
      }
      if (vaults.nextStartAfter === undefined) break;
      after = vaults.nextStartAfter;
    }
    // Records of vaults deleted meanwhile are gone with them; any other record under `key/` is checked too.
    return total;
  }

  /** Re-wraps every live blob of one key record under `target`, in one commit under the key's lock. */
  async #rewrapRecord(hsm: MasterRotatableHsm, storeKey: string, target: string): Promise<number> {
    return this.#deps.keyLock.run(storeKey, async () => {
      for (;;) {
        const rec = await this.#deps.store.get<KeyRecord>(storeKey);
        if (!rec) return 0;
        let count = 0;
        const versions = [];
        for (const v of rec.value.versions) {
          if (v.blob === null || v.masterKcv === null || v.masterKcv === target) {
            versions.push(v);
            continue;
          }
          const wrapped: WrappedKey = {
            algorithm: rec.value.algorithm,
            blob: Buffer.from(v.blob, "base64"),
            kcv: v.kcv,
            masterKcv: v.masterKcv,
            ...(v.publicKey ? { publicKey: Buffer.from(v.publicKey, "base64") } : {}),
          };
          const rewrapped = await hsm.rewrapToCurrentMaster(wrapped);
          if (rewrapped.masterKcv !== target) {
            throw new HsmError("HSM_MASTER_KEY_MISMATCH", `the HSM's current master is ${rewrapped.masterKcv}, not the rotation's new master ${target}`);
          }
          versions.push({ ...v, blob: rewrapped.blob.toString("base64"), masterKcv: rewrapped.masterKcv });
          count++;
        }
        if (count === 0) return 0;
        try {
          await this.#deps.store.commit({ mutations: [{ op: "put", key: storeKey, value: { ...rec.value, versions } as unknown as JsonValue, expectVersion: rec.version }] });
          return count;
        } catch (e) {
          if (!(e instanceof StoreConflictError)) throw e;
          // Changed outside the key lock (a create racing a delete): read it again.
        }
      }
    });
  }

  async #finish(hsm: MasterRotatableHsm, rec: StoredRecord<RotationRecord>): Promise<void> {
    const r = rec.value;
    const target = r.newMasterKcv!;
    const master = await this.#deps.internal.get<MasterRecord>(MASTER_RECORD_KEY);
    if (master?.value.kcv !== target) {
      // Internal keys and the master record switch together; the rotation record moves on in a later commit.
      await rewrapInternalKeys(this.#deps.internal, hsm, target, this.#deps.clock.now());
    }
    try {
      await hsm.destroyMasterKey(r.oldMasterKcv);
    } catch (e) {
      // Destroyed before a crash: nothing left to do.
      if (!(e instanceof HsmError && e.reason === "HSM_MASTER_KEY_NOT_FOUND")) throw e;
    }
    const name = formatRotationName(r.id);
    const actor: Actor = { principal: { subject: r.requestedBy, grants: [] }, method: SYSTEM_ACTOR_METHOD };
    await this.#deps.audit.record([
      this.#deps.audit.event(actor, name, null, {
        phase: "end",
        oldMasterKcv: r.oldMasterKcv,
        newMasterKcv: target,
        keys: String(r.keysDone),
        blobsRewrapped: String(r.blobsRewrapped),
        oldMasterDestroyed: "true",
      }),
    ]);
    const now = this.#now();
    await this.#put({ ...r, state: "DONE", updateTime: now, endTime: now, lastError: null }, rec.version);
  }

  async #fail(e: unknown): Promise<void> {
    const message = e instanceof Error ? e.message : String(e);
    this.#deps.onError(message);
    try {
      const rec = await this.#deps.internal.get<RotationRecord>(ROTATION_RECORD_KEY);
      if (rec && rec.value.state !== "DONE") await this.#put({ ...rec.value, lastError: message, updateTime: this.#now() }, rec.version);
    } catch {
      // The store is closing or failing; the error is in the log.
    }
  }

  #rotatableHsm(): MasterRotatableHsm {
    const hsm = this.#deps.hsm;
    if (!isMasterRotatable(hsm)) {
      throw new FailedPreconditionError("MASTER_KEY_ROTATION_UNSUPPORTED", `the ${hsm.kind} HSM backend cannot rotate its master key`, { backend: hsm.kind });
    }
    return hsm;
  }

  async #put(record: RotationRecord, expectVersion: number): Promise<number> {
    const result = await this.#deps.internal.commit({ mutations: [{ op: "put", key: ROTATION_RECORD_KEY, value: record as unknown as JsonValue, expectVersion }] });
    return result.versions.get(ROTATION_RECORD_KEY) ?? expectVersion + 1;
  }

  #now(): string {
    return this.#deps.clock.now().toISOString();
  }
}

function toRotation(r: RotationRecord): MasterKeyRotation {
  return {
    name: formatRotationName(r.id),
    state: r.state,
    oldMasterKcv: r.oldMasterKcv,
    newMasterKcv: r.newMasterKcv ?? "",
    keysTotal: r.keysTotal,
    keysDone: r.keysDone,
    blobsRewrapped: r.blobsRewrapped,
    requestedBy: r.requestedBy,
    createTime: new Date(r.createTime),
    updateTime: new Date(r.updateTime),
    ...(r.endTime ? { endTime: new Date(r.endTime) } : {}),
    lastError: r.lastError ?? "",
  };
}
