// The Cloud KMS emulator driven only through @google-cloud/kms: real BYOK wrapping for every import method,
// the material proven by KCV and by cryptography, real status codes, faults, out-of-band changes, and an
// OpenSSL command-line unwrap of a captured wrapped key.
import test from "ava";
import { execFileSync } from "node:child_process";
import crypto, { type KeyObject } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as grpc from "@grpc/grpc-js";
import { KeyManagementServiceClient, type protos } from "@google-cloud/kms";
import { startGcpKmsEmulator, crc32c, type GcpKmsEmulator } from "./gcp-kms/index.js";

type KmsV1 = typeof protos.google.cloud.kms.v1;
type Method = keyof KmsV1["ImportJob"]["ImportMethod"];
type Algorithm = keyof KmsV1["CryptoKeyVersion"]["CryptoKeyVersionAlgorithm"];
type Purpose = keyof KmsV1["CryptoKey"]["CryptoKeyPurpose"];

const PROJECT = "mcko-test";
const LOCATION = `projects/${PROJECT}/locations/global`;
const KWP_IV = Buffer.from("A65959A6", "hex");

let emulator: GcpKmsEmulator;
let client: KeyManagementServiceClient;
let ringCounter = 0;

test.before(async () => {
  emulator = await startGcpKmsEmulator({ projects: [PROJECT], reuseWrappingKeys: true });
  client = new KeyManagementServiceClient({
    apiEndpoint: "127.0.0.1", port: emulator.port, sslCreds: grpc.credentials.createInsecure(), universeDomain: "googleapis.com",
  });
});

test.after.always(async () => {
  await client?.close();
  await emulator?.close();
});

// ---- helpers: what a real BYOK client does --------------------------------------------------------------------
function aesKcv(key: Buffer): string {
  const c = crypto.createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return Buffer.concat([c.update(Buffer.alloc(16)), c.final()]).subarray(0, 3).toString("hex");
}
const hmacKcv = (hash: string, key: Buffer) => crypto.createHmac(hash, key).update(Buffer.alloc(0)).digest().subarray(0, 3).toString("hex");
const spkiKcv = (k: KeyObject) => crypto.createHash("sha256").update(crypto.createPublicKey(k).export({ format: "der", type: "spki" })).digest("hex");

function wrapForMethod(method: string, publicKeyPem: string, material: Buffer): Buffer {
  const sha = method.includes("SHA256") ? "sha256" : "sha1";
  const oaep = (data: Buffer) => crypto.publicEncrypt({ key: publicKeyPem, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: sha }, data);
  if (!method.endsWith("_AES_256")) return oaep(material);
  const ephemeral = crypto.randomBytes(32);
  const kwp = crypto.createCipheriv("id-aes256-wrap-pad", ephemeral, KWP_IV);
  return Buffer.concat([oaep(ephemeral), kwp.update(material), kwp.final()]);
}

/** Decrypts an emulator Encrypt ciphertext with the local copy of the material (layout in gcp-kms/README.md). */
function localDecrypt(key: Buffer, ciphertext: Buffer, aad: Buffer): { versionId: number; plaintext: Buffer } {
  const d = crypto.createDecipheriv("aes-256-gcm", key, ciphertext.subarray(5, 17));
  d.setAAD(aad);
  d.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
  return { versionId: ciphertext.readUInt32BE(1), plaintext: Buffer.concat([d.update(ciphertext.subarray(17, ciphertext.length - 16)), d.final()]) };
}

function localEncrypt(versionId: number, key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  const header = Buffer.alloc(5);
  header[0] = 1;
  header.writeUInt32BE(versionId, 1);
  return Buffer.concat([header, iv, body, c.getAuthTag()]);
}

async function newRing(): Promise<string> {
  const [ring] = await client.createKeyRing({ parent: LOCATION, keyRingId: `ring-${process.pid}-${++ringCounter}`, keyRing: {} });
  return ring.name ?? "";
}

async function importJob(ring: string, id: string, method: Method): Promise<{ name: string; pem: string }> {
  await client.createImportJob({ parent: ring, importJobId: id, importJob: { importMethod: method, protectionLevel: "HSM" } });
  const [job] = await client.getImportJob({ name: `${ring}/importJobs/${id}` });
  return { name: job.name ?? "", pem: job.publicKey?.pem ?? "" };
}

async function importOnlyKey(ring: string, id: string, purpose: Purpose, algorithm: Algorithm): Promise<string> {
  const [key] = await client.createCryptoKey({
    parent: ring, cryptoKeyId: id, skipInitialVersionCreation: true,
    cryptoKey: { purpose, importOnly: true, versionTemplate: { algorithm, protectionLevel: "HSM" }, destroyScheduledDuration: { seconds: 86400 } },
  });
  return key.name ?? "";
}

async function expectCode(t: { fail(m: string): void; is(a: unknown, b: unknown, m?: string): void }, p: Promise<unknown>, code: grpc.status): Promise<string> {
  try {
    await p;
  } catch (err) {
    const e = err as { code?: number; details?: string };
    t.is(e.code, code, `expected ${grpc.status[code]}, got ${e.code} ${e.details}`);
    return e.details ?? "";
  }
  t.fail(`expected ${grpc.status[code]}, the call succeeded`);
  return "";
}

// ---- tests ----------------------------------------------------------------------------------------------------
const METHODS: Method[] = [
  "RSA_OAEP_3072_SHA1_AES_256", "RSA_OAEP_4096_SHA1_AES_256", "RSA_OAEP_3072_SHA256_AES_256",
  "RSA_OAEP_4096_SHA256_AES_256", "RSA_OAEP_3072_SHA256", "RSA_OAEP_4096_SHA256",
];

test.serial("every import method delivers AES-256 material: KCV matches and ciphertexts cross both ways", async (t) => {
  const ring = await newRing();
  for (const method of METHODS) {
    const id = method.toLowerCase().replace(/_/g, "-");
    const job = await importJob(ring, id, method);
    t.regex(job.pem, /^-----BEGIN PUBLIC KEY-----/, method);
    const keyName = await importOnlyKey(ring, id, "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
    const material = crypto.randomBytes(32);
    const [version] = await client.importCryptoKeyVersion({
      parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapForMethod(method, job.pem, material),
    });
    t.is(version.state, "ENABLED", method);
    t.is(version.name, `${keyName}/cryptoKeyVersions/1`);
    t.is(emulator.admin.kcv(version.name ?? ""), aesKcv(material), method);
    await client.updateCryptoKeyPrimaryVersion({ name: keyName, cryptoKeyVersionId: "1" });

    const plaintext = Buffer.from(`secret for ${method}`);
    const aad = Buffer.from("context");
    const [enc] = await client.encrypt({ name: keyName, plaintext, additionalAuthenticatedData: aad, plaintextCrc32c: { value: crc32c(plaintext) } });
    t.true(enc.verifiedPlaintextCrc32c);
    t.is(Number(enc.ciphertextCrc32c?.value), crc32c(Buffer.from(enc.ciphertext as Uint8Array)));
    const local = localDecrypt(material, Buffer.from(enc.ciphertext as Uint8Array), aad);
    t.deepEqual(local, { versionId: 1, plaintext });

    const [dec] = await client.decrypt({ name: keyName, ciphertext: localEncrypt(1, material, plaintext, aad), additionalAuthenticatedData: aad });
    t.deepEqual(Buffer.from(dec.plaintext as Uint8Array), plaintext);
    t.true(dec.usedPrimary);
  }
});

test.serial("asymmetric and MAC imports: KCV, signatures, decryption and MACs use the imported material", async (t) => {
  const ring = await newRing();
  const job = await importJob(ring, "job", "RSA_OAEP_3072_SHA256_AES_256");
  const rsa = crypto.generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const cases: { alg: Algorithm; purpose: Purpose; key: KeyObject }[] = [
    { alg: "RSA_SIGN_PSS_2048_SHA256", purpose: "ASYMMETRIC_SIGN", key: rsa },
    { alg: "RSA_SIGN_PKCS1_2048_SHA256", purpose: "ASYMMETRIC_SIGN", key: rsa },
    { alg: "RSA_DECRYPT_OAEP_2048_SHA256", purpose: "ASYMMETRIC_DECRYPT", key: rsa },
    { alg: "RSA_DECRYPT_OAEP_2048_SHA1", purpose: "ASYMMETRIC_DECRYPT", key: rsa },
    { alg: "EC_SIGN_P256_SHA256", purpose: "ASYMMETRIC_SIGN", key: crypto.generateKeyPairSync("ec", { namedCurve: "P-256" }).privateKey },
    { alg: "EC_SIGN_P384_SHA384", purpose: "ASYMMETRIC_SIGN", key: crypto.generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey },
    { alg: "EC_SIGN_SECP256K1_SHA256", purpose: "ASYMMETRIC_SIGN", key: crypto.generateKeyPairSync("ec", { namedCurve: "secp256k1" }).privateKey },
    { alg: "EC_SIGN_ED25519", purpose: "ASYMMETRIC_SIGN", key: crypto.generateKeyPairSync("ed25519").privateKey },
  ];
  for (const [i, c] of cases.entries()) {
    const keyName = await importOnlyKey(ring, `asym-${i}`, c.purpose, c.alg);
    const der = c.key.export({ format: "der", type: "pkcs8" });
    const [v] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: c.alg, importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA256_AES_256", job.pem, der) });
    t.is(v.state, "ENABLED", c.alg);
    t.is(emulator.admin.kcv(v.name ?? ""), spkiKcv(c.key), c.alg);
    const [pub] = await client.getPublicKey({ name: v.name });
    t.is(pub.pem, crypto.createPublicKey(c.key).export({ format: "pem", type: "spki" }).toString(), c.alg);
    t.is(Number(pub.pemCrc32c?.value), crc32c(Buffer.from(pub.pem ?? "")));
    const publicKey = crypto.createPublicKey(pub.pem ?? "");
    const message = Buffer.from(`message for ${c.alg}`);
    if (c.alg.startsWith("RSA_DECRYPT")) {
      const hash = c.alg.endsWith("SHA1") ? "sha1" : "sha256";
      const ct = crypto.publicEncrypt({ key: publicKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, message);
      const [dec] = await client.asymmetricDecrypt({ name: v.name, ciphertext: ct });
      t.deepEqual(Buffer.from(dec.plaintext as Uint8Array), message, c.alg);
    } else if (c.alg === "EC_SIGN_ED25519") {
      const [sig] = await client.asymmetricSign({ name: v.name, data: message });
      t.true(crypto.verify(null, message, publicKey, Buffer.from(sig.signature as Uint8Array)), c.alg);
    } else {
      const hash = c.alg.endsWith("SHA384") ? "sha384" : "sha256";
      const digest = crypto.createHash(hash).update(message).digest();
      const [sig] = await client.asymmetricSign({ name: v.name, digest: { [hash]: digest }, digestCrc32c: { value: crc32c(digest) } });
      t.true(sig.verifiedDigestCrc32c, c.alg);
      const verifyKey = c.alg.includes("PSS")
        ? { key: publicKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }
        : publicKey;
      t.true(crypto.verify(hash, message, verifyKey, Buffer.from(sig.signature as Uint8Array)), c.alg);
    }
  }

  for (const [alg, hash] of [["HMAC_SHA256", "sha256"], ["HMAC_SHA512", "sha512"]] as const) {
    const keyName = await importOnlyKey(ring, alg.toLowerCase().replace(/_/g, "-"), "MAC", alg);
    const material = crypto.randomBytes(32);
    const [v] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: alg, importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA256_AES_256", job.pem, material) });
    t.is(emulator.admin.kcv(v.name ?? ""), hmacKcv(hash, material), alg);
    const data = Buffer.from("mac me");
    const [mac] = await client.macSign({ name: v.name, data });
    t.deepEqual(Buffer.from(mac.mac as Uint8Array), crypto.createHmac(hash, material).update(data).digest(), alg);
    const [ok] = await client.macVerify({ name: v.name, data, mac: mac.mac });
    t.true(ok.success);
    const [bad] = await client.macVerify({ name: v.name, data: Buffer.from("other"), mac: mac.mac });
    t.false(bad.success);
  }
});

test.serial("real status codes and messages; rejected requests change nothing", async (t) => {
  const ring = await newRing();
  const missing = `${ring}/cryptoKeys/nope`;
  t.is(await expectCode(t, client.getCryptoKey({ name: missing }), grpc.status.NOT_FOUND), `CryptoKey ${missing} not found.`);
  t.is(await expectCode(t, client.getKeyRing({ name: `${LOCATION}/keyRings/absent` }), grpc.status.NOT_FOUND), `KeyRing ${LOCATION}/keyRings/absent not found.`);
  const ringId = ring.split("/").pop() ?? "";
  const before = emulator.admin.state().keyRings.length;
  t.is(await expectCode(t, client.createKeyRing({ parent: LOCATION, keyRingId: ringId, keyRing: {} }), grpc.status.ALREADY_EXISTS), `KeyRing ${ring} already exists.`);
  t.is(emulator.admin.state().keyRings.length, before);
  await expectCode(t, client.createImportJob({ parent: ring, importJobId: "bad", importJob: { importMethod: "HPKE_KEM_XWING_HKDF_SHA256_AES_256_GCM", protectionLevel: "HSM" } }), grpc.status.INVALID_ARGUMENT);
  t.false(emulator.admin.state().importJobs.some((j) => j.name === `${ring}/importJobs/bad`));
  t.regex(await expectCode(t, client.getKeyRing({ name: "projects/other/locations/global/keyRings/r" }), grpc.status.PERMISSION_DENIED), /^Permission 'cloudkms.keyRings.get' denied on resource/);

  const job = await importJob(ring, "job", "RSA_OAEP_3072_SHA1_AES_256");
  const keyName = await importOnlyKey(ring, "k", "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
  t.regex(await expectCode(t, client.importCryptoKeyVersion({ parent: keyName, algorithm: "EC_SIGN_P256_SHA256", importJob: job.name, wrappedKey: Buffer.alloc(400) }), grpc.status.INVALID_ARGUMENT), /not compatible with CryptoKey purpose ENCRYPT_DECRYPT/);
  t.is(emulator.admin.state().cryptoKeys.find((k) => k.name === keyName)?.versions.length, 0);

  // A blob wrapped for another key fails the import; the version records why.
  const [failed] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: crypto.randomBytes(384 + 40) });
  t.is(failed.state, "IMPORT_FAILED");
  t.truthy(failed.importFailureReason);

  const material = crypto.randomBytes(32);
  const [v2] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA1_AES_256", job.pem, material) });
  t.is(v2.name, `${keyName}/cryptoKeyVersions/2`);
  t.is(await expectCode(t, client.encrypt({ name: keyName, plaintext: Buffer.from("x") }), grpc.status.FAILED_PRECONDITION), `${keyName} does not have a primary CryptoKeyVersion.`);
  await client.updateCryptoKeyPrimaryVersion({ name: keyName, cryptoKeyVersionId: "2" });
  t.regex(await expectCode(t, client.encrypt({ name: keyName, plaintext: Buffer.from("x"), plaintextCrc32c: { value: 12345 } }), grpc.status.INVALID_ARGUMENT), /checksum in field plaintext_crc32c/);
  await client.updateCryptoKeyVersion({ cryptoKeyVersion: { name: v2.name, state: "DISABLED" }, updateMask: { paths: ["state"] } });
  t.is(await expectCode(t, client.encrypt({ name: keyName, plaintext: Buffer.from("x") }), grpc.status.FAILED_PRECONDITION), `${v2.name} is not enabled, current state is: DISABLED.`);
  t.is(await expectCode(t, client.decrypt({ name: keyName, ciphertext: Buffer.from("garbage-that-is-long-enough-to-parse-0123456789") }), grpc.status.INVALID_ARGUMENT), "Decryption failed: verify that 'name' refers to the correct CryptoKey.");

  emulator.admin.expireImportJob(job.name);
  t.regex(await expectCode(t, client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA1_AES_256", job.pem, material) }), grpc.status.FAILED_PRECONDITION), /is not active, current state is: EXPIRED/);
});

test.serial("version lifecycle: disable, destroy schedule, restore, destroy, re-import with the same material", async (t) => {
  const ring = await newRing();
  const job = await importJob(ring, "job", "RSA_OAEP_4096_SHA256_AES_256");
  const keyName = await importOnlyKey(ring, "k", "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
  const material = crypto.randomBytes(32);
  const wrapped = () => wrapForMethod("RSA_OAEP_4096_SHA256_AES_256", job.pem, material);
  const [v] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapped() });
  const name = v.name ?? "";
  const stateOf = () => emulator.admin.state().cryptoKeys.find((k) => k.name === keyName)?.versions[0];

  const [disabled] = await client.updateCryptoKeyVersion({ cryptoKeyVersion: { name, state: "DISABLED" }, updateMask: { paths: ["state"] } });
  t.is(disabled.state, "DISABLED");
  t.is(stateOf()?.state, "DISABLED");
  const [destroying] = await client.destroyCryptoKeyVersion({ name });
  t.is(destroying.state, "DESTROY_SCHEDULED");
  const now = Date.parse(emulator.admin.state().now);
  const destroyAt = Number(destroying.destroyTime?.seconds) * 1000;
  t.true(Math.abs(destroyAt - (now + 86_400_000)) < 60_000, "destroy_time = now + destroy_scheduled_duration (24 h)");
  await expectCode(t, client.destroyCryptoKeyVersion({ name }), grpc.status.FAILED_PRECONDITION);
  const [restored] = await client.restoreCryptoKeyVersion({ name });
  t.is(restored.state, "DISABLED");

  await client.destroyCryptoKeyVersion({ name });
  emulator.admin.advanceClock(86_400 + 1);
  const [gone] = await client.getCryptoKeyVersion({ name });
  t.is(gone.state, "DESTROYED");
  t.truthy(gone.destroyEventTime);
  t.true(gone.reimportEligible);
  t.is(emulator.admin.kcv(name), undefined, "destroyed material is erased");
  t.false(stateOf()?.hasMaterial);

  const other = wrapForMethod("RSA_OAEP_4096_SHA256_AES_256", job.pem, crypto.randomBytes(32));
  const [mismatch] = await client.importCryptoKeyVersion({ parent: keyName, cryptoKeyVersion: name, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: other });
  t.is(mismatch.state, "IMPORT_FAILED");
  const [back] = await client.importCryptoKeyVersion({ parent: keyName, cryptoKeyVersion: name, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapped() });
  t.is(back.state, "ENABLED");
  t.is(back.name, name);
  t.is(emulator.admin.kcv(name), aesKcv(material));
  const [list] = await client.listCryptoKeyVersions({ parent: keyName });
  t.is(list.length, 1, "re-import reused the version, no new one");
});

test.serial("faults reach the client as Cloud KMS errors; retries and timeouts behave like the real service", async (t) => {
  const ring = await newRing();
  const [key] = await client.createCryptoKey({ parent: ring, cryptoKeyId: "k", cryptoKey: { purpose: "ENCRYPT_DECRYPT" } });
  const keyName = key.name ?? "";
  t.is(key.primary?.state, "ENABLED", "a generated initial version becomes primary");
  const admin = emulator.admin;

  admin.failNext({ operation: "Encrypt", kind: "throttle" });
  t.regex(await expectCode(t, client.encrypt({ name: keyName, plaintext: Buffer.from("x") }), grpc.status.RESOURCE_EXHAUSTED), /^Quota exceeded/);
  const [ok] = await client.encrypt({ name: keyName, plaintext: Buffer.from("x") });
  t.truthy(ok.ciphertext);

  // GetCryptoKey is retried by the client on UNAVAILABLE: the second attempt succeeds.
  admin.failNext({ operation: "GetCryptoKey", kind: "server-error" });
  const [got] = await client.getCryptoKey({ name: keyName });
  t.is(got.name, keyName);
  t.deepEqual(admin.calls().filter((c) => c.operation === "GetCryptoKey" && c.target === keyName).map((c) => c.error ?? "OK"), ["UNAVAILABLE", "OK"]);

  // ImportCryptoKeyVersion is not retried: the client sees UNAVAILABLE and nothing was created.
  const job = await importJob(ring, "job", "RSA_OAEP_3072_SHA256");
  const importKey = await importOnlyKey(ring, "imp", "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
  admin.failNext({ operation: "ImportCryptoKeyVersion", kind: "server-error" });
  const wrappedKey = wrapForMethod("RSA_OAEP_3072_SHA256", job.pem, crypto.randomBytes(32));
  t.is(await expectCode(t, client.importCryptoKeyVersion({ parent: importKey, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey }), grpc.status.UNAVAILABLE), "The service is currently unavailable.");
  t.is(admin.state().cryptoKeys.find((k) => k.name === importKey)?.versions.length, 0);

  // After commit: the version is written, but the answer is lost.
  admin.failNext({ operation: "ImportCryptoKeyVersion", kind: "server-error", afterCommit: true });
  await expectCode(t, client.importCryptoKeyVersion({ parent: importKey, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey }), grpc.status.UNAVAILABLE);
  t.is(admin.state().cryptoKeys.find((k) => k.name === importKey)?.versions[0]?.state, "ENABLED");
  t.like(admin.calls().at(-1), { operation: "ImportCryptoKeyVersion", status: 503, error: "UNAVAILABLE", fault: "server-error", committed: true });

  // A timeout fault leaves the call unanswered; the client's deadline ends it.
  admin.failNext({ operation: "UpdateCryptoKeyPrimaryVersion", kind: "timeout" });
  await expectCode(t, client.updateCryptoKeyPrimaryVersion({ name: keyName, cryptoKeyVersionId: "1" }, { timeout: 1500, retry: null }), grpc.status.DEADLINE_EXCEEDED);
  t.deepEqual(admin.faults().scripted, [], "the emulator received the call and held it");
  t.like(await admin.waitForCall((c) => c.operation === "UpdateCryptoKeyPrimaryVersion" && c.fault === "timeout"), { status: 0 });
  t.like(admin.calls().filter((c) => c.operation === "UpdateCryptoKeyPrimaryVersion").at(-1), { status: 0, fault: "timeout", committed: false });

  // Latency delays but does not fail.
  admin.setFaults({ latencyMs: 20, onlyOperations: ["GetKeyRing"] });
  const [r] = await client.getKeyRing({ name: ring });
  t.is(r.name, ring);
  admin.clearFaults();

  // Probabilistic faults are reproducible from the seed.
  const pattern = async () => {
    admin.setFaults({ throttleRate: 0.5, onlyOperations: ["GetKeyRing"], seed: 42 });
    const out: boolean[] = [];
    for (let i = 0; i < 12; i++) out.push(await client.getKeyRing({ name: ring }).then(() => true, () => false));
    return out;
  };
  const first = await pattern();
  t.deepEqual(await pattern(), first);
  t.true(first.includes(true) && first.includes(false));
  admin.clearFaults();
});

test.serial("out-of-band changes are visible to the client", async (t) => {
  const ring = await newRing();
  const job = await importJob(ring, "job", "RSA_OAEP_3072_SHA256_AES_256");
  const keyName = await importOnlyKey(ring, "k", "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
  const material = crypto.randomBytes(32);
  const [v] = await client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA256_AES_256", job.pem, material) });
  const name = v.name ?? "";
  await client.updateCryptoKeyPrimaryVersion({ name: keyName, cryptoKeyVersionId: "1" });

  emulator.admin.disableVersion(name);
  t.is((await client.getCryptoKeyVersion({ name }))[0].state, "DISABLED");
  await expectCode(t, client.encrypt({ name: keyName, plaintext: Buffer.from("x") }), grpc.status.FAILED_PRECONDITION);
  emulator.admin.enableVersion(name);

  const foreign = crypto.randomBytes(32);
  emulator.admin.replaceMaterial(name, foreign);
  t.is(emulator.admin.kcv(name), aesKcv(foreign));
  const [enc] = await client.encrypt({ name: keyName, plaintext: Buffer.from("drift") });
  const ct = Buffer.from(enc.ciphertext as Uint8Array);
  t.throws(() => localDecrypt(material, ct, Buffer.alloc(0)), undefined, "the vault's copy no longer decrypts");
  t.deepEqual(localDecrypt(foreign, ct, Buffer.alloc(0)).plaintext, Buffer.from("drift"));

  emulator.admin.setLabels(keyName, { owner: "someone-else" });
  t.deepEqual((await client.getCryptoKey({ name: keyName }))[0].labels, { owner: "someone-else" });
  const [updated] = await client.updateCryptoKey({ cryptoKey: { name: keyName, labels: { owner: "mcko" } }, updateMask: { paths: ["labels"] } });
  t.deepEqual(updated.labels, { owner: "mcko" });

  emulator.admin.destroyVersion(name);
  t.is((await client.getCryptoKeyVersion({ name }))[0].state, "DESTROYED");
  emulator.admin.deleteCryptoKey(keyName);
  await expectCode(t, client.getCryptoKey({ name: keyName }), grpc.status.NOT_FOUND);
});

test.serial("call log proves a single create; admin HTTP mirrors the in-process API", async (t) => {
  const ring = await newRing();
  await client.createCryptoKey({ parent: ring, cryptoKeyId: "once", cryptoKey: { purpose: "MAC", versionTemplate: { algorithm: "HMAC_SHA256" } } });
  await expectCode(t, client.createCryptoKey({ parent: ring, cryptoKeyId: "once", cryptoKey: { purpose: "MAC", versionTemplate: { algorithm: "HMAC_SHA256" } } }), grpc.status.ALREADY_EXISTS);
  const creates = emulator.admin.calls().filter((c) => c.operation === "CreateCryptoKey" && c.target === ring);
  t.deepEqual(creates.map((c) => [c.status, c.error, c.committed]), [[200, undefined, true], [409, "ALREADY_EXISTS", false]]);

  const base = `${emulator.adminUrl}/_emulator`;
  const state = (await (await fetch(`${base}/state`)).json()) as { cryptoKeys: { name: string; versions: { kcv?: string }[] }[] };
  const key = state.cryptoKeys.find((k) => k.name === `${ring}/cryptoKeys/once`);
  t.is(key?.versions[0]?.kcv, emulator.admin.kcv(`${ring}/cryptoKeys/once/cryptoKeyVersions/1`));
  const added = await fetch(`${base}/faults/next`, { method: "POST", body: JSON.stringify({ operation: "GetKeyRing", kind: "throttle" }) });
  t.is(added.status, 200);
  await expectCode(t, client.getKeyRing({ name: ring }), grpc.status.RESOURCE_EXHAUSTED);
  const calls = (await (await fetch(`${base}/calls?limit=1`)).json()) as { operation: string; status: number; error?: string }[];
  t.like(calls, [{ operation: "GetKeyRing", status: 429, error: "RESOURCE_EXHAUSTED" }]);
  const disabled = await fetch(`${base}/versions/disable`, { method: "POST", body: JSON.stringify({ name: `${ring}/cryptoKeys/once/cryptoKeyVersions/1` }) });
  t.is(disabled.status, 200);
  t.is((await client.getCryptoKeyVersion({ name: `${ring}/cryptoKeys/once/cryptoKeyVersions/1` }))[0].state, "DISABLED");
  t.is((await fetch(`${base}/versions/disable`, { method: "POST", body: "{}" })).status, 400);
  const material = (await (await fetch(`${base}/versions/material?name=${encodeURIComponent(`${ring}/cryptoKeys/once/cryptoKeyVersions/1`)}`)).json()) as string;
  t.deepEqual(Buffer.from(material, "base64"), emulator.admin.material(`${ring}/cryptoKeys/once/cryptoKeyVersions/1`));
  t.is(emulator.admin.kcv(`${ring}/cryptoKeys/once/cryptoKeyVersions/1`), hmacKcv("sha256", Buffer.from(material, "base64")));
});

test.serial("OpenSSL's command line unwraps a captured RSA_OAEP_3072_SHA256_AES_256 key to the vault's KCV", async (t) => {
  const ring = await newRing();
  const job = await importJob(ring, "job", "RSA_OAEP_3072_SHA256_AES_256");
  const keyName = await importOnlyKey(ring, "k", "ENCRYPT_DECRYPT", "GOOGLE_SYMMETRIC_ENCRYPTION");
  const material = crypto.randomBytes(32);
  await client.importCryptoKeyVersion({ parent: keyName, algorithm: "GOOGLE_SYMMETRIC_ENCRYPTION", importJob: job.name, wrappedKey: wrapForMethod("RSA_OAEP_3072_SHA256_AES_256", job.pem, material) });
  const captured = emulator.admin.imports().find((i) => i.keyRef === keyName);
  t.truthy(captured);
  if (!captured) return;
  t.like(captured, { wrappingAlgorithm: "RSA_OAEP_3072_SHA256_AES_256", wrappingKeySpec: "RSA_3072", accepted: true, field: "wrapped_key", materialKcv: aesKcv(material) });
  const dir = mkdtempSync(join(tmpdir(), "gcp-kms-openssl-"));
  try {
    writeFileSync(join(dir, "job.pem"), captured.wrappingPrivateKeyPem);
    writeFileSync(join(dir, "ephemeral.enc"), captured.wrappedBlob.subarray(0, 384));
    writeFileSync(join(dir, "material.kwp"), captured.wrappedBlob.subarray(384));
    execFileSync("openssl", ["pkeyutl", "-decrypt", "-inkey", join(dir, "job.pem"), "-in", join(dir, "ephemeral.enc"), "-out", join(dir, "ephemeral.bin"),
      "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]);
    const ephemeralHex = readFileSync(join(dir, "ephemeral.bin")).toString("hex");
    execFileSync("openssl", ["enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", ephemeralHex, "-in", join(dir, "material.kwp"), "-out", join(dir, "material.bin")]);
    const recovered = readFileSync(join(dir, "material.bin"));
    t.is(aesKcv(recovered), aesKcv(material));
    t.is(emulator.admin.kcv(`${keyName}/cryptoKeyVersions/1`), aesKcv(recovered));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.serial("reset() forgets state, captures, calls and faults", async (t) => {
  const ring = await newRing();
  emulator.admin.setFaults({ latencyMs: 1 });
  emulator.admin.reset();
  t.deepEqual(emulator.admin.state().keyRings, []);
  t.deepEqual(emulator.admin.imports(), []);
  t.deepEqual(emulator.admin.calls(), []);
  t.deepEqual(emulator.admin.faults(), { config: {}, scripted: [] });
  await expectCode(t, client.getKeyRing({ name: ring }), grpc.status.NOT_FOUND);
});
