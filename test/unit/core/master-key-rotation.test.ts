/**
 * MasterKeyRotationService in one process (memory stores, the software HSM on a temp keyring): a whole rotation,
 * and the resume paths of a rotation interrupted while the HSM made its new master (the creation landed, or not),
 * opened the way the daemon's start opens them (startupMasterKcv, then loadInternalKeys).
 */
import test, { type ExecutionContext } from "ava";
import { generateKeyPairSync, randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { AuditLog, type Actor } from "../../../daemon/src/core/audit/audit-log.js";
import { AuditSealer } from "../../../daemon/src/core/audit/chain.js";
import { SYSTEM_PRINCIPAL } from "../../../daemon/src/core/authz.js";
import { loadInternalKeys } from "../../../daemon/src/core/internal-keys.js";
import { KeyService, wrappedVersion, type KeyRecord } from "../../../daemon/src/core/keys.js";
import { KeyedLock, KeyedRwLock } from "../../../daemon/src/core/locks.js";
import { MasterKeyRotationService, ROTATION_RECORD_KEY, startupMasterKcv, type RotationRecord } from "../../../daemon/src/core/master-key-rotation.js";
import { VaultService } from "../../../daemon/src/core/vaults.js";
import { HsmError } from "../../../daemon/src/hsm/hsm.js";
import { readKeyring } from "../../../daemon/src/hsm/software/keyring.js";
import { SoftwareHsm } from "../../../daemon/src/hsm/software/software-hsm.js";
import { MemoryStore } from "../../../daemon/src/store/memory/memory-store.js";
import type { JsonValue } from "../../../daemon/src/store/store.js";

const actor: Actor = { principal: SYSTEM_PRINCIPAL, method: "test" };
const clock = { now: () => new Date() };
const ids = { uuid: () => randomUUID() };

async function world(t: { teardown(fn: () => void): void }) {
  const dir = mkdtempSync(join(tmpdir(), "mcko-rot-"));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const keyFile = join(dir, "master.key");
  const oldKcv = await SoftwareHsm.initMasterKeyFile(keyFile);
  const internal = new MemoryStore();
  const errors: string[] = [];
  let hsm = await SoftwareHsm.create({ masterKeyFile: keyFile, expectedMasterKcv: oldKcv });
  await loadInternalKeys(internal, hsm, clock.now);
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const store = new MemoryStore({ sealer: new AuditSealer(privateKey) });
  const audit = new AuditLog({ store, clock, journalFile: join(dir, "none.jsonl"), publicKey });
  const vaultLock = new KeyedRwLock();
  const keyLock = new KeyedLock();
  const vaults = new VaultService({ store, audit, clock, ids, vaultLock });
  const keys = new KeyService({ store, hsm, audit, clock, ids, keyLock, vaultLock });
  await vaults.create(actor, { id: "v", displayName: "", description: "" });
  for (const [i, alg] of (["AES_256", "HMAC_SHA384", "EC_P256", "AES_128"] as const).entries()) {
    await keys.create(actor, { vault: "v", keyId: `k${i}`, algorithm: alg, labels: {} });
    await keys.rotate(actor, "v", `k${i}`, undefined, undefined);
  }
  const service = (h: SoftwareHsm) => new MasterKeyRotationService({ internal, store, hsm: h, audit, clock, ids, keyLock, vaultLock, batchSize: 3, onError: (m) => errors.push(m) });
  /** Closes the HSM and opens it again the way the daemon's start does. */
  const restart = async (): Promise<SoftwareHsm> => {
    await hsm.close();
    const startup = await startupMasterKcv(internal);
    try {
      hsm = await SoftwareHsm.create({ masterKeyFile: keyFile, ...(startup.expected ? { expectedMasterKcv: startup.expected } : {}) });
    } catch (e) {
      if (!(startup.newerMasterPossible && e instanceof HsmError && e.reason === "HSM_MASTER_KEY_MISMATCH")) throw e;
      hsm = await SoftwareHsm.create({ masterKeyFile: keyFile });
    }
    await loadInternalKeys(internal, hsm, clock.now, startup);
    return hsm;
  };
  /** Every version is under `kcv` and unwraps to its recorded KCV; the keyring holds only `kcv`. */
  const checkAllUnder = async (tt: { is(a: unknown, b: unknown, m?: string): void; deepEqual(a: unknown, b: unknown): void }, kcv: string, versions = 8) => {
    const page = await store.list<KeyRecord>("key/", { pageSize: 100 });
    let n = 0;
    for (const rec of page.records) {
      for (const v of rec.value.versions) {
        const w = wrappedVersion(rec.value, v.number)!;
        tt.is(w.masterKcv, kcv, `${rec.key} v${v.number}`);
        tt.is(await hsm.checkValue(w), v.kcv);
        n++;
      }
    }
    tt.is(n, versions);
    const keyring = await readKeyring(keyFile);
    tt.deepEqual([...keyring.keys.keys()], [kcv]);
    for (const k of keyring.keys.values()) k.fill(0);
    tt.is((await internal.get<{ kcv: string }>("internal/master"))?.value.kcv, kcv);
  };
  return { internal, store, oldKcv, errors, keys, hsm: () => hsm, service, restart, checkAllUnder };
}

test("a rotation re-wraps every version and the internal keys, switches the recorded KCV and destroys the old master", async (t) => {
  const w = await world(t);
  const svc = w.service(w.hsm());
  const started = await svc.start(actor);
  t.is(started.state, "REWRAPPING");
  t.is(started.keysTotal, 4);
  await svc.idle();
  const done = await svc.get(started.name.split("/")[1]!);
  t.is(done.state, "DONE");
  t.is(done.keysDone, 4);
  t.is(done.blobsRewrapped, 8);
  await w.checkAllUnder(t, done.newMasterKcv);
  t.deepEqual(w.errors, []);
  // The next start expects the new master.
  t.deepEqual(await startupMasterKcv(w.internal), { expected: done.newMasterKcv, newerMasterPossible: false });
  const again = await w.restart();
  t.is(await again.masterKeyCheckValue(), done.newMasterKcv);
});

async function interruptedWhileCreating(t: ExecutionContext, creationLanded: boolean) {
  const w = await world(t);
  const now = new Date().toISOString();
  const record: RotationRecord = {
    id: randomUUID(), state: "CREATING", oldMasterKcv: w.oldKcv, newMasterKcv: null, cursor: null, keysTotal: 4, keysDone: 0,
    blobsRewrapped: 0, requestedBy: "CN=admin", createTime: now, updateTime: now, endTime: null, lastError: null,
  };
  await w.internal.commit({ mutations: [{ op: "put", key: ROTATION_RECORD_KEY, value: record as unknown as JsonValue, expectVersion: 0 }] });
  const landed = creationLanded ? await w.hsm().createMasterKey() : undefined;
  // "Crash": the new master's KCV was never recorded. The start opens the HSM and resumes.
  const hsm = await w.restart();
  const svc = w.service(hsm);
  svc.resume();
  await svc.idle();
  const done = await svc.get(record.id);
  t.is(done.state, "DONE");
  if (landed) t.is(done.newMasterKcv, landed, "the master whose creation landed is adopted, not a third one made");
  t.not(done.newMasterKcv, w.oldKcv);
  await w.checkAllUnder(t, done.newMasterKcv);
  t.deepEqual(w.errors, []);
}

test("interrupted in CREATING after the keyring already named the new master current: the start adopts it and finishes", (t) => interruptedWhileCreating(t, true));
test("interrupted in CREATING before the HSM made the new master: the resume makes it and finishes", (t) => interruptedWhileCreating(t, false));

test("keys created and rotated while the rotation starts and runs end up under the new master too", async (t) => {
  const w = await world(t);
  const svc = w.service(w.hsm());
  // Fired before the start: some generate under the old master and commit after the walk passed them.
  const changes = Array.from({ length: 12 }, (_, i) =>
    i % 3 === 2 ? w.keys.rotate(actor, "v", `k${i % 4}`, undefined, undefined) : w.keys.create(actor, { vault: "v", keyId: `n${i}`, algorithm: "AES_256", labels: {} }),
  );
  const started = await svc.start(actor);
  await Promise.all(changes);
  await svc.idle();
  const done = await svc.get(started.name.split("/")[1]!);
  t.is(done.state, "DONE");
  await w.checkAllUnder(t, done.newMasterKcv, 8 + 12);
  t.deepEqual(w.errors, []);
});
