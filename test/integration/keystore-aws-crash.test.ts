/**
 * Crash safety of a push: the daemon is killed with SIGKILL between the cloud calls of a push, picked with the AWS
 * emulator's fault injection and call log. After a restart the reconciler finishes the push: exactly one cloud
 * key carries the distribution's request id, it holds the vault's material, the alias names it, and no other key
 * was made.
 */
import test from "ava";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess, type DaemonProcess } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey } from "../support/keystores.js";

const VAULT = "crash";
const KS = `vaults/${VAULT}/keystores/aws`;

test("SIGKILL after CreateKey (answered, or answer lost) and before ImportKeyMaterial, or before CreateAlias: after restart the push completes, one tagged key, no duplicate", async (t) => {
  t.timeout(300_000);
  const emu = await startAwsKmsEmulator();
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 3000, cloudDeadlineMs: 20000 });
  let daemon: DaemonProcess = await startDaemonProcess(home);
  try {
    let c = clientsFor(daemon.address, mtls(home));
    let k = keystoreClientsFor(daemon.address, mtls(home));
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, {
      parent: `vaults/${VAULT}`,
      keystoreId: "aws",
      keystore: awsKeystore({ region: emu.region, endpoint: emu.endpoint, accessKeyId: emu.accessKeyId, secretAccessKey: emu.secretAccessKey }),
      requestId: "",
      validateOnly: false,
    });

    const scenarios = [
      // The daemon learns the key id (and records it), then hangs in GetParametersForImport and dies.
      { id: "answered", arm: () => emu.admin.setFaults({ latencyMs: 600_000, onlyOperations: ["GetParametersForImport"] }), moment: (r: { operation: string; committed: boolean }) => r.operation === "CreateKey" && r.committed },
      // The key is made but the answer never comes: the daemon dies not knowing the key id (found by its tag).
      { id: "lost", arm: () => emu.admin.failNext({ operation: "CreateKey", kind: "timeout", afterCommit: true }), moment: (r: { operation: string; committed: boolean; fault?: string }) => r.operation === "CreateKey" && r.committed && r.fault === "timeout" },
      // The material is in; the daemon dies before naming the key (CreateAlias held).
      { id: "imported", arm: () => emu.admin.setFaults({ latencyMs: 600_000, onlyOperations: ["CreateAlias"] }), moment: (r: { operation: string; committed: boolean }) => r.operation === "ImportKeyMaterial" && r.committed },
    ];
    for (const s of scenarios) {
      const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: s.id, key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
      const requestId = crypto.randomUUID();
      s.arm();
      emu.admin.clearCalls();
      const push = rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/${s.id}`, keystore: KS, requestId }).then(
        () => "answered",
        () => "failed",
      );
      await emu.admin.waitForCall(s.moment);
      if (s.id === "answered") {
        // The cloud key id is recorded before the material is imported.
        await emu.admin.waitForCall((r) => r.operation === "DescribeKey");
      }
      await daemon.kill();
      t.is(await push, "failed", "the push never answered");
      emu.admin.clearFaults();
      t.is(emu.admin.keys().filter((x) => x.tags["mcko:request-id"] === requestId).length, 1, "one cloud key was made before the crash");
      t.is(emu.admin.keys().filter((x) => x.tags["mcko:request-id"] === requestId)[0]!.keyState, s.id === "imported" ? "Enabled" : "PendingImport");

      c.close();
      k.close();
      daemon = await startDaemonProcess(home);
      c = clientsFor(daemon.address, mtls(home));
      k = keystoreClientsFor(daemon.address, mtls(home));
      let d;
      for (;;) {
        d = (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${s.id}/distributions/aws`, readLive: false })).distribution!;
        if (d.syncState !== SyncState.SYNC_STATE_PENDING) break;
        await new Promise((r) => setImmediate(r));
      }
      t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, d.lastError);
      t.is(d.observedState, CloudKeyState.CLOUD_KEY_STATE_ENABLED);
      t.is(d.requestId, requestId);
      const tagged = emu.admin.keys().filter((x) => x.tags["mcko:request-id"] === requestId);
      t.is(tagged.length, 1, `${s.id}: no duplicate cloud key`);
      t.is(tagged[0]!.keyId, d.cloudKeyId, `${s.id}: the distribution tracks the key made before the crash`);
      t.is(tagged[0]!.keyState, "Enabled");
      t.is(tagged[0]!.kcv, key.versions[0]!.kcv, `${s.id}: the vault's material arrived`);
      t.is(emu.admin.key(`alias/${s.id}`)?.keyId, d.cloudKeyId);
      // The retried request gets the first result, not a second push.
      const again = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/${s.id}`, keystore: KS, requestId })).distribution!;
      t.is(again.cloudKeyId, d.cloudKeyId);
    }
    t.is(emu.admin.keys().length, scenarios.length, "no untracked key anywhere");
    c.close();
    k.close();
  } finally {
    if (daemon.child.exitCode === null && daemon.child.signalCode === null) await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
