/**
 * BYOK push to Google Cloud KMS through the real daemon process and the GCP KMS emulator over plaintext gRPC (the
 * connector uses @google-cloud/kms with insecure channel credentials): every algorithm Google imports arrives in an
 * import-only CryptoKey with the vault's KCV, through one ImportJob reused while valid and renewed when it expires;
 * the new version is made primary explicitly; disable/enable set the versions' state, rotation imports a new
 * primary version, destroy schedules every version's destruction and warns that the CryptoKey itself stays; a
 * distribution made again finds its old CryptoKey. Cloud-made crypto checks out with the vault's copy. Every
 * assertion about the cloud reads the emulator's own state. A second test covers bad input; a third the other
 * import methods and protection level.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyManagementServiceClient } from "@google-cloud/kms";
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { constants, createDecipheriv, createHash, createHmac, createPublicKey, generateKeyPairSync, publicEncrypt, verify } from "node:crypto";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { GcpImportMethod, GcpProtectionLevel, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { startGcpKmsEmulator, type GcpKmsEmulator } from "../emulators/gcp-kms/index.js";
import { clientsFor, MCKO_BIN, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Home } from "../support/daemon.js";
import { gcpKeystore, keystoreClientsFor, newKey, vaultMaterials } from "../support/keystores.js";

const PROJECT = "mcko-test";
const RING = `projects/${PROJECT}/locations/europe-west1/keyRings/mcko`;

const ALGORITHMS = [
  ["aes128", KeyAlgorithm.KEY_ALGORITHM_AES_128, "RAW_ENCRYPT_DECRYPT", "AES_128_GCM"],
  ["aes256", KeyAlgorithm.KEY_ALGORITHM_AES_256, "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION"],
  ["rsa2048", KeyAlgorithm.KEY_ALGORITHM_RSA_2048, "ASYMMETRIC_DECRYPT", "RSA_DECRYPT_OAEP_2048_SHA256"],
  ["rsa3072", KeyAlgorithm.KEY_ALGORITHM_RSA_3072, "ASYMMETRIC_DECRYPT", "RSA_DECRYPT_OAEP_3072_SHA256"],
  ["rsa4096", KeyAlgorithm.KEY_ALGORITHM_RSA_4096, "ASYMMETRIC_DECRYPT", "RSA_DECRYPT_OAEP_4096_SHA256"],
  ["ec256", KeyAlgorithm.KEY_ALGORITHM_EC_P256, "ASYMMETRIC_SIGN", "EC_SIGN_P256_SHA256"],
  ["ec384", KeyAlgorithm.KEY_ALGORITHM_EC_P384, "ASYMMETRIC_SIGN", "EC_SIGN_P384_SHA384"],
  ["hmac256", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, "MAC", "HMAC_SHA256"],
  ["hmac384", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA384, "MAC", "HMAC_SHA384"],
  ["hmac512", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512, "MAC", "HMAC_SHA512"],
] as const;

async function world(emu: GcpKmsEmulator, vault: string) {
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  await rpc(c.vaults, c.vaults.createVault, { vaultId: vault, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  const good = { project: PROJECT, location: "europe-west1", keyRing: "mcko", endpoint: `http://${emu.endpoint}` };
  const addKeystore = async (id: string, ks: Keystore) => (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${vault}`, keystoreId: id, keystore: ks, requestId: "", validateOnly: false })).keystore!;
  const createKey = async (id: string, alg: KeyAlgorithm) => (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${vault}`, keyId: id, key: newKey(alg), initialState: 0, requestId: "" })).key!;
  const distribute = async (key: string, ks: string) => (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${vault}/keys/${key}`, keystore: `vaults/${vault}/keystores/${ks}`, requestId: "" })).distribution!;
  const get = async (key: string, ks: string, readLive = false) => (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${vault}/keys/${key}/distributions/${ks}`, readLive })).distribution!;
  const until = async (key: string, ks: string, pred: (d: Awaited<ReturnType<typeof get>>) => boolean) => {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const d = await get(key, ks);
      if (pred(d)) return d;
      if (Date.now() > deadline) throw new Error(`${key}: not reached; last ${JSON.stringify({ sync: d.syncState, observed: d.observedState, versions: d.versions.length, err: d.lastError })}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const cryptoKey = (id: string) => emu.admin.state().cryptoKeys.find((x) => x.name === `${RING}/cryptoKeys/${id}`);
  let stopped = false;
  return {
    home, daemon, c, k, good, addKeystore, createKey, distribute, get, until, cryptoKey,
    stop: async () => {
      if (!stopped) await daemon.stop();
      stopped = true;
    },
    close: async (h: Home) => {
      c.close();
      k.close();
      if (!stopped) await daemon.stop();
      h.cleanup();
    },
  };
}

test("every algorithm Google imports arrives with the vault's KCV; state, rotation, destroy and re-distribution are reflected at the emulator; cloud crypto checks out", async (t) => {
  t.timeout(400_000);
  const emu = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
  const w = await world(emu, "g");
  try {
    const dry = (await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: "vaults/g", keystoreId: "gcp", keystore: gcpKeystore(w.good), requestId: "", validateOnly: true })).keystore!;
    t.regex(dry.lastTestResult, /does not exist yet, the first push creates it/);
    await w.addKeystore("gcp", gcpKeystore(w.good));

    const vaultKeys = new Map<string, Awaited<ReturnType<typeof w.createKey>>>();
    for (const [id, alg, purpose, algorithm] of ALGORITHMS) {
      const key = await w.createKey(id, alg);
      vaultKeys.set(id, key);
      const d = await w.distribute(id, "gcp");
      t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}: ${d.lastError}`);
      t.is(d.cloudKeyUri, `${RING}/cryptoKeys/${id}`);
      const ck = w.cryptoKey(id)!;
      t.is(ck.purpose, purpose, id);
      t.is(ck.algorithm, algorithm, id);
      t.true(ck.importOnly, `${id} is import-only`);
      t.is(ck.protectionLevel, "HSM");
      t.is(ck.destroyScheduledDurationSeconds, 86_400, "deletion window 0 = Google's minimum, 24 hours");
      t.is(ck.versions.length, 1);
      t.true(ck.versions[0]!.imported);
      t.is(ck.versions[0]!.state, "ENABLED");
      t.is(ck.versions[0]!.kcv, key.versions[0]!.kcv, `${id}: the vault's material arrived`);
      t.like(ck.labels, { "mcko-vault": "g", "mcko-key": id, "mcko-keystore": "gcp", "mcko-version": "1", "mcko-request-id": d.requestId });
      if (purpose === "ENCRYPT_DECRYPT") t.is(ck.primary, ck.versions[0]!.name, "the imported version was made primary");
    }
    t.truthy(emu.admin.state().keyRings.find((r) => r.name === RING), "the key ring was created");
    const jobs = new Set(emu.admin.imports().map((i) => i.importJob));
    t.is(jobs.size, 1, "one ImportJob served every import");
    t.true(emu.admin.imports().every((i) => i.accepted && i.wrappingAlgorithm === "RSA_OAEP_3072_SHA256_AES_256" && i.field === "wrapped_key"));

    // AES-192 has no Google algorithm.
    const aes192 = await w.createKey("aes192", KeyAlgorithm.KEY_ALGORITHM_AES_192);
    const refused = await rpcError(w.k.distributions, w.k.distributions.createDistribution, { parent: aes192.name, keystore: "vaults/g/keystores/gcp", requestId: "" });
    t.is(refused.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");

    // Suspend → every version DISABLED; activate → ENABLED (asserted from the emulator's state).
    await rpc(w.c.keys, w.c.keys.setKeyState, { name: "vaults/g/keys/rsa2048", state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "t" });
    await w.until("rsa2048", "gcp", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.deepEqual(w.cryptoKey("rsa2048")!.versions.map((v) => v.state), ["DISABLED"]);
    await rpc(w.c.keys, w.c.keys.setKeyState, { name: "vaults/g/keys/rsa2048", state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "t" });
    await w.until("rsa2048", "gcp", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_ENABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.deepEqual(w.cryptoKey("rsa2048")!.versions.map((v) => v.state), ["ENABLED"]);

    // Rotation: a new imported version, primary for the symmetric key, newest for the asymmetric one.
    const aesRotated = (await rpc(w.c.keys, w.c.keys.rotateKey, { name: "vaults/g/keys/aes256", etag: "", requestId: "" })).key!;
    await w.until("aes256", "gcp", (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    let ck = w.cryptoKey("aes256")!;
    t.is(ck.versions.length, 2);
    t.is(ck.primary, ck.versions[1]!.name, "the rotated version is primary");
    t.is(ck.versions[1]!.kcv, aesRotated.versions[1]!.kcv);
    t.is(ck.versions[0]!.state, "ENABLED", "the old version still decrypts");
    t.is(ck.labels["mcko-version"], "2");
    const ecRotated = (await rpc(w.c.keys, w.c.keys.rotateKey, { name: "vaults/g/keys/ec256", etag: "", requestId: "" })).key!;
    await w.until("ec256", "gcp", (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    ck = w.cryptoKey("ec256")!;
    t.deepEqual(ck.versions.map((v) => v.kcv), [ecRotated.versions[0]!.kcv, ecRotated.versions[1]!.kcv]);

    // The ImportJob expires: the next import renews it.
    const [firstJob] = [...jobs];
    emu.admin.expireImportJob(firstJob!);
    const hmRotated = (await rpc(w.c.keys, w.c.keys.rotateKey, { name: "vaults/g/keys/hmac256", etag: "", requestId: "" })).key!;
    await w.until("hmac256", "gcp", (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    const jobStates = emu.admin.state().importJobs;
    t.is(jobStates.length, 2, "a second ImportJob was created");
    t.is(jobStates.find((j) => j.name === firstJob)!.state, "EXPIRED");
    const renewed = jobStates.find((j) => j.name !== firstJob)!;
    t.is(renewed.state, "ACTIVE");
    t.is(renewed.importMethod, "RSA_OAEP_3072_SHA256_AES_256");
    t.is(emu.admin.imports().at(-1)!.importJob, renewed.name, "the rotation's import used the renewed job");
    t.is(w.cryptoKey("hmac256")!.versions[1]!.kcv, hmRotated.versions[1]!.kcv);

    // Drift: the current version disabled out of band is seen live and repaired by SyncDistribution.
    emu.admin.disableVersion(w.cryptoKey("ec384")!.versions[0]!.name);
    const drifted = await w.get("ec384", "gcp", true);
    t.is(drifted.syncState, SyncState.SYNC_STATE_DRIFTED);
    await rpc(w.k.distributions, w.k.distributions.syncDistribution, { name: drifted.name });
    t.is(w.cryptoKey("ec384")!.versions[0]!.state, "ENABLED");

    // Deleted out of band (only the emulator can): SyncDistribution pushes the vault's copy again.
    emu.admin.deleteCryptoKey(`${RING}/cryptoKeys/hmac512`);
    t.is((await w.get("hmac512", "gcp", true)).syncState, SyncState.SYNC_STATE_DRIFTED);
    await rpc(w.k.distributions, w.k.distributions.syncDistribution, { name: "vaults/g/keys/hmac512/distributions/gcp" });
    t.is(w.cryptoKey("hmac512")!.versions[0]!.kcv, vaultKeys.get("hmac512")!.versions[0]!.kcv);

    // Destroyed: every version DESTROY_SCHEDULED, the CryptoKey stays, and the distribution says so.
    await rpc(w.c.keys, w.c.keys.setKeyState, { name: "vaults/g/keys/ec384", state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "t" });
    await rpc(w.c.keys, w.c.keys.setKeyState, { name: "vaults/g/keys/ec384", state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "t" });
    const destroyed = await w.until("ec384", "gcp", (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED);
    ck = w.cryptoKey("ec384")!;
    t.truthy(ck, "a Google CryptoKey is never deleted");
    t.deepEqual(ck.versions.map((v) => v.state), ["DESTROY_SCHEDULED"]);
    t.true(destroyed.warnings.some((m) => m.includes(`cannot delete CryptoKey ${RING}/cryptoKeys/ec384`)), destroyed.warnings.join("; "));
    emu.admin.advanceClock(86_400 + 1);
    t.deepEqual(w.cryptoKey("ec384")!.versions.map((v) => [v.state, v.hasMaterial]), [["DESTROYED", false]], "after the window the material is gone");

    // A deleted distribution destroys the versions; made again, it finds its old CryptoKey and imports anew.
    await rpc(w.k.distributions, w.k.distributions.deleteDistribution, { name: "vaults/g/keys/rsa3072/distributions/gcp" });
    t.deepEqual(w.cryptoKey("rsa3072")!.versions.map((v) => v.state), ["DESTROY_SCHEDULED"]);
    const again = await w.distribute("rsa3072", "gcp");
    t.is(again.syncState, SyncState.SYNC_STATE_IN_SYNC, again.lastError);
    ck = w.cryptoKey("rsa3072")!;
    t.deepEqual(ck.versions.map((v) => v.state), ["DESTROY_SCHEDULED", "ENABLED"]);
    t.is(ck.versions[1]!.kcv, vaultKeys.get("rsa3072")!.versions[0]!.kcv);
    t.is(ck.labels["mcko-request-id"], again.requestId);
    t.is(again.versions[0]!.cloudVersionId, "2", "the new CryptoKeyVersion");

    // Cloud-made crypto, through the official client: AES-256 Encrypt, EC sign, RSA decrypt, HMAC.
    const kms = new KeyManagementServiceClient({ apiEndpoint: "127.0.0.1", port: emu.port, sslCreds: grpc.credentials.createInsecure(), universeDomain: "googleapis.com" });
    try {
      const [enc] = await kms.encrypt({ name: `${RING}/cryptoKeys/aes256`, plaintext: Buffer.from("made in google") });
      const ct = Buffer.from(enc.ciphertext as Uint8Array);
      t.is(ct[0], 1);
      t.is(ct.readUInt32BE(1), 2, "encrypted under the primary, version 2");
      const digest = createHash("sha256").update("sign me").digest();
      const [sig] = await kms.asymmetricSign({ name: `${RING}/cryptoKeys/ec256/cryptoKeyVersions/2`, digest: { sha256: digest } });
      const ecPub = createPublicKey({ key: Buffer.from(ecRotated.versions[1]!.publicKey), format: "der", type: "spki" });
      t.true(verify("sha256", Buffer.from("sign me"), ecPub, Buffer.from(sig.signature as Uint8Array)), "a Google signature verifies with the vault's public key");
      const rsaPub = createPublicKey({ key: Buffer.from(vaultKeys.get("rsa4096")!.versions[0]!.publicKey), format: "der", type: "spki" });
      const sealed = publicEncrypt({ key: rsaPub, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from("for google"));
      const [dec] = await kms.asymmetricDecrypt({ name: `${RING}/cryptoKeys/rsa4096/cryptoKeyVersions/1`, ciphertext: sealed });
      t.is(Buffer.from(dec.plaintext as Uint8Array).toString(), "for google", "Google decrypts what the vault's public key sealed");
      const [mac] = await kms.macSign({ name: `${RING}/cryptoKeys/hmac384/cryptoKeyVersions/1`, data: Buffer.from("mac me") });
      await w.stop();
      const materials = await vaultMaterials(w.home, "g");
      const aes = materials.get("aes256")!.get(2)!;
      const d = createDecipheriv("aes-256-gcm", aes, ct.subarray(5, 17));
      d.setAuthTag(ct.subarray(ct.length - 16));
      t.is(Buffer.concat([d.update(ct.subarray(17, ct.length - 16)), d.final()]).toString(), "made in google", "the vault's copy decrypts Google's ciphertext");
      const hm = materials.get("hmac384")!.get(1)!;
      t.deepEqual(Buffer.from(mac.mac as Uint8Array), createHmac("sha384", hm).update("mac me").digest(), "Google's MAC equals the vault copy's");
      aes.fill(0);
      hm.fill(0);
    } finally {
      await kms.close();
    }
  } finally {
    await w.close(w.home);
    await emu.close();
  }
});

test("bad input (malformed endpoint, missing project, wrong credentials, a project the cloud refuses, an algorithm Google cannot import) gets a clear error naming the field, and nothing stored changes", async (t) => {
  t.timeout(200_000);
  const emu = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
  const w = await world(emu, "b");
  try {
    await w.addKeystore("gcp", gcpKeystore(w.good));
    await w.createKey("aes192", KeyAlgorithm.KEY_ALGORITHM_AES_192);
    const snapshot = async () => ({
      keystores: (await rpc(w.k.keystores, w.k.keystores.listKeystores, { parent: "vaults/b", pageSize: 0, pageToken: "" })).keystores.map((x) => `${x.name}:${x.etag}`),
      distributions: (await rpc(w.k.distributions, w.k.distributions.listDistributions, { parent: "vaults/b/keys/-", pageSize: 0, pageToken: "", keystore: "" })).distributions.map((x) => x.name),
      cloud: JSON.stringify({ rings: emu.admin.state().keyRings.length, keys: emu.admin.state().cryptoKeys.length }),
    });
    const before = await snapshot();
    const create = (id: string, ks: Keystore, validateOnly = false) => rpcError(w.k.keystores, w.k.keystores.createKeystore, { parent: "vaults/b", keystoreId: id, keystore: ks, requestId: "", validateOnly });

    let f = await create("x1", gcpKeystore({ ...w.good, endpoint: "grpc://127.0.0.1::1/x?y" }));
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.endpoint"], f.message);
    f = await create("x2", gcpKeystore({ ...w.good, endpoint: "http://127.0.0.1" }));
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.endpoint"], "a plaintext endpoint needs a port");
    f = await create("x3", gcpKeystore({ ...w.good, project: "" }));
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.project"], f.message);
    t.regex(f.message, /project/);
    f = await create("x4", gcpKeystore({ ...w.good, project: "Not A Project", location: "", keyRing: "bad/ring" }));
    t.deepEqual([...f.fieldViolations].sort(), ["keystore.gcp_kms.key_ring", "keystore.gcp_kms.location", "keystore.gcp_kms.project"]);
    // Credentials that are not a service account key; a key whose private key is not one; any with a plaintext endpoint.
    f = await create("x5", gcpKeystore({ ...w.good, endpoint: "https://127.0.0.1:1", credentialsJson: "{not json" }));
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.credentials_json"], f.message);
    t.false(f.message.includes("{not json"), "the credentials are not echoed");
    f = await create("x6", gcpKeystore({ ...w.good, endpoint: "https://127.0.0.1:1", credentialsJson: JSON.stringify({ type: "service_account", client_email: "a@b.iam.gserviceaccount.com", private_key: "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n" }) }));
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.credentials_json"]);
    t.regex(f.message, /private_key is not a PEM private key/);
    const sa = JSON.stringify({ type: "service_account", client_email: "mcko@p.iam.gserviceaccount.com", private_key: generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString() });
    f = await create("x7", gcpKeystore({ ...w.good, credentialsJson: sa }));
    t.deepEqual(f.fieldViolations, ["keystore.gcp_kms.credentials_json"]);
    t.regex(f.message, /plaintext/);
    t.false(f.message.includes("PRIVATE KEY"));
    // Unknown import method / protection level numbers.
    f = await create("x8", gcpKeystore({ ...w.good, importMethod: 42 as GcpImportMethod, protectionLevel: 9 as GcpProtectionLevel }));
    t.deepEqual([...f.fieldViolations].sort(), ["keystore.gcp_kms.import_method", "keystore.gcp_kms.protection_level"]);
    // A project these credentials may not use: the cloud's refusal, dry run, naming the cloud's code.
    f = await create("x9", gcpKeystore({ ...w.good, project: "someone-else" }), true);
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.is(f.metadata.cloudErrorCode, "PERMISSION_DENIED");
    // Unreachable endpoint, dry run.
    f = await create("x10", gcpKeystore({ ...w.good, endpoint: "http://127.0.0.1:1" }), true);
    t.is(f.code, grpc.status.UNAVAILABLE, f.message);
    t.deepEqual(await snapshot(), before, "nothing was stored, nothing reached the cloud");

    // A stored keystore whose project is refused: TestKeystore says so, a push is refused and rolled back.
    await w.addKeystore("elsewhere", gcpKeystore({ ...w.good, project: "someone-else" }));
    const tested = await rpc(w.k.keystores, w.k.keystores.testKeystore, { name: "vaults/b/keystores/elsewhere" });
    t.false(tested.ok);
    t.is(tested.cloudErrorCode, "PERMISSION_DENIED");
    const key = await w.createKey("dek", KeyAlgorithm.KEY_ALGORITHM_AES_256);
    const before2 = await snapshot();
    f = await rpcError(w.k.distributions, w.k.distributions.createDistribution, { parent: key.name, keystore: "vaults/b/keystores/elsewhere", requestId: "" });
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.deepEqual(await snapshot(), before2, "the refused push left no distribution and no cloud key");

    // An algorithm Google cannot import.
    f = await rpcError(w.k.distributions, w.k.distributions.createDistribution, { parent: "vaults/b/keys/aes192", keystore: "vaults/b/keystores/gcp", requestId: "" });
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
    t.regex(f.message, /192/);
    t.deepEqual(await snapshot(), before2);
  } finally {
    await w.close(w.home);
    await emu.close();
  }
});

test("other import methods and the SOFTWARE protection level are selectable; a plain RSA-OAEP method carries asymmetric keys through its RSA-AES variant", async (t) => {
  t.timeout(200_000);
  const emu = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
  const w = await world(emu, "m");
  try {
    const cases = [
      ["sha1x4096", GcpImportMethod.GCP_IMPORT_METHOD_RSA_OAEP_4096_SHA1_AES_256, "RSA_OAEP_4096_SHA1_AES_256"],
      ["sha256x4096", GcpImportMethod.GCP_IMPORT_METHOD_RSA_OAEP_4096_SHA256_AES_256, "RSA_OAEP_4096_SHA256_AES_256"],
      ["sha1x3072", GcpImportMethod.GCP_IMPORT_METHOD_RSA_OAEP_3072_SHA1_AES_256, "RSA_OAEP_3072_SHA1_AES_256"],
      ["plain3072", GcpImportMethod.GCP_IMPORT_METHOD_RSA_OAEP_3072_SHA256, "RSA_OAEP_3072_SHA256"],
    ] as const;
    const aes = await w.createKey("aes", KeyAlgorithm.KEY_ALGORITHM_AES_256);
    const ec = await w.createKey("ec", KeyAlgorithm.KEY_ALGORITHM_EC_P256);
    for (const [id, method, name] of cases) {
      const ks = await w.addKeystore(id, gcpKeystore({ ...w.good, keyRing: id, importMethod: method, protectionLevel: GcpProtectionLevel.GCP_PROTECTION_LEVEL_SOFTWARE }));
      t.is(ks.config?.$case === "gcpKms" ? ks.config.value.importMethod : -1, method, "the method reads back");
      for (const key of [aes, ec]) {
        const keyId = key.name.split("/").pop()!;
        const d = await w.distribute(keyId, id);
        t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}/${keyId}: ${d.lastError}`);
        const ck = emu.admin.state().cryptoKeys.find((x) => x.name === `projects/${PROJECT}/locations/europe-west1/keyRings/${id}/cryptoKeys/${keyId}`)!;
        t.is(ck.protectionLevel, "SOFTWARE");
        t.is(ck.versions[0]!.kcv, key.versions[0]!.kcv, `${id}/${keyId}`);
        const imp = emu.admin.imports().find((i) => i.keyRef === ck.name)!;
        const expected = keyId === "ec" && name === "RSA_OAEP_3072_SHA256" ? "RSA_OAEP_3072_SHA256_AES_256" : name;
        t.is(imp.wrappingAlgorithm, expected, `${id}/${keyId}`);
      }
    }
  } finally {
    await w.close(w.home);
    await emu.close();
  }
});

test("mcko keystore add --type gcp-kms: validate-only, add, distribute; a service account key file is refused for a plaintext endpoint, naming the field", async (t) => {
  t.timeout(200_000);
  const emu = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
  const home = await makeHome({ reconcileIntervalMs: 200 });
  const daemon = await startDaemonProcess(home);
  const run = promisify(execFile);
  const mcko = (...args: string[]) =>
    run(MCKO_BIN, args, { env: { ...process.env, MCKO_HOME: home.dir, MCKO_ADDR: daemon.address } }).then(
      (r) => ({ ...r, code: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
  try {
    t.is((await mcko("vault", "create", "cli")).code, 0);
    const where = ["--type", "gcp-kms", "--project", PROJECT, "--location", "europe-west1", "--key-ring", "cli", "--endpoint", `http://${emu.endpoint}`];
    const dry = await mcko("keystore", "add", "cli/gcp", ...where, "--validate-only");
    t.is(dry.code, 0, dry.stderr);
    t.regex(dry.stdout, /valid: .*plaintext gRPC/);
    const saFile = join(home.dir, "sa.json");
    const pem = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" }).toString();
    writeFileSync(saFile, JSON.stringify({ type: "service_account", project_id: PROJECT, client_email: "mcko@mcko-test.iam.gserviceaccount.com", private_key: pem }), { mode: 0o600 });
    const refused = await mcko("keystore", "add", "cli/gcp", ...where, "--credentials-file", saFile);
    t.not(refused.code, 0);
    t.regex(refused.stderr, /credentials_json/);
    t.false(`${refused.stdout}${refused.stderr}`.includes("PRIVATE KEY"), "the key never shows");
    const bad = await mcko("keystore", "add", "cli/gcp", ...where, "--import-method", "RSA_2048");
    t.not(bad.code, 0);
    t.regex(bad.stderr, /--import-method/);
    const added = await mcko("keystore", "add", "cli/gcp", ...where, "--import-method", "RSA_OAEP_4096_SHA256_AES_256", "--protection-level", "SOFTWARE");
    t.is(added.code, 0, added.stderr);
    t.regex(added.stdout, /RSA_OAEP_4096_SHA256_AES_256|importMethod/);
    t.is((await mcko("key", "create", "cli/dek", "--algorithm", "AES_256")).code, 0);
    const pushed = await mcko("distribute", "cli/dek", "--keystore", "cli/gcp");
    t.is(pushed.code, 0, pushed.stderr);
    const ck = emu.admin.state().cryptoKeys.find((x) => x.name === `projects/${PROJECT}/locations/europe-west1/keyRings/cli/cryptoKeys/dek`)!;
    t.is(ck.protectionLevel, "SOFTWARE");
    t.is(emu.admin.imports().at(-1)!.wrappingAlgorithm, "RSA_OAEP_4096_SHA256_AES_256");
    const shown = await mcko("-o", "json", "key", "show", "cli/dek");
    t.is(ck.versions[0]!.kcv, (JSON.parse(shown.stdout) as { versions: { kcv: string }[] }).versions[0]!.kcv);
  } finally {
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
