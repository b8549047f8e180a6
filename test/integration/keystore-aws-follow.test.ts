/**
 * Distributions following their key and surviving a flaky cloud, through the real daemon and the AWS emulator:
 * a PRE_ACTIVATION key's distribution waits and goes out on activation; throttling and 5xx are retried with
 * backoff; a cloud key deleted out of band is pushed again from the vault by SyncDistribution; DeleteDistribution
 * removes the material and schedules deletion; every push is audited with its request id and the HSM's software step.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, rpcError, startDaemonProcess } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey } from "../support/keystores.js";

const VAULT = "follow";
const KS = `vaults/${VAULT}/keystores/aws`;

test("a waiting distribution goes out on activation; throttling and 5xx are retried; a lost cloud key is re-pushed; delete schedules deletion; pushes are audited", async (t) => {
  t.timeout(300_000);
  const emu = await startAwsKmsEmulator();
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 3000, cloudDeadlineMs: 60000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const get = async (id: string) => (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${id}/distributions/aws`, readLive: false })).distribution!;
  const until = async (id: string, pred: (d: Awaited<ReturnType<typeof get>>) => boolean) => {
    for (;;) {
      const d = await get(id);
      if (pred(d)) return d;
      await new Promise((r) => setImmediate(r));
    }
  };
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, {
      parent: `vaults/${VAULT}`,
      keystoreId: "aws",
      keystore: awsKeystore({ region: emu.region, endpoint: emu.endpoint, accessKeyId: emu.accessKeyId, secretAccessKey: emu.secretAccessKey }, { deletionWindowDays: 10 }),
      requestId: "",
      validateOnly: false,
    });

    // PRE_ACTIVATION: recorded, not pushed; activation pushes it.
    const pre = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "later", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: KeyState.KEY_STATE_PRE_ACTIVATION, requestId: "" })).key!;
    const waiting = (await rpc(k.distributions, k.distributions.createDistribution, { parent: pre.name, keystore: KS, requestId: "" })).distribution!;
    t.is(waiting.syncState, SyncState.SYNC_STATE_PENDING);
    t.is(waiting.cloudKeyId, "");
    t.is(emu.admin.keys().length, 0, "nothing in the cloud while the key waits");
    await rpc(c.keys, c.keys.setKeyState, { name: pre.name, state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "go" });
    const active = await until("later", (d) => d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(emu.admin.key(active.cloudKeyId)?.kcv, pre.versions[0]!.kcv);
    t.is(emu.admin.key(active.cloudKeyId)?.keyState, "Enabled");

    // Throttling and 5xx on the way: retried with backoff until the push succeeds.
    emu.admin.failNext({ operation: "CreateKey", kind: "throttle", count: 2 });
    emu.admin.failNext({ operation: "GetParametersForImport", kind: "server-error" });
    emu.admin.failNext({ operation: "ImportKeyMaterial", kind: "throttle" });
    // A lost answer: the import took effect but the daemon saw a 5xx; the retry imports the same material again.
    emu.admin.failNext({ operation: "ImportKeyMaterial", kind: "server-error", afterCommit: true });
    // No answer at all: the attempt times out (cloudAttemptTimeoutMs) and is retried.
    emu.admin.failNext({ operation: "CreateAlias", kind: "timeout" });
    const flaky = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "flaky", key: newKey(KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512), initialState: 0, requestId: "" })).key!;
    const pushed = (await rpc(k.distributions, k.distributions.createDistribution, { parent: flaky.name, keystore: KS, requestId: "" })).distribution!;
    t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
    t.is(emu.admin.calls().filter((x) => x.fault).length, 6, "every injected fault was met and retried");
    t.is(emu.admin.keys().filter((x) => x.tags["mcko:key"] === flaky.name).length, 1, "retries made no duplicate");

    // A cloud that lost the key gets it back from the vault.
    emu.admin.deleteKey(pushed.cloudKeyId);
    const live = (await rpc(k.distributions, k.distributions.getDistribution, { name: pushed.name, readLive: true })).distribution!;
    t.is(live.syncState, SyncState.SYNC_STATE_DRIFTED);
    t.true(live.drift.some((d) => d.includes("is missing")), live.drift.join("; "));
    const repaired = (await rpc(k.distributions, k.distributions.syncDistribution, { name: pushed.name })).distribution!;
    t.is(repaired.syncState, SyncState.SYNC_STATE_IN_SYNC, repaired.lastError);
    t.not(repaired.cloudKeyId, pushed.cloudKeyId);
    t.is(emu.admin.key(repaired.cloudKeyId)?.kcv, flaky.versions[0]!.kcv);
    t.is(emu.admin.key("alias/flaky")?.keyId, repaired.cloudKeyId);

    // Delete: material deleted, deletion scheduled at the keystore's window, distribution gone.
    await rpc(k.distributions, k.distributions.deleteDistribution, { name: repaired.name });
    const gone = emu.admin.key(repaired.cloudKeyId)!;
    t.is(gone.keyState, "PendingDeletion");
    t.is(gone.pendingWindowInDays, 10);
    t.is((await rpcError(k.distributions, k.distributions.getDistribution, { name: repaired.name, readLive: false })).code, grpc.status.NOT_FOUND);

    // A key destroyed and deleted at once: its cloud key still gets its deletion scheduled, the distribution goes.
    const brief = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "brief", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
    const briefDist = (await rpc(k.distributions, k.distributions.createDistribution, { parent: brief.name, keystore: KS, requestId: "" })).distribution!;
    await rpc(c.keys, c.keys.setKeyState, { name: brief.name, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "t" });
    await rpc(c.keys, c.keys.setKeyState, { name: brief.name, state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "t" });
    await rpc(c.keys, c.keys.deleteKey, { name: brief.name, etag: "" });
    await emu.admin.waitForCall((x) => x.operation === "ScheduleKeyDeletion" && x.target === briefDist.cloudKeyId && x.committed);
    t.is(emu.admin.key(briefDist.cloudKeyId)?.keyState, "PendingDeletion");
    for (;;) {
      const all = (await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions;
      if (!all.some((x) => x.name === briefDist.name)) break;
      await new Promise((r) => setImmediate(r));
    }

    // Audit: the record step and the push with its request id and the HSM's software step.
    const journal = readFileSync(home.journalFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as { method: string; resource: string; details: Record<string, string> });
    const pushes = journal.filter((e) => e.resource === active.name && e.details.op === "push");
    t.is(pushes.length, 1);
    t.is(pushes[0]!.details.softwareStep, active.softwareStep, "the event records where the HSM ran the RSA step of the wrap");
    t.true(["none", "rsa-over-ephemeral-key", "rsa-over-material"].includes(active.softwareStep));
    t.is(pushes[0]!.details.requestId, active.requestId);
    t.is(pushes[0]!.method, "system/distribution", "the push on activation is the daemon's own");
    t.true(journal.some((e) => e.resource === repaired.name && e.method === "/mcko.v1.DistributionService/DeleteDistribution"));
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
