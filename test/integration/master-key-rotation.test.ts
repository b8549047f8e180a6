/**
 * Master-key rotation through the real daemon process, on the software backend and on SoftHSM2 (pkcs11): the
 * rotation is halted halfway by the crash-test hook (masterKeyRotation.haltAfterKeys: the worker re-wraps one more
 * key without recording progress and stops), the daemon is killed with SIGKILL, restarted without the hook, and
 * the rotation resumes and completes. Then, with the daemon stopped, this process opens the vault store and the
 * HSM itself: every version is under the new master and unwraps to its recorded KCV (the HSM's checkValue), the
 * old master is gone, the internal keys and the recorded master KCV switched, and the next start checks the new
 * KCV. Start and end are in the audit log; only admins may rotate; `mcko hsm rotate-master` runs a second rotation.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { execFile } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { MasterKeyServiceClient, MasterKeyRotationState, type MasterKeyRotation } from "../../protos/gen/mcko/v1/master_key_service.js";
import { rotationOfOperation } from "../../daemon/src/api/convert/master-key.js";
import type { KeyRecord } from "../../daemon/src/core/keys.js";
import { HsmError, type Hsm, type KeyAlgorithm as HsmAlgorithm } from "../../daemon/src/hsm/hsm.js";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { readKeyring } from "../../daemon/src/hsm/software/keyring.js";
import { SoftwareHsm } from "../../daemon/src/hsm/software/software-hsm.js";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { clientsFor, issueClient, makeHome, MCKO_BIN, mtls, rpc, rpcError, startDaemonProcess, type Home } from "../support/daemon.js";

const execFileAsync = promisify(execFile);
const KEYS = 6;
const CLIENT_OPTIONS = { "grpc.service_config_disable_resolution": 1 };
const ALGORITHMS = [KeyAlgorithm.KEY_ALGORITHM_AES_256, KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, KeyAlgorithm.KEY_ALGORITHM_EC_P256, KeyAlgorithm.KEY_ALGORITHM_AES_128, KeyAlgorithm.KEY_ALGORITHM_RSA_2048, KeyAlgorithm.KEY_ALGORITHM_AES_256];

function rotationClient(address: string, creds: grpc.ChannelCredentials): MasterKeyServiceClient {
  return new MasterKeyServiceClient(address, creds, CLIENT_OPTIONS);
}

/** Polls GetMasterKeyRotation until `until` holds (awaits the daemon's state; no fixed sleep decides anything). */
async function waitForRotation(client: MasterKeyServiceClient, name: string, until: (r: MasterKeyRotation, done: boolean) => boolean): Promise<MasterKeyRotation> {
  for (;;) {
    const op = (await rpc(client, client.getMasterKeyRotation, { name })).operation!;
    const r = rotationOfOperation(op)!;
    if (until(r, op.done)) return r;
    await new Promise((res) => setTimeout(res, 50));
  }
}

function setConfig(home: Home, patch: Record<string, unknown>): void {
  const config = JSON.parse(readFileSync(home.configFile, "utf8")) as Record<string, unknown>;
  writeFileSync(home.configFile, JSON.stringify({ ...config, ...patch }, null, 2));
}

async function openHsm(home: Home, expectedMasterKcv: string): Promise<Hsm> {
  if (home.token) {
    process.env.SOFTHSM2_CONF = home.token.conf;
    return Pkcs11Hsm.create({ modulePath: home.token.modulePath, tokenLabel: home.token.tokenLabel, masterKeyLabel: "mcko-master", pin: Secret.copyOf(Buffer.from(home.token.pin)), expectedMasterKcv });
  }
  return SoftwareHsm.create({ masterKeyFile: join(home.dir, "master.key"), expectedMasterKcv });
}

async function versions(home: Home): Promise<Array<{ algorithm: HsmAlgorithm; v: KeyRecord["versions"][number] }>> {
  const store = await LowdbStore.open({ dir: join(home.dataDir, "vault") });
  try {
    const page = await store.list<KeyRecord>("key/", { pageSize: 1000 });
    return page.records.flatMap((r) => r.value.versions.map((v) => ({ algorithm: r.value.algorithm, v })));
  } finally {
    await store.close();
  }
}

for (const backend of ["software", "pkcs11"] as const) {
  test.serial(`${backend}: a rotation killed with SIGKILL halfway completes after a restart; every key unwraps to its KCV under the new master, the old one is destroyed`, async (t) => {
    t.timeout(300_000);
    const home = await makeHome({ masterKeyRotation: { batchSize: 1, haltAfterKeys: KEYS / 2 } }, backend);
    t.teardown(() => home.cleanup());
    let daemon = await startDaemonProcess(home);
    let c = clientsFor(daemon.address, mtls(home));
    let m = rotationClient(daemon.address, mtls(home));
    const kcvs = new Map<string, string>();
    try {
      await rpc(c.vaults, c.vaults.createVault, { vaultId: "rot", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
      for (let i = 0; i < KEYS; i++) {
        const key = { name: "", algorithm: ALGORITHMS[i]!, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" };
        await rpc(c.keys, c.keys.createKey, { parent: "vaults/rot", keyId: `k${i}`, key, initialState: 0, requestId: "" });
        if (i % 2 === 0) await rpc(c.keys, c.keys.rotateKey, { name: `vaults/rot/keys/k${i}`, etag: "", requestId: "" });
      }

      // Only an admin on every vault may rotate the master key; the denial is audited like any other.
      const custodian = issueClient(home, "custodian", [{ role: "key-custodian", vault: "*" }]);
      const denied = rotationClient(daemon.address, mtls(home, custodian));
      const e = await rpcError(denied, denied.rotateMasterKey, {});
      denied.close();
      t.is(e.code, grpc.status.PERMISSION_DENIED);

      const op = (await rpc(m, m.rotateMasterKey, {})).operation!;
      t.regex(op.name, /^masterKeyRotations\/[0-9a-f-]{36}$/);
      t.false(op.done);
      const started = rotationOfOperation(op)!;
      t.is(started.keysTotal, BigInt(KEYS));
      t.regex(started.newMasterKcv, /^[0-9a-f]{6}$/);
      t.not(started.newMasterKcv, started.oldMasterKcv);

      // A second request while this one is pending names the running operation.
      const again = await rpcError(m, m.rotateMasterKey, {});
      t.is(again.code, grpc.status.FAILED_PRECONDITION);
      t.is(again.reason, "MASTER_KEY_ROTATION_IN_PROGRESS");
      t.is(again.metadata.operation, op.name);

      const halfway = await waitForRotation(m, op.name, (r) => r.keysDone >= BigInt(KEYS / 2));
      t.is(halfway.state, MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_REWRAPPING);
      t.is(halfway.keysDone, BigInt(KEYS / 2), "progress is reported as the work goes");
      c.close();
      m.close();
      await daemon.kill();

      const oldKcv = started.oldMasterKcv;
      const newKcv = started.newMasterKcv;
      const during = await versions(home);
      const underOld = during.filter((x) => x.v.masterKcv === oldKcv).length;
      t.true(underOld > 0 && underOld < during.length, `killed halfway: ${underOld} of ${during.length} blobs still under the old master`);
      for (const x of during) kcvs.set(x.v.kcv, x.v.kcv);

      // Restart without the hook: the pending rotation resumes on its own and finishes.
      setConfig(home, { masterKeyRotation: { batchSize: 1 } });
      daemon = await startDaemonProcess(home);
      c = clientsFor(daemon.address, mtls(home));
      m = rotationClient(daemon.address, mtls(home));
      const done = await waitForRotation(m, op.name, (_r, isDone) => isDone);
      t.is(done.state, MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_DONE);
      t.is(done.newMasterKcv, newKcv);
      t.is(done.keysDone, BigInt(KEYS));
      t.truthy(done.endTime);
      t.is(done.lastError, "");

      const audit = await rpc(c.audit, c.audit.listAuditEvents, { parent: "vaults/-", pageSize: 1000, pageToken: "", filter: "" });
      const events = audit.auditEvents.filter((ev) => ev.resource === op.name);
      t.deepEqual(
        events.map((ev) => [ev.method, ev.details.phase]),
        [
          ["/mcko.v1.MasterKeyService/RotateMasterKey", "start"],
          ["system/master-key-rotation", "end"],
        ],
      );
      t.is(events[1]!.details.newMasterKcv, newKcv);
      t.is(events[1]!.principal, "CN=admin");
      c.close();
      m.close();
      t.is(await daemon.stop(), 0);

      // With the daemon stopped, check every blob with the HSM directly.
      const after = await versions(home);
      t.is(after.length, during.length);
      const hsm = await openHsm(home, newKcv);
      try {
        for (const { algorithm, v } of after) {
          t.is(v.masterKcv, newKcv, "no blob is left under the old master");
          const wrapped = { algorithm, blob: Buffer.from(v.blob!, "base64"), kcv: v.kcv, masterKcv: v.masterKcv!, ...(v.publicKey ? { publicKey: Buffer.from(v.publicKey, "base64") } : {}) };
          t.is(await hsm.checkValue(wrapped), v.kcv, `${algorithm} v${v.number} unwraps to its recorded KCV`);
        }
      } finally {
        await hsm.close();
      }
      // The old master is gone from the HSM.
      if (home.token) {
        const gone = await t.throwsAsync(openHsm(home, oldKcv));
        t.true(gone instanceof HsmError && gone.reason === "HSM_MASTER_KEY_MISMATCH", String(gone));
      } else {
        const keyring = await readKeyring(join(home.dir, "master.key"));
        t.deepEqual([...keyring.keys.keys()], [newKcv]);
        t.is(keyring.current, newKcv);
        for (const k of keyring.keys.values()) k.fill(0);
      }
      // The internal store switched: master record and internal keys.
      const internal = await LowdbStore.open({ dir: join(home.dataDir, "internal") });
      try {
        t.is((await internal.get<{ kcv: string }>("internal/master"))?.value.kcv, newKcv);
        for (const k of ["internal/audit-signing-key", "internal/credential-key"]) t.is((await internal.get<{ masterKcv: string }>(k))?.value.masterKcv, newKcv, k);
      } finally {
        await internal.close();
      }

      // The next start checks the new KCV and works; `mcko hsm rotate-master` runs a second rotation to the end.
      daemon = await startDaemonProcess(home);
      c = clientsFor(daemon.address, mtls(home));
      const got = await rpc(c.keys, c.keys.getKey, { name: "vaults/rot/keys/k0" });
      t.is(got.key!.versions.length, 2);
      const cli = await execFileAsync(MCKO_BIN, [
        "--addr", `127.0.0.1:${daemon.port}`, "--ca", join(home.dir, "tls/ca.pem"), "--cert", join(home.dir, "admin.pem"), "--key", join(home.dir, "admin.key"),
        "hsm", "rotate-master",
      ], { env: { ...process.env } });
      t.regex(cli.stdout, new RegExp(`master key rotated: KCV ${newKcv} -> [0-9a-f]{6}; ${KEYS} keys, ${after.length} blobs re-wrapped; old master destroyed`));
      t.regex(cli.stderr, /re-wrapping \[/, "a progress bar on stderr");
      c.close();
      t.is(await daemon.stop(), 0);
    } finally {
      c.close();
      m.close();
      if (daemon.child.exitCode === null) await daemon.kill();
    }
  });
}
