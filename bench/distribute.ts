/**
 * Distribution benchmark (issue 4): distribute `keys` AES-256 keys through the daemon to the AWS KMS emulator with
 * `latencyMs` injected into every cloud call. The ideal wall time, if the daemon kept the keystore's concurrency
 * limit busy and added nothing, is cloud calls × latency ÷ concurrency limit; the figure is wall time ÷ that
 * (goal ≤ 1.25). Cloud calls are counted from the emulator's call log; the limit is read back from the keystore.
 * Keys are created before the clock starts; the clock runs from the first CreateDistribution to the last one IN_SYNC.
 * One warm-up key is distributed (without injected latency) before the clock starts and its calls are not counted:
 * it makes the daemon build its connector and the emulator generate its RSA-4096 wrapping key pair (a one-off that
 * takes a second or more on the shared cores and would otherwise hold the first GetParametersForImport calls, each
 * in a concurrency slot).
 */
import { KeyAlgorithm } from "../protos/gen/mcko/v1/key.js";
import { SyncState } from "../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator } from "../test/emulators/aws-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess } from "../test/support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey } from "../test/support/keystores.js";

export interface DistributeBenchOptions {
  /** Keys to distribute; default 1,000. */
  keys?: number;
  /** Latency injected into every cloud call, ms; default 20. */
  latencyMs?: number;
  /** The keystore's max_concurrency; default 0 (the daemon's default). */
  maxConcurrency?: number;
}

export interface DistributeBenchResult {
  keys: number;
  latencyMs: number;
  /** The keystore's concurrency limit as the daemon reports it. */
  concurrencyLimit: number;
  /** Calls the emulator received while distributing. */
  cloudCalls: number;
  /** The same, per operation (e.g. CreateKey, GetParametersForImport, ImportKeyMaterial, CreateAlias). */
  callsByOperation: Record<string, number>;
  wallMs: number;
  /** cloudCalls × latencyMs ÷ concurrencyLimit. */
  idealMs: number;
  /** wallMs ÷ idealMs (goal ≤ 1.25). */
  ratio: number;
}

const VAULT = "bench";
const KS = `vaults/${VAULT}/keystores/aws`;

async function pool(n: number, width: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    for (let i = next++; i < n; i = next++) await fn(i);
  }));
}

export async function benchDistribute(opts: DistributeBenchOptions = {}): Promise<DistributeBenchResult> {
  const keys = opts.keys ?? 1_000;
  const latencyMs = opts.latencyMs ?? 20;
  const emu = await startAwsKmsEmulator({ callLogLimit: 1_000_000 });
  const home = await makeHome({ cloudAttemptTimeoutMs: 30_000, cloudDeadlineMs: 120_000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, {
      parent: `vaults/${VAULT}`,
      keystoreId: "aws",
      keystore: awsKeystore({ region: emu.region, endpoint: emu.endpoint, accessKeyId: emu.accessKeyId, secretAccessKey: emu.secretAccessKey }, { maxConcurrency: opts.maxConcurrency ?? 0 }),
      requestId: "",
      validateOnly: false,
    })).keystore!;
    const concurrencyLimit = ks.maxConcurrency;
    await pool(keys, 16, async (i) => {
      await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: `k${i}`, key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" });
    });

    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "warm-up", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" });
    const warm = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/warm-up`, keystore: KS, requestId: "" }, 600_000)).distribution!;
    if (warm.syncState !== SyncState.SYNC_STATE_IN_SYNC) throw new Error(`warm-up: ${SyncState[warm.syncState]} ${warm.lastError}`);

    emu.admin.clearCalls();
    emu.admin.setFaults({ latencyMs });
    const start = performance.now();
    // Enough requests in flight to keep the keystore's limit busy.
    await pool(keys, Math.max(16, concurrencyLimit * 4), async (i) => {
      const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/k${i}`, keystore: KS, requestId: "" }, 600_000)).distribution!;
      if (d.syncState !== SyncState.SYNC_STATE_IN_SYNC) throw new Error(`k${i}: ${SyncState[d.syncState]} ${d.lastError}`);
    });
    const wallMs = performance.now() - start;
    emu.admin.clearFaults();
    const log = emu.admin.calls();
    const cloudCalls = log.length;
    const callsByOperation: Record<string, number> = {};
    for (const r of log) callsByOperation[r.operation] = (callsByOperation[r.operation] ?? 0) + 1;
    const idealMs = (cloudCalls * latencyMs) / concurrencyLimit;
    return { keys, latencyMs, concurrencyLimit, cloudCalls, callsByOperation, wallMs, idealMs, ratio: wallMs / idealMs };
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
}
