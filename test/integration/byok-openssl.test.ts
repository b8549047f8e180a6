/**
 * Issue 4 acceptance, independent check: OpenSSL's command line unwraps the import blobs the daemon's pushes
 * produced (captured at the emulators: the AWS RSA_AES_KEY_WRAP_SHA_256 EncryptedKeyMaterial and the Azure .byok
 * transfer blob) with the emulators' wrapping private keys, and the recovered material has the vault's KCV.
 * Layout (BYOK.md §1): RSA-OAEP(ephemeral AES-256 key) of the modulus length ‖ RFC 5649 KWP(material). OAEP hash:
 * SHA-256 for AWS RSA_AES_KEY_WRAP_SHA_256 and Google RSA_OAEP_3072_SHA256_AES_256 (the ImportCryptoKeyVersion
 * wrapped_key, issue 5), SHA-1 for Azure CKM_RSA_AES_KEY_WRAP (BYOK.md §3.2). Temp files are 0600
 * in a 0700 folder and removed.
 */
import test, { type ExecutionContext } from "ava";
import { execFile } from "node:child_process";
import { createPrivateKey } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { KeystoreType } from "../../protos/gen/mcko/v1/keystore.js";
import type { CapturedImport } from "../emulators/common/records.js";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { startAzureKeyVaultEmulator } from "../emulators/azure-keyvault/index.js";
import { startGcpKmsEmulator } from "../emulators/gcp-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess } from "../support/daemon.js";
import { awsKeystore, gcpKeystore, keystoreClientsFor, newKey } from "../support/keystores.js";

const run = promisify(execFile);
const VAULT = "ossl";

/** Unwraps `blob` with OpenSSL alone; returns the KCV (AES enc-zero, first 3 bytes, hex) of the recovered material. */
async function opensslKcv(t: ExecutionContext, capture: CapturedImport, blob: Buffer, oaepHash: "sha1" | "sha256"): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "mcko-ossl-"));
  // Outputs are created empty with 0600 first: OpenSSL truncates them and keeps the mode.
  const file = (name: string, data: Buffer | string = Buffer.alloc(0)): string => {
    const p = join(dir, name);
    writeFileSync(p, data, { mode: 0o600 });
    return p;
  };
  try {
    const n = createPrivateKey(capture.wrappingPrivateKeyPem).asymmetricKeyDetails!.modulusLength! / 8;
    t.true(blob.length > n, "the blob holds the OAEP part and the KWP part");
    const priv = file("priv.pem", capture.wrappingPrivateKeyPem);
    const oaep = file("oaep.bin", blob.subarray(0, n));
    const kwp = file("kwp.bin", blob.subarray(n));
    const ephemeral = file("ephemeral.bin");
    const material = file("material.bin");
    const zero = file("zero.bin", Buffer.alloc(16));
    const enc = file("enc.bin");
    await run("openssl", ["pkeyutl", "-decrypt", "-inkey", priv, "-in", oaep, "-out", ephemeral, "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", `rsa_oaep_md:${oaepHash}`, "-pkeyopt", `rsa_mgf1_md:${oaepHash}`]);
    const aesKeyHex = readFileSync(ephemeral).toString("hex");
    t.is(aesKeyHex.length, 64, "an AES-256 ephemeral key");
    await run("openssl", ["enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", aesKeyHex, "-in", kwp, "-out", material]);
    const materialHex = readFileSync(material).toString("hex");
    t.is(materialHex.length, 64, "32 bytes of AES-256 material");
    await run("openssl", ["enc", "-aes-256-ecb", "-nopad", "-K", materialHex, "-in", zero, "-out", enc]);
    for (const p of [priv, oaep, kwp, ephemeral, material, zero, enc]) t.is(statSync(p).mode & 0o777, 0o600, `${p} is 0600`);
    return readFileSync(enc).subarray(0, 3).toString("hex");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("OpenSSL unwraps the daemon's AWS RSA_AES_KEY_WRAP_SHA_256 and Azure .byok blobs and recovers the vault's material", async (t) => {
  t.timeout(120_000);
  const aws = await startAwsKmsEmulator();
  const az = await startAzureKeyVaultEmulator();
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "aws", keystore: awsKeystore({ region: aws.region, endpoint: aws.endpoint, accessKeyId: aws.accessKeyId, secretAccessKey: aws.secretAccessKey }), requestId: "", validateOnly: false });
    const azureConfig = { vaultUrl: az.endpoint, tenantId: "", clientId: "", clientSecret: "", kekName: "", purgeOnDelete: false, hsm: true, bearerToken: az.token, caCertPem: az.caCertPem, authorityHost: "" };
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "azure", keystore: { ...awsKeystore({}), type: KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT, config: { $case: "azureKeyVault", value: azureConfig } }, requestId: "", validateOnly: false });

    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "dek", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" });
    const toAws = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/dek`, keystore: `vaults/${VAULT}/keystores/aws`, requestId: "" })).distribution!;
    const toAzure = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/dek`, keystore: `vaults/${VAULT}/keystores/azure`, requestId: "" })).distribution!;
    t.is(toAws.syncState, SyncState.SYNC_STATE_IN_SYNC, toAws.lastError);
    t.is(toAzure.syncState, SyncState.SYNC_STATE_IN_SYNC, toAzure.lastError);
    const vaultKcv = (await rpc(c.keys, c.keys.getKey, { name: `vaults/${VAULT}/keys/dek` })).key!.versions[0]!.kcv;
    t.regex(vaultKcv, /^[0-9a-f]{6}$/);

    // AWS: EncryptedKeyMaterial as received by ImportKeyMaterial.
    const awsImport = aws.admin.imports().find((i) => i.keyRef === toAws.cloudKeyId && i.accepted);
    t.truthy(awsImport, "the daemon's AWS import was captured");
    t.is(awsImport!.wrappingAlgorithm, "RSA_AES_KEY_WRAP_SHA_256");
    t.is(await opensslKcv(t, awsImport!, awsImport!.wrappedBlob, "sha256"), vaultKcv, "AWS: OpenSSL recovers material with the vault's KCV");

    // Azure: the .byok JSON sent in key_hsm; its `ciphertext` (base64url) is the blob.
    const azImport = az.admin.imports().find((i) => i.keyRef === toAzure.cloudKeyId && i.accepted);
    t.truthy(azImport?.transferBlobJson, "the daemon's Azure import was captured with its .byok document");
    const byok = JSON.parse(azImport!.transferBlobJson!) as { header: { enc: string; alg: string; kid: string }; ciphertext: string };
    t.is(byok.header.enc, "CKM_RSA_AES_KEY_WRAP");
    t.is(byok.header.alg, "dir");
    t.true(byok.header.kid.startsWith(`${az.endpoint}/keys/`), "the KEK's key identifier");
    t.is(await opensslKcv(t, azImport!, Buffer.from(byok.ciphertext, "base64url"), "sha1"), vaultKcv, "Azure: OpenSSL recovers material with the vault's KCV");
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await aws.close();
    await az.close();
    home.cleanup();
  }
});

test("OpenSSL unwraps the daemon's Google Cloud KMS RSA_OAEP_3072_SHA256_AES_256 wrapped key and recovers the vault's material", async (t) => {
  t.timeout(120_000);
  const gcp = await startGcpKmsEmulator({ projects: ["mcko-ossl"] });
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "gcp", keystore: gcpKeystore({ project: "mcko-ossl", location: "us", keyRing: "ossl", endpoint: `http://${gcp.endpoint}` }), requestId: "", validateOnly: false });
    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "dek", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" });
    const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/dek`, keystore: `vaults/${VAULT}/keystores/gcp`, requestId: "" })).distribution!;
    t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, d.lastError);
    const vaultKcv = (await rpc(c.keys, c.keys.getKey, { name: `vaults/${VAULT}/keys/dek` })).key!.versions[0]!.kcv;
    // ImportCryptoKeyVersion.wrapped_key as received, with the ImportJob's private key (a fresh RSA-3072 per job).
    const imp = gcp.admin.imports().find((i) => i.keyRef === d.cloudKeyUri && i.accepted);
    t.truthy(imp, "the daemon's Google import was captured");
    t.is(imp!.wrappingAlgorithm, "RSA_OAEP_3072_SHA256_AES_256");
    t.is(imp!.wrappingKeySpec, "RSA_3072");
    t.is(await opensslKcv(t, imp!, imp!.wrappedBlob, "sha256"), vaultKcv, "Google: OpenSSL recovers material with the vault's KCV");
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await gcp.close();
    home.cleanup();
  }
});
