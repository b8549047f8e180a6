/**
 * BYOK push to AWS KMS through the real daemon process and the AWS KMS emulator over real sockets (the connector
 * uses the official SDK). For every algorithm AWS imports: the material at the emulator has the vault's KCV, and a
 * ciphertext / MAC / signature made by the cloud checks out with the vault's own copy. Key state changes and
 * rotations show up at the emulator.
 */
import test from "ava";
import { createDecipheriv, createHmac, createPrivateKey, createPublicKey, constants, privateDecrypt, verify } from "node:crypto";
import { EncryptCommand, GenerateMacCommand, KMSClient, SignCommand } from "@aws-sdk/client-kms";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator, parseCiphertextBlob, type AwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey, vaultMaterials, type KeystoreClients } from "../support/keystores.js";

interface Ctx {
  emu: AwsKmsEmulator;
  home: Home;
  daemon: DaemonProcess;
  c: Clients;
  k: KeystoreClients;
  kms: KMSClient;
}

const VAULT = "byok";
const KS = `vaults/${VAULT}/keystores/aws`;
const ctx = {} as Ctx;

test.before(async () => {
  ctx.emu = await startAwsKmsEmulator();
  ctx.home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 5000, cloudDeadlineMs: 20000 });
  ctx.daemon = await startDaemonProcess(ctx.home);
  ctx.c = clientsFor(ctx.daemon.address, mtls(ctx.home));
  ctx.k = keystoreClientsFor(ctx.daemon.address, mtls(ctx.home));
  ctx.kms = new KMSClient({ endpoint: ctx.emu.endpoint, region: ctx.emu.region, credentials: { accessKeyId: ctx.emu.accessKeyId, secretAccessKey: ctx.emu.secretAccessKey }, maxAttempts: 1 });
  await rpc(ctx.c.vaults, ctx.c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  await rpc(ctx.k.keystores, ctx.k.keystores.createKeystore, {
    parent: `vaults/${VAULT}`,
    keystoreId: "aws",
    keystore: awsKeystore({ region: ctx.emu.region, endpoint: ctx.emu.endpoint, accessKeyId: ctx.emu.accessKeyId, secretAccessKey: ctx.emu.secretAccessKey }, { deletionWindowDays: 7 }),
    requestId: "",
    validateOnly: false,
  });
});

test.after.always(async () => {
  ctx.c?.close();
  ctx.k?.close();
  ctx.kms?.destroy();
  if (ctx.daemon && ctx.daemon.child.exitCode === null) await ctx.daemon.stop();
  await ctx.emu?.close();
  ctx.home?.cleanup();
});

async function createKey(id: string, algorithm: KeyAlgorithm, initialState = 0) {
  return (await rpc(ctx.c.keys, ctx.c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(algorithm), initialState, requestId: "" })).key!;
}

async function distribute(id: string) {
  return (await rpc(ctx.k.distributions, ctx.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/${id}`, keystore: KS, requestId: "" })).distribution!;
}

async function getDist(id: string) {
  return (await rpc(ctx.k.distributions, ctx.k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${id}/distributions/aws`, readLive: false })).distribution!;
}

/** Waits until the distribution satisfies `pred` (the daemon follows key changes in the background). */
async function until<T>(read: () => Promise<T>, pred: (v: T) => boolean): Promise<T> {
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    await new Promise((r) => setImmediate(r));
  }
}

const IMPORTABLE: Array<[string, KeyAlgorithm]> = [
  ["aes256", KeyAlgorithm.KEY_ALGORITHM_AES_256],
  ["rsa2048", KeyAlgorithm.KEY_ALGORITHM_RSA_2048],
  ["rsa3072", KeyAlgorithm.KEY_ALGORITHM_RSA_3072],
  ["rsa4096", KeyAlgorithm.KEY_ALGORITHM_RSA_4096],
  ["ecp256", KeyAlgorithm.KEY_ALGORITHM_EC_P256],
  ["ecp384", KeyAlgorithm.KEY_ALGORITHM_EC_P384],
  ["hmac256", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256],
  ["hmac384", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA384],
  ["hmac512", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512],
];

test.serial("every algorithm AWS imports arrives with the vault's KCV; state changes and rotation reach the emulator; cloud crypto checks out with the vault's copy", async (t) => {
  t.timeout(300_000);
  const cloudKeys = new Map<string, string>();
  for (const [id, alg] of IMPORTABLE) {
    const key = await createKey(id, alg);
    const d = await distribute(id);
    t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}: ${d.lastError}`);
    t.is(d.observedState, CloudKeyState.CLOUD_KEY_STATE_ENABLED);
    t.is(d.cloudAlias, `alias/${id}`);
    const view = ctx.emu.admin.key(d.cloudKeyId)!;
    t.is(view.origin, "EXTERNAL");
    t.is(view.keyState, "Enabled");
    t.is(view.kcv, key.versions[0]!.kcv, `${id}: the material at the emulator has the vault's KCV`);
    t.is(view.tags["mcko:key"], `vaults/${VAULT}/keys/${id}`);
    t.is(view.tags["mcko:request-id"], d.requestId);
    t.deepEqual(view.aliases, [`alias/${id}`]);
    cloudKeys.set(id, d.cloudKeyId);
  }
  // Default wrapping: RSA_AES_KEY_WRAP_SHA_256 with an RSA_4096 wrapping key.
  t.true(ctx.emu.admin.imports().every((i) => i.wrappingAlgorithm === "RSA_AES_KEY_WRAP_SHA_256" && i.wrappingKeySpec === "RSA_4096" && i.accepted));

  // Key state changes: SUSPENDED → disabled; ACTIVE → enabled; DEACTIVATED → disabled.
  const aes = `vaults/${VAULT}/keys/aes256`;
  const aesCloud = cloudKeys.get("aes256")!;
  await rpc(ctx.c.keys, ctx.c.keys.setKeyState, { name: aes, state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "test" });
  await until(getDist.bind(null, "aes256"), (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.is(ctx.emu.admin.key(aesCloud)!.keyState, "Disabled");
  await rpc(ctx.c.keys, ctx.c.keys.setKeyState, { name: aes, state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "test" });
  await until(getDist.bind(null, "aes256"), (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_ENABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.is(ctx.emu.admin.key(aesCloud)!.keyState, "Enabled");

  // Rotation of an imported symmetric key: new material in the same cloud key, made current on demand.
  const rotated = (await rpc(ctx.c.keys, ctx.c.keys.rotateKey, { name: aes, etag: "", requestId: "" })).key!;
  const afterRotate = await until(getDist.bind(null, "aes256"), (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.is(afterRotate.cloudKeyId, aesCloud);
  const aesView = ctx.emu.admin.key(aesCloud)!;
  t.is(aesView.kcv, rotated.versions[1]!.kcv, "the cloud's current material is the vault's version 2");
  t.is(aesView.materials.length, 2);
  t.is(aesView.onDemandRotations, 1);

  // Rotation of an asymmetric key: a new cloud key, the alias moves to it.
  const ec = `vaults/${VAULT}/keys/ecp256`;
  const ecRotated = (await rpc(ctx.c.keys, ctx.c.keys.rotateKey, { name: ec, etag: "", requestId: "" })).key!;
  const ecDist = await until(getDist.bind(null, "ecp256"), (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.not(ecDist.cloudKeyId, cloudKeys.get("ecp256"));
  t.is(ctx.emu.admin.key("alias/ecp256")!.keyId, ecDist.cloudKeyId);
  t.is(ctx.emu.admin.key(ecDist.cloudKeyId)!.kcv, ecRotated.versions[1]!.kcv);

  // COMPROMISED: disabled at once in the cloud (every cloud key of the distribution).
  const hm = `vaults/${VAULT}/keys/hmac256`;
  await rpc(ctx.c.keys, ctx.c.keys.setKeyState, { name: hm, state: KeyState.KEY_STATE_COMPROMISED, etag: "", reason: "leaked in a log" });
  await until(getDist.bind(null, "hmac256"), (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.is(ctx.emu.admin.key(cloudKeys.get("hmac256")!)!.keyState, "Disabled");

  // DESTROYED: imported material deleted and deletion scheduled at the keystore's window (7 days).
  const r3 = `vaults/${VAULT}/keys/rsa3072`;
  await rpc(ctx.c.keys, ctx.c.keys.setKeyState, { name: r3, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "test" });
  await until(getDist.bind(null, "rsa3072"), (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  t.is(ctx.emu.admin.key(cloudKeys.get("rsa3072")!)!.keyState, "Disabled");
  await rpc(ctx.c.keys, ctx.c.keys.setKeyState, { name: r3, state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "test" });
  await until(getDist.bind(null, "rsa3072"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
  const destroyed = ctx.emu.admin.key(cloudKeys.get("rsa3072")!)!;
  t.is(destroyed.keyState, "PendingDeletion");
  t.is(destroyed.pendingWindowInDays, 7);
  t.true(destroyed.materials.every((m) => m.importState === "PENDING_IMPORT"), "imported material deleted");

  // Cloud-made crypto, checked with the vault's copy after the daemon stops (its store is locked while it runs).
  const aesCt = (await ctx.kms.send(new EncryptCommand({ KeyId: "alias/aes256", Plaintext: Buffer.from("made in the cloud") }))).CiphertextBlob!;
  const rsaCt: Record<string, Uint8Array> = {};
  for (const id of ["rsa2048", "rsa4096"]) rsaCt[id] = (await ctx.kms.send(new EncryptCommand({ KeyId: `alias/${id}`, Plaintext: Buffer.from(`to ${id}`), EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }))).CiphertextBlob!;
  const macs: Record<string, Uint8Array> = {};
  for (const [id, alg] of [["hmac384", "HMAC_SHA_384"], ["hmac512", "HMAC_SHA_512"]] as const) macs[id] = (await ctx.kms.send(new GenerateMacCommand({ KeyId: `alias/${id}`, Message: Buffer.from("mac me"), MacAlgorithm: alg }))).Mac!;
  const sig = (await ctx.kms.send(new SignCommand({ KeyId: "alias/ecp384", Message: Buffer.from("sign me"), MessageType: "RAW", SigningAlgorithm: "ECDSA_SHA_384" }))).Signature!;

  const ecKey = (await rpc(ctx.c.keys, ctx.c.keys.getKey, { name: `vaults/${VAULT}/keys/ecp384` })).key!;
  await ctx.daemon.stop();
  const materials = await vaultMaterials(ctx.home, VAULT);
  const aesMaterial = materials.get("aes256")!.get(2)!;
  const parsed = parseCiphertextBlob(Buffer.from(aesCt));
  const decipher = createDecipheriv("aes-256-gcm", aesMaterial, parsed.iv);
  decipher.setAuthTag(parsed.tag);
  t.is(Buffer.concat([decipher.update(parsed.ciphertext), decipher.final()]).toString(), "made in the cloud", "AES: the cloud's ciphertext decrypts with the vault's version 2");
  for (const id of ["rsa2048", "rsa4096"]) {
    const priv = createPrivateKey({ key: materials.get(id)!.get(1)!, format: "der", type: "pkcs8" });
    t.is(privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, rsaCt[id]!).toString(), `to ${id}`, `${id}: the cloud's ciphertext decrypts with the vault's private key`);
  }
  t.deepEqual(Buffer.from(macs.hmac384!), createHmac("sha384", materials.get("hmac384")!.get(1)!).update("mac me").digest());
  t.deepEqual(Buffer.from(macs.hmac512!), createHmac("sha512", materials.get("hmac512")!.get(1)!).update("mac me").digest());
  const ecPub = createPublicKey({ key: Buffer.from(ecKey.versions[0]!.publicKey), format: "der", type: "spki" });
  t.true(verify("sha384", Buffer.from("sign me"), ecPub, Buffer.from(sig)), "EC: the cloud's signature verifies with the vault's public key");
  for (const m of materials.values()) for (const b of m.values()) b.fill(0);
});
