/**
 * An in-process world for MasterKeyRotationService tests: memory stores, a vault with four keys of two versions
 * each, and an HSM backend — the software one on a temp keyring, or pkcs11 on a fresh SoftHSM2 token — that can be
 * closed and opened again the way the daemon's start opens it (startupMasterKcv, then loadInternalKeys).
 */
import type { ExecutionContext } from "ava";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog, type Actor } from "../../daemon/src/core/audit/audit-log.js";
import { AuditSealer } from "../../daemon/src/core/audit/chain.js";
import { SYSTEM_PRINCIPAL } from "../../daemon/src/core/authz.js";
import { loadInternalKeys } from "../../daemon/src/core/internal-keys.js";
import { KeyService, wrappedVersion, type KeyRecord } from "../../daemon/src/core/keys.js";
import { KeyedLock, KeyedRwLock } from "../../daemon/src/core/locks.js";
import { MasterKeyRotationService, ROTATION_RECORD_KEY, startupMasterKcv, type RotationRecord } from "../../daemon/src/core/master-key-rotation.js";
import { VaultService } from "../../daemon/src/core/vaults.js";
import { HsmError, type MasterRotatableHsm } from "../../daemon/src/hsm/hsm.js";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { readKeyring } from "../../daemon/src/hsm/software/keyring.js";
import { SoftwareHsm } from "../../daemon/src/hsm/software/software-hsm.js";
import { MemoryStore } from "../../daemon/src/store/memory/memory-store.js";
import type { JsonValue } from "../../daemon/src/store/store.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { createSoftHsmToken } from "./softhsm.js";

export const actor: Actor = { principal: SYSTEM_PRINCIPAL, method: "test" };
const clock = { now: () => new Date() };
const ids = { uuid: () => randomUUID() };

export async function rotationWorld(t: ExecutionContext, backend: "software" | "pkcs11") {
  const dir = mkdtempSync(join(tmpdir(), "mcko-rot-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "master.key");
  let open: (expected: string | undefined) => Promise<MasterRotatableHsm>;
  let oldKcv: string;
  if (backend === "software") {
    oldKcv = await SoftwareHsm.initMasterKeyFile(keyFile);
    open = (expected) => SoftwareHsm.create({ masterKeyFile: keyFile, ...(expected ? { expectedMasterKcv: expected } : {}) });
  } else {
    const token = await createSoftHsmToken({ tokenLabel: "mcko-rot" });
    t.teardown(() => token.cleanup());
    process.env.SOFTHSM2_CONF = token.conf;
    const common = { modulePath: token.modulePath, tokenLabel: token.tokenLabel, masterKeyLabel: "mcko-master" };
    oldKcv = await Pkcs11Hsm.initMasterKey({ ...common, pin: Secret.copyOf(Buffer.from(token.pin)), adopt: false });
    open = (expected) => Pkcs11Hsm.create({ ...common, pin: Secret.copyOf(Buffer.from(token.pin)), ...(expected ? { expectedMasterKcv: expected } : {}) });
  }
  const internal = new MemoryStore();
  const errors: string[] = [];
  let hsm = await open(oldKcv);
  t.teardown(() => hsm.close());
  await loadInternalKeys(internal, hsm, clock.now);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const store = new MemoryStore({ sealer: new AuditSealer(privateKey) });
  const audit = new AuditLog({ store, clock, journalFile: join(dir, "none.jsonl"), publicKey });
  const vaultLock = new KeyedRwLock();
  const keyLock = new KeyedLock();
  const vaults = new VaultService({ store, audit, clock, ids, vaultLock });
  let keys = new KeyService({ store, hsm, audit, clock, ids, keyLock, vaultLock });
  await vaults.create(actor, { id: "v", displayName: "", description: "" });
  for (const [i, alg] of (["AES_256", "HMAC_SHA384", "EC_P256", "AES_128"] as const).entries()) {
    await keys.create(actor, { vault: "v", keyId: `k${i}`, algorithm: alg, labels: {} });
    await keys.rotate(actor, "v", `k${i}`, undefined, undefined);
  }
  const service = () => new MasterKeyRotationService({ internal, store, hsm, audit, clock, ids, keyLock, vaultLock, batchSize: 3, onError: (m) => errors.push(m) });
  /** Closes the HSM and opens it again the way the daemon's start does. */
  const restart = async (): Promise<MasterRotatableHsm> => {
    await hsm.close();
    const startup = await startupMasterKcv(internal);
    try {
      hsm = await open(startup.expected);
    } catch (e) {
      if (!(startup.newerMasterPossible && e instanceof HsmError && e.reason === "HSM_MASTER_KEY_MISMATCH")) throw e;
      hsm = await open(undefined);
    }
    await loadInternalKeys(internal, hsm, clock.now, startup);
    keys = new KeyService({ store, hsm, audit, clock, ids, keyLock, vaultLock });
    return hsm;
  };
  /** Every version is under `kcv` and unwraps to its recorded KCV; the HSM holds only `kcv`; the record switched. */
  const checkAllUnder = async (kcv: string, versions = 8): Promise<void> => {
    const page = await store.list<KeyRecord>("key/", { pageSize: 100 });
    let n = 0;
    for (const rec of page.records) {
      for (const v of rec.value.versions) {
        const w = wrappedVersion(rec.value, v.number)!;
        t.is(w.masterKcv, kcv, `${rec.key} v${v.number}`);
        t.is(await hsm.checkValue(w), v.kcv);
        n++;
      }
    }
    t.is(n, versions);
    t.deepEqual(await hsm.masterKeyCheckValues(), [kcv], "the HSM holds only the new master");
    if (backend === "software") {
      const keyring = await readKeyring(keyFile);
      t.deepEqual([...keyring.keys.keys()], [kcv]);
      for (const k of keyring.keys.values()) k.fill(0);
    }
    t.is((await internal.get<{ kcv: string }>("internal/master"))?.value.kcv, kcv);
  };
  /** Records a rotation as if the daemon died right after committing CREATING. */
  const recordCreating = async (): Promise<RotationRecord> => {
    const now = new Date().toISOString();
    const record: RotationRecord = {
      id: randomUUID(), state: "CREATING", oldMasterKcv: oldKcv, preexistingMasterKcvs: [oldKcv], newMasterKcv: null, cursor: null,
      keysTotal: 4, keysDone: 0, blobsRewrapped: 0, requestedBy: "CN=admin", createTime: now, updateTime: now, endTime: null, lastError: null,
    };
    await internal.commit({ mutations: [{ op: "put", key: ROTATION_RECORD_KEY, value: record as unknown as JsonValue, expectVersion: 0 }] });
    return record;
  };
  return { internal, store, oldKcv, errors, keys: () => keys, hsm: () => hsm, service, restart, checkAllUnder, recordCreating };
}

/** A rotation interrupted in CREATING (the HSM's creation landed or not) resumes on start and finishes. */
export async function interruptedWhileCreating(t: ExecutionContext, backend: "software" | "pkcs11", creationLanded: boolean): Promise<void> {
  const w = await rotationWorld(t, backend);
  const record = await w.recordCreating();
  const landed = creationLanded ? await w.hsm().createMasterKey() : undefined;
  // "Crash": the new master's KCV was never recorded. The start opens the HSM and resumes.
  await w.restart();
  const svc = w.service();
  svc.resume();
  await svc.idle();
  const done = await svc.get(record.id);
  t.is(done.state, "DONE");
  t.not(done.newMasterKcv, w.oldKcv);
  // Software: the keyring already named the landed master current, so it is adopted. pkcs11: the landed master
  // was never current, so it is destroyed and a fresh one made.
  if (landed && backend === "software") t.is(done.newMasterKcv, landed);
  if (landed && backend === "pkcs11") t.not(done.newMasterKcv, landed);
  await w.checkAllUnder(done.newMasterKcv);
  t.deepEqual(w.errors, []);
}
