/**
 * BYOK push to Azure Key Vault through the real daemon process and the Azure emulator over HTTPS (the connector uses
 * @azure/keyvault-keys with the bearer challenge): the .byok transfer blob under a key exchange key, KCVs per
 * version, enable/disable through attributes, rotation as a new version, deletion (soft delete, purge when
 * configured), tags; cloud-made crypto checks out with the vault's copy.
 */
import test from "ava";
import { createDecipheriv, createHash, createPublicKey, verify } from "node:crypto";
import { CryptographyClient, type CryptographyClientOptions } from "@azure/keyvault-keys";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { KeystoreType, type AzureKeyVaultConfig } from "../../protos/gen/mcko/v1/keystore.js";
import { startAzureKeyVaultEmulator } from "../emulators/azure-keyvault/index.js";
import { clientsFor, makeHome, mtls, rpc, rpcError, startDaemonProcess } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey, vaultMaterials } from "../support/keystores.js";

const VAULT = "az";
const KS = `vaults/${VAULT}/keystores/azure`;

test("keys arrive through the .byok blob with the vault's KCV; state, rotation and destruction follow; cloud crypto checks out", async (t) => {
  t.timeout(300_000);
  const emu = await startAzureKeyVaultEmulator();
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const get = async (id: string) => (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${id}/distributions/azure`, readLive: false })).distribution!;
  const until = async (id: string, pred: (d: Awaited<ReturnType<typeof get>>) => boolean) => {
    for (;;) {
      const d = await get(id);
      if (pred(d)) return d;
      await new Promise((r) => setImmediate(r));
    }
  };
  const config = (c: Partial<AzureKeyVaultConfig>): AzureKeyVaultConfig => ({ vaultUrl: emu.endpoint, tenantId: "", clientId: "", clientSecret: "", kekName: "", purgeOnDelete: false, hsm: true, bearerToken: emu.token, caCertPem: emu.caCertPem, authorityHost: "", ...c });
  let stopped = false;
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const dry = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "azure", keystore: { ...awsKeystore({}), type: KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT, config: { $case: "azureKeyVault", value: config({}) } }, requestId: "", validateOnly: true })).keystore!;
    t.regex(dry.lastTestResult, /accepted the credentials/);
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "azure", keystore: { ...awsKeystore({}), type: KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT, config: { $case: "azureKeyVault", value: config({ purgeOnDelete: true }) } }, requestId: "", validateOnly: false })).keystore!;
    t.true(ks.hasCredentials);
    if (ks.config?.$case === "azureKeyVault") t.is(ks.config.value.bearerToken, "", "the token is write-only");

    const pushed = new Map<string, { kcv: string; name: string }>();
    for (const [id, alg] of [["aes_256", KeyAlgorithm.KEY_ALGORITHM_AES_256], ["rsa2048", KeyAlgorithm.KEY_ALGORITHM_RSA_2048], ["ec256", KeyAlgorithm.KEY_ALGORITHM_EC_P256], ["ec384", KeyAlgorithm.KEY_ALGORITHM_EC_P384]] as const) {
      const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(alg), initialState: 0, requestId: "" })).key!;
      const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: KS, requestId: "" })).distribution!;
      t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}: ${d.lastError}`);
      const view = emu.admin.key(d.cloudKeyId)!;
      t.is(view.versions.length, 1);
      t.is(view.versions[0]!.origin, "byok");
      t.is(view.versions[0]!.kcv, key.versions[0]!.kcv, `${id}: the vault's material arrived`);
      t.is(view.versions[0]!.tags["mcko:key"], key.name);
      pushed.set(id, { kcv: key.versions[0]!.kcv, name: d.cloudKeyId });
    }
    t.is(pushed.get("aes_256")!.name, "aes-256", "Azure names allow no underscore");
    t.true(emu.admin.imports().every((i) => i.wrappingAlgorithm === "CKM_RSA_AES_KEY_WRAP" && i.accepted));
    t.truthy(emu.admin.key("mcko-kek"), "the key exchange key was created once");

    const hm = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "hm", key: newKey(KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256), initialState: 0, requestId: "" })).key!;
    t.is((await rpcError(k.distributions, k.distributions.createDistribution, { parent: hm.name, keystore: KS, requestId: "" })).reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");

    // Suspend → every version disabled; activate → enabled; rotate → a new version with the new KCV.
    const rsa = `vaults/${VAULT}/keys/rsa2048`;
    await rpc(c.keys, c.keys.setKeyState, { name: rsa, state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "t" });
    await until("rsa2048", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.true(emu.admin.key("rsa2048")!.versions.every((v) => !v.enabled));
    await rpc(c.keys, c.keys.setKeyState, { name: rsa, state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "t" });
    await until("rsa2048", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_ENABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.true(emu.admin.key("rsa2048")!.versions.every((v) => v.enabled));
    const rotated = (await rpc(c.keys, c.keys.rotateKey, { name: `vaults/${VAULT}/keys/aes_256`, etag: "", requestId: "" })).key!;
    const afterRotate = await until("aes_256", (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(afterRotate.cloudKeyId, "aes-256");
    const aesView = emu.admin.key("aes-256")!;
    t.is(aesView.versions.length, 2);
    t.is(aesView.versions.find((v) => v.version === aesView.latestVersion)!.kcv, rotated.versions[1]!.kcv);

    // Drift: disabled out of band is seen live and repaired.
    emu.admin.disableKey("ec256");
    const drifted = (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/ec256/distributions/azure`, readLive: true })).distribution!;
    t.is(drifted.syncState, SyncState.SYNC_STATE_DRIFTED);
    await rpc(k.distributions, k.distributions.syncDistribution, { name: drifted.name });
    t.true(emu.admin.key("ec256")!.versions.every((v) => v.enabled));

    // Destroyed: soft-deleted, then purged (purge_on_delete).
    const ec384 = `vaults/${VAULT}/keys/ec384`;
    await rpc(c.keys, c.keys.setKeyState, { name: ec384, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "t" });
    await rpc(c.keys, c.keys.setKeyState, { name: ec384, state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "t" });
    await until("ec384", (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED);
    t.is(emu.admin.key("ec384"), undefined, "deleted and purged");

    // Cloud-made crypto: an EC signature verifies with the vault's public key; AES-GCM decrypts with the vault's copy.
    const cred = { getToken: async () => ({ token: emu.token, expiresOnTimestamp: Date.now() + 3600e3 }) };
    const opts = { disableChallengeResourceVerification: true, tlsOptions: { ca: emu.caCertPem }, retryOptions: { maxRetries: 0 } } as CryptographyClientOptions;
    const ecKid = `${emu.endpoint}/keys/ec256/${emu.admin.key("ec256")!.latestVersion}`;
    const digest = createHash("sha256").update("sign me").digest();
    const sig = await new CryptographyClient(ecKid, cred, opts).sign("ES256", digest);
    const ecKey = (await rpc(c.keys, c.keys.getKey, { name: `vaults/${VAULT}/keys/ec256` })).key!;
    t.true(verify("sha256", Buffer.from("sign me"), { key: createPublicKey({ key: Buffer.from(ecKey.versions[0]!.publicKey), format: "der", type: "spki" }), dsaEncoding: "ieee-p1363" }, Buffer.from(sig.result)));
    const aesKid = `${emu.endpoint}/keys/aes-256/${aesView.latestVersion}`;
    const enc = await new CryptographyClient(aesKid, cred, opts).encrypt({ algorithm: "A256GCM", plaintext: Buffer.from("made in azure") });
    await daemon.stop();
    stopped = true;
    const material = (await vaultMaterials(home, VAULT)).get("aes_256")!.get(2)!;
    const d = createDecipheriv("aes-256-gcm", material, Buffer.from(enc.iv!));
    d.setAuthTag(Buffer.from(enc.authenticationTag!));
    if (enc.additionalAuthenticatedData?.length) d.setAAD(Buffer.from(enc.additionalAuthenticatedData));
    t.is(Buffer.concat([d.update(Buffer.from(enc.result)), d.final()]).toString(), "made in azure");
    material.fill(0);
  } finally {
    c.close();
    k.close();
    if (!stopped) await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
