/**
 * Issue 4 acceptance: with 30% throttling and 5% 5xx injected at the AWS KMS emulator (seeded), 200 distributions
 * pushed through the daemon converge to IN_SYNC with exactly one cloud key (and one alias) per distribution, and
 * every cloud key holds material with the vault's KCV.
 */
import test from "ava";
import { randomUUID } from "node:crypto";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { SyncState, type Distribution } from "../../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey } from "../support/keystores.js";

const VAULT = "faults";
const KS = `vaults/${VAULT}/keystores/aws`;
const COUNT = 200;
const PARALLEL = 16;

async function inBatches(n: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: PARALLEL }, async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  }));
}

test("200 distributions converge to IN_SYNC under 30% throttling and 5% 5xx, with one cloud key each and the vault's KCVs", async (t) => {
  t.timeout(120_000);
  const emu = await startAwsKmsEmulator();
  // Short attempt timeout, a deadline long enough to outlast bursts of faults; the reconciler retries what is left.
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 5000, cloudDeadlineMs: 20000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, {
      parent: `vaults/${VAULT}`,
      keystoreId: "aws",
      keystore: awsKeystore({ region: emu.region, endpoint: emu.endpoint, accessKeyId: emu.accessKeyId, secretAccessKey: emu.secretAccessKey }, { maxConcurrency: 8 }),
      requestId: "",
      validateOnly: false,
    });
    const kcvs = new Map<string, string>();
    await inBatches(COUNT, async (i) => {
      const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: `k${i}`, key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
      kcvs.set(key.name, key.versions[0]!.kcv);
    });

    emu.admin.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 4 });
    // A push that runs out of its deadline leaves the distribution for the reconciler; the call itself may fail.
    const requestIds = Array.from({ length: COUNT }, () => randomUUID());
    let failedCalls = 0;
    await inBatches(COUNT, async (i) => {
      try {
        await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/k${i}`, keystore: KS, requestId: requestIds[i]! }, 60_000);
      } catch {
        failedCalls++;
      }
    });
    const faulted = emu.admin.calls().filter((r) => r.fault !== undefined);
    t.true(faulted.some((r) => r.fault === "throttle") && faulted.some((r) => r.fault === "server-error"), "faults were injected");

    // Converge: every key has its distribution, IN_SYNC. A create the daemon never recorded is sent again (same request id).
    const list = async (): Promise<Distribution[]> => {
      const out: Distribution[] = [];
      let pageToken = "";
      do {
        const r = await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 1000, pageToken, keystore: KS });
        out.push(...r.distributions);
        pageToken = r.nextPageToken;
      } while (pageToken);
      return out;
    };
    let ds = await list();
    while (ds.length < COUNT || ds.some((d) => d.syncState !== SyncState.SYNC_STATE_IN_SYNC)) {
      if (ds.length < COUNT) {
        const have = new Set(ds.map((d) => d.name));
        await inBatches(COUNT, async (i) => {
          if (have.has(`vaults/${VAULT}/keys/k${i}/distributions/aws`)) return;
          await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/k${i}`, keystore: KS, requestId: requestIds[i]! }, 60_000).catch(() => undefined);
        });
      }
      await new Promise((r) => setImmediate(r));
      ds = await list();
    }
    t.log(`${failedCalls} CreateDistribution calls ran out of their deadline; ${faulted.length} faults injected`);
    emu.admin.clearFaults();

    t.is(ds.length, COUNT);
    const keys = emu.admin.keys();
    const byTag = new Map<string, string[]>();
    for (const v of keys) {
      const owner = v.tags["mcko:key"];
      if (owner) byTag.set(owner, [...(byTag.get(owner) ?? []), v.keyId]);
    }
    t.is(keys.length, COUNT, "no duplicate cloud keys");
    for (const d of ds) {
      const owner = d.name.replace(/\/distributions\/aws$/, "");
      t.deepEqual(byTag.get(owner), [d.cloudKeyId], `${owner}: exactly one cloud key`);
      const view = emu.admin.key(d.cloudKeyId)!;
      t.is(view.keyState, "Enabled");
      t.deepEqual(view.aliases, [d.cloudAlias]);
      t.is(view.kcv, kcvs.get(owner), `${owner}: the cloud's material has the vault's KCV`);
    }
    t.is(emu.admin.aliases().length, COUNT, "one alias per distribution");
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
