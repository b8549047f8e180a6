/**
 * The AWS KMS emulator driven only through @aws-sdk/client-kms (STACK.md §9.1), wrapping key material the way a real
 * client does (BYOK.md §1, §2) and proving on the emulator side what arrived.
 */
import test from "ava";
import { execFileSync } from "node:child_process";
import {
  constants,
  createHash,
  createHmac,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CancelKeyDeletionCommand,
  CreateAliasCommand,
  CreateKeyCommand,
  DecryptCommand,
  DeleteAliasCommand,
  DeleteImportedKeyMaterialCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  EncryptCommand,
  GenerateMacCommand,
  GetParametersForImportCommand,
  GetPublicKeyCommand,
  ImportKeyMaterialCommand,
  KMSClient,
  ListAliasesCommand,
  ListKeyRotationsCommand,
  ListKeysCommand,
  ListResourceTagsCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  SignCommand,
  TagResourceCommand,
  UntagResourceCommand,
  UpdateAliasCommand,
  UpdateKeyDescriptionCommand,
  VerifyCommand,
  VerifyMacCommand,
  type AlgorithmSpec,
  type KeySpec,
  type KeyUsageType,
  type MacAlgorithmSpec,
  type WrappingKeySpec,
} from "@aws-sdk/client-kms";
import { adminFetch } from "./common/admin-http.js";
import type { CapturedImport } from "./common/records.js";
import { kcvAes, kcvHmac, kcvPublicKey } from "./common/kcv.js";
import { oaepEncrypt, rsaAesKeyWrap } from "./common/key-wrap.js";
import { decryptBlob, encryptBlob } from "./aws-kms/ciphertext.js";
import { startAwsKmsEmulator, type AwsKmsEmulator } from "./aws-kms/server.js";

let emu: AwsKmsEmulator;
let kms: KMSClient;

function client(over: Partial<ConstructorParameters<typeof KMSClient>[0]> = {}): KMSClient {
  return new KMSClient({
    endpoint: emu.endpoint,
    region: "us-east-1",
    credentials: { accessKeyId: emu.accessKeyId, secretAccessKey: emu.secretAccessKey },
    maxAttempts: 1,
    ...over,
  });
}

test.before(async () => {
  emu = await startAwsKmsEmulator();
  kms = client();
});

test.after.always(async () => {
  kms?.destroy();
  await emu?.close();
});

async function rejects(p: Promise<unknown>): Promise<Error & { $metadata?: { httpStatusCode?: number } }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { $metadata?: { httpStatusCode?: number } };
  }
  throw new Error("expected a rejection");
}

/** Wraps material as a real client does for the given AWS wrapping algorithm. */
function wrapFor(algorithm: AlgorithmSpec, publicKeyDer: Uint8Array, material: Buffer): Buffer {
  const pub = createPublicKey({ key: Buffer.from(publicKeyDer), format: "der", type: "spki" });
  const hash = algorithm.endsWith("SHA_1") ? "sha1" : "sha256";
  return algorithm.startsWith("RSA_AES") ? rsaAesKeyWrap(pub, hash, material) : oaepEncrypt(pub, hash, material);
}

async function createExternal(keySpec: KeySpec, keyUsage?: KeyUsageType): Promise<string> {
  const r = await kms.send(new CreateKeyCommand({ Origin: "EXTERNAL", KeySpec: keySpec, ...(keyUsage ? { KeyUsage: keyUsage } : {}) }));
  return r.KeyMetadata?.KeyId ?? "";
}

async function importMaterial(
  keyId: string,
  algorithm: AlgorithmSpec,
  material: Buffer,
  extra: { spec?: WrappingKeySpec; importType?: "NEW_KEY_MATERIAL" | "EXISTING_KEY_MATERIAL" } = {},
): Promise<string> {
  const p = await kms.send(
    new GetParametersForImportCommand({ KeyId: keyId, WrappingAlgorithm: algorithm, WrappingKeySpec: extra.spec ?? "RSA_2048" }),
  );
  const r = await kms.send(
    new ImportKeyMaterialCommand({
      KeyId: keyId,
      ImportToken: p.ImportToken,
      EncryptedKeyMaterial: wrapFor(algorithm, p.PublicKey ?? new Uint8Array(), material),
      ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE",
      ...(extra.importType ? { ImportType: extra.importType } : {}),
    }),
  );
  return r.KeyMaterialId ?? "";
}

/** Tests in a file run concurrently: find a key's own captures, never just "the last one". */
const lastCapture = (keyId: string): CapturedImport | undefined => emu.admin.imports().filter((c) => c.keyRef === keyId).pop();

const pkcs8 = (k: KeyObject): Buffer => k.export({ format: "der", type: "pkcs8" });

for (const algorithm of ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"] as const) {
  test(`symmetric import with ${algorithm}: KCV matches, ciphertexts cross between the emulator and the vault's copy`, async (t) => {
    const material = randomBytes(32);
    const keyId = await createExternal("SYMMETRIC_DEFAULT");
    t.is(emu.admin.key(keyId)?.keyState, "PendingImport");
    const materialId = await importMaterial(keyId, algorithm, material);
    const view = emu.admin.key(keyId);
    t.is(view?.keyState, "Enabled");
    t.is(view?.kcv, kcvAes(material));
    t.is(view?.currentKeyMaterialId, materialId);
    const capture = lastCapture(keyId);
    t.is(capture?.wrappingAlgorithm, algorithm);
    t.true(capture?.accepted);
    t.is(capture?.materialKcv, kcvAes(material));

    const ctx = { tenant: "a", purpose: "test" };
    const enc = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("from the cloud"), EncryptionContext: ctx }));
    t.is(decryptBlob(Buffer.from(enc.CiphertextBlob ?? new Uint8Array()), material, ctx).toString(), "from the cloud");
    const local = encryptBlob(keyId, materialId, material, Buffer.from("from the vault"), ctx);
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: local, EncryptionContext: ctx }));
    t.is(Buffer.from(dec.Plaintext ?? new Uint8Array()).toString(), "from the vault");
    const wrongCtx = await rejects(kms.send(new DecryptCommand({ CiphertextBlob: local, EncryptionContext: { tenant: "b" } })));
    t.is(wrongCtx.name, "InvalidCiphertextException");
  });
}

for (const [spec, algorithm] of [
  ["RSA_2048", "RSA_AES_KEY_WRAP_SHA_256"],
  ["RSA_3072", "RSA_AES_KEY_WRAP_SHA_1"],
] as const) {
  test(`${spec} import with ${algorithm}: emulator signs and encrypts with the vault's key`, async (t) => {
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: Number(spec.slice(4)) });
    const signKey = await createExternal(spec, "SIGN_VERIFY");
    await importMaterial(signKey, algorithm, pkcs8(privateKey));
    t.is(emu.admin.key(signKey)?.kcv, kcvPublicKey(privateKey));
    const pub = await kms.send(new GetPublicKeyCommand({ KeyId: signKey }));
    t.is(createHash("sha256").update(Buffer.from(pub.PublicKey ?? new Uint8Array())).digest("hex"), kcvPublicKey(privateKey));
    const message = Buffer.from("sign me");
    const pss = await kms.send(new SignCommand({ KeyId: signKey, Message: message, SigningAlgorithm: "RSASSA_PSS_SHA_256" }));
    t.true(
      nodeVerify("sha256", message, { key: privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, Buffer.from(pss.Signature ?? new Uint8Array())),
    );
    const digest = createHash("sha384").update(message).digest();
    const pkcs1 = await kms.send(
      new SignCommand({ KeyId: signKey, Message: digest, MessageType: "DIGEST", SigningAlgorithm: "RSASSA_PKCS1_V1_5_SHA_384" }),
    );
    t.true(nodeVerify("sha384", message, privateKey, Buffer.from(pkcs1.Signature ?? new Uint8Array())));
    const v = await kms.send(
      new VerifyCommand({ KeyId: signKey, Message: message, Signature: pss.Signature, SigningAlgorithm: "RSASSA_PSS_SHA_256" }),
    );
    t.true(v.SignatureValid);
    const badSig = await rejects(
      kms.send(new VerifyCommand({ KeyId: signKey, Message: Buffer.from("other"), Signature: pss.Signature, SigningAlgorithm: "RSASSA_PSS_SHA_256" })),
    );
    t.is(badSig.name, "KMSInvalidSignatureException");

    const encKey = await createExternal(spec, "ENCRYPT_DECRYPT");
    await importMaterial(encKey, algorithm, pkcs8(privateKey));
    const enc = await kms.send(new EncryptCommand({ KeyId: encKey, Plaintext: Buffer.from("secret"), EncryptionAlgorithm: "RSAES_OAEP_SHA_256" }));
    const plain = privateDecrypt(
      { key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" },
      Buffer.from(enc.CiphertextBlob ?? new Uint8Array()),
    );
    t.is(plain.toString(), "secret");
  });
}

test("RSA key material is refused with RSAES_OAEP wrapping, as AWS requires RSA_AES_KEY_WRAP", async (t) => {
  const keyId = await createExternal("RSA_2048", "SIGN_VERIFY");
  const e = await rejects(
    kms.send(new GetParametersForImportCommand({ KeyId: keyId, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" })),
  );
  t.is(e.name, "ValidationException");
});

for (const [spec, curve, alg, hash] of [
  ["ECC_NIST_P256", "P-256", "ECDSA_SHA_256", "sha256"],
  ["ECC_NIST_P384", "P-384", "ECDSA_SHA_384", "sha384"],
] as const) {
  test(`${spec} import: KCV matches and the emulator's ECDSA signature verifies with the vault's key`, async (t) => {
    const { privateKey } = generateKeyPairSync("ec", { namedCurve: curve });
    const keyId = await createExternal(spec, "SIGN_VERIFY");
    await importMaterial(keyId, "RSA_AES_KEY_WRAP_SHA_256", pkcs8(privateKey));
    t.is(emu.admin.key(keyId)?.kcv, kcvPublicKey(privateKey));
    const message = Buffer.from("ecdsa");
    const s = await kms.send(new SignCommand({ KeyId: keyId, Message: message, SigningAlgorithm: alg }));
    t.true(nodeVerify(hash, message, privateKey, Buffer.from(s.Signature ?? new Uint8Array())));
  });
}

for (const [spec, hash, len] of [
  ["HMAC_256", "sha256", 32],
  ["HMAC_384", "sha384", 48],
  ["HMAC_512", "sha512", 64],
] as const) {
  test(`${spec} import: KCV matches and GenerateMac equals the vault's HMAC`, async (t) => {
    const material = randomBytes(len);
    const keyId = await createExternal(spec, "GENERATE_VERIFY_MAC");
    await importMaterial(keyId, "RSAES_OAEP_SHA_256", material);
    t.is(emu.admin.key(keyId)?.kcv, kcvHmac(material, hash));
    const message = Buffer.from("mac me");
    const alg = `HMAC_SHA_${spec.slice(5)}` as MacAlgorithmSpec;
    const mac = await kms.send(new GenerateMacCommand({ KeyId: keyId, Message: message, MacAlgorithm: alg }));
    t.deepEqual(Buffer.from(mac.Mac ?? new Uint8Array()), createHmac(hash, material).update(message).digest());
    const ok = await kms.send(new VerifyMacCommand({ KeyId: keyId, Message: message, MacAlgorithm: alg, Mac: mac.Mac }));
    t.true(ok.MacValid);
    const other = await rejects(importMaterial(keyId, "RSAES_OAEP_SHA_256", randomBytes(len)));
    t.is(other.name, "IncorrectKeyMaterialException");
  });
}

test("material of the wrong size or type is refused, and a bad wrap is an InvalidCiphertextException", async (t) => {
  const sym = await createExternal("SYMMETRIC_DEFAULT");
  t.is((await rejects(importMaterial(sym, "RSAES_OAEP_SHA_256", randomBytes(16)))).name, "ValidationException");
  const hmac = await createExternal("HMAC_384", "GENERATE_VERIFY_MAC");
  t.is((await rejects(importMaterial(hmac, "RSAES_OAEP_SHA_1", randomBytes(32)))).name, "ValidationException");
  const ec = await createExternal("ECC_NIST_P256", "SIGN_VERIFY");
  const p384 = generateKeyPairSync("ec", { namedCurve: "P-384" }).privateKey;
  t.is((await rejects(importMaterial(ec, "RSA_AES_KEY_WRAP_SHA_256", pkcs8(p384)))).name, "ValidationException");

  const p = await kms.send(new GetParametersForImportCommand({ KeyId: sym, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" }));
  const wrongHash = wrapFor("RSAES_OAEP_SHA_1", p.PublicKey ?? new Uint8Array(), randomBytes(32));
  const e = await rejects(
    kms.send(
      new ImportKeyMaterialCommand({ KeyId: sym, ImportToken: p.ImportToken, EncryptedKeyMaterial: wrongHash, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" }),
    ),
  );
  t.is(e.name, "InvalidCiphertextException");
  t.is(emu.admin.key(sym)?.keyState, "PendingImport");
  const last = lastCapture(sym);
  t.false(last?.accepted);
  t.is(last?.error, "InvalidCiphertextException");
});

test("import tokens are bound to their key and expire after 24 hours; ValidTo rules", async (t) => {
  const a = await createExternal("SYMMETRIC_DEFAULT");
  const b = await createExternal("SYMMETRIC_DEFAULT");
  const p = await kms.send(new GetParametersForImportCommand({ KeyId: a, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" }));
  t.true((p.ParametersValidTo?.getTime() ?? 0) > Date.now() + 23 * 3600e3);
  const blob = wrapFor("RSAES_OAEP_SHA_256", p.PublicKey ?? new Uint8Array(), randomBytes(32));
  const other = await rejects(
    kms.send(new ImportKeyMaterialCommand({ KeyId: b, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" })),
  );
  t.is(other.name, "InvalidImportTokenException");
  const noValidTo = await rejects(kms.send(new ImportKeyMaterialCommand({ KeyId: a, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob })));
  t.is(noValidTo.name, "ValidationException");
  const r = await kms.send(
    new ImportKeyMaterialCommand({
      KeyId: a,
      ImportToken: p.ImportToken,
      EncryptedKeyMaterial: blob,
      ExpirationModel: "KEY_MATERIAL_EXPIRES",
      ValidTo: new Date(Date.now() + 2 * 86400e3),
    }),
  );
  t.truthy(r.KeyMaterialId);
  const d = await kms.send(new DescribeKeyCommand({ KeyId: a }));
  t.is(d.KeyMetadata?.ExpirationModel, "KEY_MATERIAL_EXPIRES");
  t.truthy(d.KeyMetadata?.ValidTo);
});

test("expiry and scheduled deletion follow the emulator clock (separate emulator)", async (t) => {
  const own = await startAwsKmsEmulator();
  const c = new KMSClient({
    endpoint: own.endpoint,
    region: own.region,
    credentials: { accessKeyId: own.accessKeyId, secretAccessKey: own.secretAccessKey },
    maxAttempts: 1,
  });
  try {
    const key = (await c.send(new CreateKeyCommand({ Origin: "EXTERNAL" }))).KeyMetadata?.KeyId ?? "";
    const p = await c.send(new GetParametersForImportCommand({ KeyId: key, WrappingAlgorithm: "RSAES_OAEP_SHA_256", WrappingKeySpec: "RSA_2048" }));
    const blob = wrapFor("RSAES_OAEP_SHA_256", p.PublicKey ?? new Uint8Array(), randomBytes(32));
    await c.send(
      new ImportKeyMaterialCommand({ KeyId: key, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob, ExpirationModel: "KEY_MATERIAL_EXPIRES", ValidTo: new Date(Date.now() + 3600e3) }),
    );
    own.admin.advanceClock(2 * 3600);
    t.is((await c.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata?.KeyState, "PendingImport");
    await c.send(
      new ImportKeyMaterialCommand({ KeyId: key, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" }),
    );
    t.is((await c.send(new DescribeKeyCommand({ KeyId: key }))).KeyMetadata?.KeyState, "Enabled", "the same material re-imported");
    own.admin.advanceClock(23 * 3600);
    const late = await rejects(
      c.send(new ImportKeyMaterialCommand({ KeyId: key, ImportToken: p.ImportToken, EncryptedKeyMaterial: blob, ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" })),
    );
    t.is(late.name, "ExpiredImportTokenException");
    const s = await c.send(new ScheduleKeyDeletionCommand({ KeyId: key, PendingWindowInDays: 7 }));
    t.is(s.KeyState, "PendingDeletion");
    own.admin.advanceClock(8 * 86400);
    t.is((await rejects(c.send(new DescribeKeyCommand({ KeyId: key })))).name, "NotFoundException");
    t.deepEqual(own.admin.keys(), []);

    const other = (await c.send(new CreateKeyCommand({ Description: "before" }))).KeyMetadata?.KeyId ?? "";
    await c.send(new UpdateKeyDescriptionCommand({ KeyId: other, Description: "after" }));
    t.is(own.admin.key(other)?.description, "after");
    own.admin.setFaults({ throttleRate: 1 });
    own.admin.reset();
    t.deepEqual([own.admin.keys(), own.admin.calls(), own.admin.imports()], [[], [], []]);
    t.deepEqual(own.admin.faults().config, {});
    t.deepEqual((await c.send(new ListKeysCommand({}))).Keys, []);
  } finally {
    c.destroy();
    await own.close();
  }
});

test("key states: disable, enable, delete material, schedule and cancel deletion, with AWS's errors", async (t) => {
  const material = randomBytes(32);
  const keyId = await createExternal("SYMMETRIC_DEFAULT");
  t.is((await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name, "KMSInvalidStateException");
  t.is((await rejects(kms.send(new EnableKeyCommand({ KeyId: keyId })))).name, "KMSInvalidStateException");
  await importMaterial(keyId, "RSAES_OAEP_SHA_256", material);
  await kms.send(new DisableKeyCommand({ KeyId: keyId }));
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyState, "Disabled");
  t.is((await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name, "DisabledException");
  await kms.send(new EnableKeyCommand({ KeyId: keyId }));
  t.true((await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.Enabled);

  await kms.send(new DeleteImportedKeyMaterialCommand({ KeyId: keyId }));
  t.is(emu.admin.key(keyId)?.keyState, "PendingImport");
  await importMaterial(keyId, "RSAES_OAEP_SHA_1", material);
  t.is(emu.admin.key(keyId)?.keyState, "Enabled");

  const bad = await rejects(kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 5 })));
  t.is(bad.name, "ValidationException");
  t.is(bad.$metadata?.httpStatusCode, 400);
  const s = await kms.send(new ScheduleKeyDeletionCommand({ KeyId: keyId, PendingWindowInDays: 7 }));
  t.is(s.PendingWindowInDays, 7);
  const d = await kms.send(new DescribeKeyCommand({ KeyId: keyId }));
  t.is(d.KeyMetadata?.KeyState, "PendingDeletion");
  t.truthy(d.KeyMetadata?.DeletionDate);
  t.is((await rejects(kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("x") })))).name, "KMSInvalidStateException");
  await kms.send(new CancelKeyDeletionCommand({ KeyId: keyId }));
  t.is(emu.admin.key(keyId)?.keyState, "Disabled");
  t.is((await rejects(kms.send(new DescribeKeyCommand({ KeyId: "1234abcd-12ab-34cd-56ef-1234567890ab" })))).name, "NotFoundException");
});

test("rotation of imported symmetric material: NEW_KEY_MATERIAL then RotateKeyOnDemand; old ciphertexts still decrypt", async (t) => {
  const first = randomBytes(32);
  const second = randomBytes(32);
  const keyId = await createExternal("SYMMETRIC_DEFAULT");
  const firstId = await importMaterial(keyId, "RSA_AES_KEY_WRAP_SHA_256", first);
  const old = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("old") }));
  const secondId = await importMaterial(keyId, "RSA_AES_KEY_WRAP_SHA_256", second, { importType: "NEW_KEY_MATERIAL" });
  t.not(firstId, secondId);
  t.is(emu.admin.key(keyId)?.materials.find((m) => m.keyMaterialId === secondId)?.state, "PENDING_ROTATION");
  await kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId }));
  const view = emu.admin.key(keyId);
  t.is(view?.currentKeyMaterialId, secondId);
  t.is(view?.kcv, kcvAes(second));
  t.is(view?.materials.find((m) => m.keyMaterialId === firstId)?.state, "NON_CURRENT");
  const fresh = await kms.send(new EncryptCommand({ KeyId: keyId, Plaintext: Buffer.from("new") }));
  t.is(decryptBlob(Buffer.from(fresh.CiphertextBlob ?? new Uint8Array()), second).toString(), "new");
  const back = await kms.send(new DecryptCommand({ CiphertextBlob: old.CiphertextBlob }));
  t.is(Buffer.from(back.Plaintext ?? new Uint8Array()).toString(), "old");
  const rotations = await kms.send(new ListKeyRotationsCommand({ KeyId: keyId, IncludeKeyMaterial: "ALL_KEY_MATERIAL" }));
  t.deepEqual(
    rotations.Rotations?.map((r) => [r.KeyMaterialId, r.KeyMaterialState, r.ImportState]),
    [
      [firstId, "NON_CURRENT", "IMPORTED"],
      [secondId, "CURRENT", "IMPORTED"],
    ],
  );
  const only = await kms.send(new ListKeyRotationsCommand({ KeyId: keyId }));
  t.is(only.Rotations?.length, 1);
  t.is(only.Rotations?.[0]?.RotationType, "ON_DEMAND");
  const none = await rejects(kms.send(new RotateKeyOnDemandCommand({ KeyId: keyId })));
  t.is(none.name, "KMSInvalidStateException");
});

test("aliases and tags through the SDK, and out-of-band changes through the admin API are visible to the SDK", async (t) => {
  const a = (await kms.send(new CreateKeyCommand({ Tags: [{ TagKey: "owner", TagValue: "mcko" }] }))).KeyMetadata?.KeyId ?? "";
  const b = (await kms.send(new CreateKeyCommand({}))).KeyMetadata?.KeyId ?? "";
  await kms.send(new CreateAliasCommand({ AliasName: "alias/app", TargetKeyId: a }));
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: "alias/app" }))).KeyMetadata?.KeyId, a);
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: `arn:aws:kms:us-east-1:111122223333:alias/app` }))).KeyMetadata?.KeyId, a);
  t.is((await rejects(kms.send(new CreateAliasCommand({ AliasName: "alias/app", TargetKeyId: b })))).name, "AlreadyExistsException");
  t.is((await rejects(kms.send(new CreateAliasCommand({ AliasName: "alias/aws/x", TargetKeyId: b })))).name, "NotAuthorizedException");
  await kms.send(new UpdateAliasCommand({ AliasName: "alias/app", TargetKeyId: b }));
  const aliases = await kms.send(new ListAliasesCommand({ KeyId: b }));
  t.deepEqual(aliases.Aliases?.map((x) => x.AliasName), ["alias/app"]);

  await kms.send(new TagResourceCommand({ KeyId: a, Tags: [{ TagKey: "env", TagValue: "test" }] }));
  await kms.send(new UntagResourceCommand({ KeyId: a, TagKeys: ["owner"] }));
  t.deepEqual((await kms.send(new ListResourceTagsCommand({ KeyId: a }))).Tags, [{ TagKey: "env", TagValue: "test" }]);

  emu.admin.setTags(a, { changed: "out-of-band" });
  t.deepEqual((await kms.send(new ListResourceTagsCommand({ KeyId: a }))).Tags, [{ TagKey: "changed", TagValue: "out-of-band" }]);
  emu.admin.setAlias("alias/app", a);
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: "alias/app" }))).KeyMetadata?.KeyId, a);
  emu.admin.disableKey(a);
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: a }))).KeyMetadata?.KeyState, "Disabled");
  emu.admin.enableKey(a);

  const before = await kms.send(new EncryptCommand({ KeyId: a, Plaintext: Buffer.from("x") }));
  const oldKcv = emu.admin.key(a)?.kcv;
  const replaced = await emu.admin.replaceMaterial(a);
  t.not(replaced.kcv, oldKcv);
  t.is((await rejects(kms.send(new DecryptCommand({ CiphertextBlob: before.CiphertextBlob })))).name, "InvalidCiphertextException");

  emu.admin.deleteAlias("alias/app");
  t.is((await rejects(kms.send(new DeleteAliasCommand({ AliasName: "alias/app" })))).name, "NotFoundException");
  emu.admin.deleteKey(b);
  t.is((await rejects(kms.send(new DescribeKeyCommand({ KeyId: b })))).name, "NotFoundException");
  const listed = await kms.send(new ListKeysCommand({}));
  t.false(listed.Keys?.some((k) => k.KeyId === b));
  t.true(listed.Keys?.some((k) => k.KeyId === a));
});

test("admin HTTP interface shows the same state and makes the same changes", async (t) => {
  const keyId = (await kms.send(new CreateKeyCommand({ Description: "admin http" }))).KeyMetadata?.KeyId ?? "";
  const view = (await adminFetch(emu.adminUrl, "GET", `/keys/${keyId}`)) as { keyState: string; kcv: string };
  t.is(view.keyState, "Enabled");
  const material = (await adminFetch(emu.adminUrl, "GET", `/keys/${keyId}/material`)) as { secret: string; kcv: string };
  t.is(kcvAes(Buffer.from(material.secret, "base64")), view.kcv);
  await adminFetch(emu.adminUrl, "POST", `/keys/${keyId}/disable`);
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyState, "Disabled");
  await adminFetch(emu.adminUrl, "PUT", `/aliases/${encodeURIComponent("alias/http")}`, { targetKeyId: keyId });
  t.is((await kms.send(new DescribeKeyCommand({ KeyId: "alias/http" }))).KeyMetadata?.KeyId, keyId);
  const calls = (await adminFetch(emu.adminUrl, "GET", "/calls")) as Array<{ operation: string; target?: string }>;
  t.deepEqual(
    calls.filter((c) => c.target === keyId).map((c) => c.operation),
    ["DescribeKey"],
  );
  await adminFetch(emu.adminUrl, "DELETE", `/keys/${keyId}`);
  t.is((await rejects(kms.send(new DescribeKeyCommand({ KeyId: keyId })))).name, "NotFoundException");
  const missing = await rejects(adminFetch(emu.adminUrl, "GET", `/keys/${keyId}`));
  t.regex(missing.message, /no key/);
});

test("SigV4: unknown access key, wrong secret, wrong region and a malformed header get AWS's errors", async (t) => {
  const unknown = client({ credentials: { accessKeyId: "AKIAUNKNOWN000000000", secretAccessKey: "x" } });
  t.is((await rejects(unknown.send(new ListKeysCommand({})))).name, "UnrecognizedClientException");
  const wrongSecret = client({ credentials: { accessKeyId: emu.accessKeyId, secretAccessKey: "wrong" } });
  t.is((await rejects(wrongSecret.send(new ListKeysCommand({})))).name, "InvalidSignatureException");
  const wrongRegion = client({ region: "eu-west-1" });
  const e = await rejects(wrongRegion.send(new ListKeysCommand({})));
  t.is(e.name, "InvalidSignatureException");
  t.regex(e.message, /scoped to a valid region/);
  for (const c of [unknown, wrongSecret, wrongRegion]) c.destroy();

  const res = await fetch(emu.endpoint, {
    method: "POST",
    headers: {
      "content-type": "application/x-amz-json-1.1",
      "x-amz-target": "TrentService.ListKeys",
      authorization: "AWS4-HMAC-SHA256 Credential=AKIAMCKOEMULATOR0001/20261203/us-east-1/kms/aws4_request",
    },
    body: "{}",
  });
  t.is(res.status, 400);
  t.is(((await res.json()) as { __type: string }).__type, "IncompleteSignatureException");
  const anon = await fetch(emu.endpoint, { method: "POST", headers: { "x-amz-target": "TrentService.ListKeys" }, body: "{}" });
  t.is(((await anon.json()) as { __type: string }).__type, "MissingAuthenticationTokenException");
});

test("faults: throttling, 5xx and timeouts as the SDK sees them; after-commit faults leave the change made", async (t) => {
  const own = await startAwsKmsEmulator();
  const make = (over: Partial<ConstructorParameters<typeof KMSClient>[0]> = {}): KMSClient =>
    new KMSClient({
      endpoint: own.endpoint,
      region: own.region,
      credentials: { accessKeyId: own.accessKeyId, secretAccessKey: own.secretAccessKey },
      maxAttempts: 1,
      ...over,
    });
  const c = make();
  const fast = make({ requestHandler: { requestTimeout: 300, throwOnRequestTimeout: true } });
  try {
    own.admin.failNext({ operation: "ListKeys", kind: "throttle" });
    const thr = await rejects(c.send(new ListKeysCommand({})));
    t.is(thr.name, "ThrottlingException");
    own.admin.failNext({ kind: "server-error" });
    const five = await rejects(c.send(new ListKeysCommand({})));
    t.is(five.name, "KMSInternalException");
    t.is(five.$metadata?.httpStatusCode, 500);
    own.admin.failNext({ kind: "timeout" });
    const to = await rejects(fast.send(new ListKeysCommand({})));
    t.is(to.name, "TimeoutError");

    own.admin.failNext({ operation: "CreateKey", kind: "server-error", afterCommit: true });
    t.is((await rejects(c.send(new CreateKeyCommand({})))).name, "KMSInternalException");
    t.is(own.admin.keys().length, 1, "the key exists although the client saw a 5xx");
    const creates = own.admin.calls().filter((x) => x.operation === "CreateKey");
    t.deepEqual(creates.map((x) => [x.committed, x.fault]), [[true, "server-error"]]);

    own.admin.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 42, onlyOperations: ["DescribeKey"] });
    const keyId = own.admin.keys()[0]?.keyId ?? "";
    const outcomes: string[] = [];
    for (let i = 0; i < 40; i++) {
      outcomes.push(await c.send(new DescribeKeyCommand({ KeyId: keyId })).then(() => "ok", (e: Error) => e.name));
    }
    t.true(outcomes.includes("ThrottlingException"));
    t.true(outcomes.includes("ok"));
    own.admin.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 42, onlyOperations: ["DescribeKey"] });
    const again: string[] = [];
    for (let i = 0; i < 40; i++) {
      again.push(await c.send(new DescribeKeyCommand({ KeyId: keyId })).then(() => "ok", (e: Error) => e.name));
    }
    t.deepEqual(again, outcomes, "the same seed gives the same faults");
    t.is((await c.send(new ListKeysCommand({}))).Keys?.length, 1, "other operations are not affected");

    const retrying = make({ maxAttempts: 8 });
    own.admin.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 3 });
    for (let i = 0; i < 10; i++) {
      t.is((await retrying.send(new DescribeKeyCommand({ KeyId: keyId }))).KeyMetadata?.KeyId, keyId);
    }
    retrying.destroy();
    own.admin.clearFaults();
  } finally {
    c.destroy();
    fast.destroy();
    await own.close();
  }
});

test("OpenSSL's command line unwraps a captured RSA_AES_KEY_WRAP_SHA_256 blob to material with the same KCV", async (t) => {
  const material = randomBytes(32);
  const keyId = await createExternal("SYMMETRIC_DEFAULT");
  await importMaterial(keyId, "RSA_AES_KEY_WRAP_SHA_256", material, { spec: "RSA_4096" });
  const cap = lastCapture(keyId);
  t.truthy(cap);
  if (!cap) return;
  t.is(cap.wrappingKeySpec, "RSA_4096");
  const dir = mkdtempSync(join(tmpdir(), "mcko-kms-openssl-"));
  try {
    writeFileSync(join(dir, "wrap.pem"), cap.wrappingPrivateKeyPem);
    writeFileSync(join(dir, "head.bin"), cap.wrappedBlob.subarray(0, 512));
    writeFileSync(join(dir, "tail.bin"), cap.wrappedBlob.subarray(512));
    execFileSync("openssl", [
      "pkeyutl", "-decrypt", "-inkey", join(dir, "wrap.pem"), "-in", join(dir, "head.bin"), "-out", join(dir, "aes.bin"),
      "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256",
    ]);
    const aes = readFileSync(join(dir, "aes.bin"));
    t.is(aes.length, 32);
    execFileSync("openssl", [
      "enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", aes.toString("hex"),
      "-in", join(dir, "tail.bin"), "-out", join(dir, "material.bin"),
    ]);
    const recovered = readFileSync(join(dir, "material.bin"));
    t.is(kcvAes(recovered), kcvAes(material));
    t.is(emu.admin.key(keyId)?.kcv, kcvAes(recovered));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
