/**
 * The Azure Key Vault emulator driven only through @azure/keyvault-keys (STACK.md §9.2): bearer challenge, BYOK
 * transfer blobs built as a real client does (BYOK.md §1, §3), JWK import, versions, soft delete, crypto, faults.
 */
import test from "ava";
import { execFileSync } from "node:child_process";
import { request } from "node:https";
import {
  constants,
  createHash,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  verify as nodeVerify,
  type KeyObject,
} from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CryptographyClient, KeyClient, type JsonWebKey, type KeyClientOptions } from "@azure/keyvault-keys";
import type { TokenCredential } from "@azure/core-auth";
import { adminFetch } from "./common/admin-http.js";
import { kcvAes, kcvPublicKey } from "./common/kcv.js";
import { kwUnwrap, rsaAesKeyWrap } from "./common/key-wrap.js";
import type { CapturedImport } from "./common/records.js";
import { startAzureKeyVaultEmulator, type AzureKeyVaultEmulator } from "./azure-keyvault/server.js";

let emu: AzureKeyVaultEmulator;
let keys: KeyClient;
let options: KeyClientOptions;
let cred: TokenCredential;
let kekId = "";
let kekPublic: KeyObject;

const tokenCredential = (token: string): TokenCredential => ({
  getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600e3 }),
});

test.before(async () => {
  emu = await startAzureKeyVaultEmulator();
  cred = tokenCredential(emu.token);
  options = { disableChallengeResourceVerification: true, tlsOptions: { ca: emu.caCertPem }, retryOptions: { maxRetries: 0 } };
  keys = new KeyClient(emu.endpoint, cred, options);
  const kek = await keys.createKey("kek", "RSA-HSM", { keySize: 2048, keyOps: ["import"] });
  kekId = kek.id ?? "";
  kekPublic = createPublicKey({
    key: { kty: "RSA", n: Buffer.from(kek.key?.n ?? []).toString("base64url"), e: Buffer.from(kek.key?.e ?? []).toString("base64url") },
    format: "jwk",
  });
});

test.after.always(async () => {
  await emu?.close();
});

async function rejects(p: Promise<unknown>): Promise<Error & { statusCode?: number; code?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { statusCode?: number; code?: string };
  }
  throw new Error("expected a rejection");
}

/** The .byok document of BYOK.md §3.2 for material wrapped under the KEK. */
function transferBlob(material: Buffer, kid = kekId, kek = kekPublic): Uint8Array {
  const doc = {
    schema_version: "1.0.0",
    header: { kid, alg: "dir", enc: "CKM_RSA_AES_KEY_WRAP" },
    ciphertext: rsaAesKeyWrap(kek, "sha1", material).toString("base64url"),
    generator: "mcko-test",
  };
  return Buffer.from(JSON.stringify(doc));
}

const lastCapture = (name: string): CapturedImport | undefined => emu.admin.imports().filter((c) => c.keyRef === name).pop();
const pkcs8 = (k: KeyObject): Buffer => k.export({ format: "der", type: "pkcs8" });

test("BYOK RSA-HSM: the transfer blob is unwrapped with the KEK; the emulator decrypts and signs with the vault's key", async (t) => {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const imported = await keys.importKey("byok-rsa", { kty: "RSA-HSM", keyOps: ["encrypt", "decrypt", "sign", "verify"], t: transferBlob(pkcs8(privateKey)) }, { hardwareProtected: true });
  t.is(imported.keyType, "RSA-HSM");
  const view = emu.admin.key("byok-rsa");
  t.is(view?.versions[0]?.kcv, kcvPublicKey(privateKey));
  t.is(view?.versions[0]?.origin, "byok");
  const cap = lastCapture("byok-rsa");
  t.true(cap?.accepted);
  t.is(cap?.version, imported.properties.version);
  t.is(cap?.wrappingAlgorithm, "CKM_RSA_AES_KEY_WRAP");

  const crypto = new CryptographyClient(imported.id ?? "", cred, options);
  const ct = publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, Buffer.from("vault made this"));
  t.is(Buffer.from((await crypto.decrypt({ algorithm: "RSA-OAEP-256", ciphertext: ct })).result).toString(), "vault made this");
  const digest = createHash("sha256").update("sign me").digest();
  const rs = await crypto.sign("RS256", digest);
  t.true(nodeVerify("sha256", Buffer.from("sign me"), publicKey, Buffer.from(rs.result)));
  const ps = await crypto.sign("PS256", digest);
  t.true(nodeVerify("sha256", Buffer.from("sign me"), { key: publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, Buffer.from(ps.result)));
  t.true((await crypto.verify("PS256", digest, ps.result)).result);
});

for (const [curve, alg, hash] of [
  ["P-256", "ES256", "sha256"],
  ["P-384", "ES384", "sha384"],
] as const) {
  test(`BYOK EC-HSM ${curve}: KCV matches and the emulator's signature verifies with the vault's key`, async (t) => {
    const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: curve });
    const name = `byok-ec-${curve.slice(2)}`;
    const k = await keys.importKey(name, { kty: "EC-HSM", crv: curve, keyOps: ["sign", "verify"], t: transferBlob(pkcs8(privateKey)) }, { hardwareProtected: true });
    t.is(k.key?.crv, curve);
    t.is(emu.admin.key(name)?.versions[0]?.kcv, kcvPublicKey(privateKey));
    const crypto = new CryptographyClient(k.id ?? "", cred, options);
    const sig = await crypto.signData(alg, Buffer.from("ec data"));
    t.true(nodeVerify(hash, Buffer.from("ec data"), { key: publicKey, dsaEncoding: "ieee-p1363" }, Buffer.from(sig.result)));
  });
}

test("BYOK oct-HSM: the emulator wraps (A256KW) and encrypts (A256GCM) with the vault's AES key", async (t) => {
  const material = randomBytes(32);
  const k = await keys.importKey("byok-aes", { kty: "oct-HSM", keyOps: ["encrypt", "decrypt", "wrapKey", "unwrapKey"], t: transferBlob(material) }, { hardwareProtected: true });
  t.is(emu.admin.key("byok-aes")?.versions[0]?.kcv, kcvAes(material));
  const crypto = new CryptographyClient(k.id ?? "", cred, options);
  const dek = randomBytes(32);
  const wrapped = await crypto.wrapKey("A256KW", dek);
  t.deepEqual(kwUnwrap(material, Buffer.from(wrapped.result)), dek);
  const enc = await crypto.encrypt({ algorithm: "A256GCM", plaintext: Buffer.from("gcm"), additionalAuthenticatedData: Buffer.from("aad") });
  const back = await crypto.decrypt({
    algorithm: "A256GCM",
    ciphertext: enc.result,
    iv: enc.iv ?? new Uint8Array(),
    authenticationTag: enc.authenticationTag ?? new Uint8Array(),
    additionalAuthenticatedData: Buffer.from("aad"),
  });
  t.is(Buffer.from(back.result).toString(), "gcm");
});

test("a transfer blob under another KEK, or naming a non-KEK key, is refused with BadParameter", async (t) => {
  const stranger = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
  const wrong = await rejects(keys.importKey("byok-bad", { kty: "oct-HSM", t: transferBlob(randomBytes(32), kekId, stranger) }, { hardwareProtected: true }));
  t.is(wrong.statusCode, 400);
  t.is(wrong.code, "BadParameter");
  const cap = lastCapture("byok-bad");
  t.false(cap?.accepted);
  const rsa = await keys.createRsaKey("not-a-kek", { keySize: 2048 });
  const notKek = await rejects(keys.importKey("byok-bad2", { kty: "oct-HSM", t: transferBlob(randomBytes(32), rsa.id ?? "") }, { hardwareProtected: true }));
  t.is(notKek.code, "BadParameter");
  t.is(emu.admin.key("byok-bad"), undefined);
});

test("plain JWK import, versions that keep their material, update, and out-of-band disable", async (t) => {
  const first = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const second = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey;
  const jwk = (k: KeyObject): JsonWebKey => {
    const j = k.export({ format: "jwk" });
    const b = (s: string | undefined): Uint8Array => Buffer.from(s ?? "", "base64url");
    return { kty: "RSA", n: b(j.n), e: b(j.e), d: b(j.d), p: b(j.p), q: b(j.q), dp: b(j.dp), dq: b(j.dq), qi: b(j.qi), keyOps: ["decrypt", "sign"] };
  };
  const v1 = await keys.importKey("soft", jwk(first), { tags: { owner: "mcko" } });
  const v2 = await keys.importKey("soft", jwk(second));
  t.not(v1.properties.version, v2.properties.version);
  const versions: string[] = [];
  for await (const p of keys.listPropertiesOfKeyVersions("soft")) versions.push(p.version ?? "");
  t.deepEqual(versions.sort(), [v1.properties.version ?? "", v2.properties.version ?? ""].sort());
  t.is(emu.admin.material("soft", v1.properties.version).kcv, kcvPublicKey(first));
  t.is(emu.admin.material("soft").kcv, kcvPublicKey(second));

  const old = new CryptographyClient(v1.id ?? "", cred, options);
  const ct = publicEncrypt({ key: createPublicKey(first), padding: constants.RSA_PKCS1_OAEP_PADDING }, Buffer.from("v1"));
  t.is(Buffer.from((await old.decrypt({ algorithm: "RSA-OAEP", ciphertext: ct })).result).toString(), "v1");

  const updated = await keys.updateKeyProperties("soft", v2.properties.version ?? "", { tags: { env: "test" } });
  t.deepEqual(updated.properties.tags, { env: "test" });
  await keys.updateKeyProperties("soft", v2.properties.version ?? "", { enabled: false });
  t.false(emu.admin.key("soft")?.versions[1]?.enabled);
  const disabled = await rejects(new CryptographyClient(v2.id ?? "", cred, options).decrypt({ algorithm: "RSA-OAEP", ciphertext: ct }));
  t.is(disabled.statusCode, 403);
  t.is(disabled.message, "Operation decrypt is not allowed on a disabled key.");
  await keys.updateKeyProperties("soft", v2.properties.version ?? "", { enabled: true });

  emu.admin.disableKey("soft");
  const got = await rejects(keys.getKey("soft"));
  t.is(got.statusCode, 403);
  t.is(got.code, "Forbidden");
  const props: boolean[] = [];
  for await (const p of keys.listPropertiesOfKeyVersions("soft")) props.push(p.enabled ?? true);
  t.deepEqual(props, [false, false]);
  emu.admin.enableKey("soft");
  emu.admin.setTags("soft", { changed: "oob" });
  t.deepEqual((await keys.getKey("soft")).properties.tags, { changed: "oob" });
  const replaced = await emu.admin.replaceMaterial("soft");
  t.not(replaced.kcv, kcvPublicKey(second));
  t.not(Buffer.from((await keys.getKey("soft")).key?.n ?? []).toString("hex"), Buffer.from(jwk(second).n ?? []).toString("hex"));
});

test("soft delete, recover, purge, name conflicts and 404s have Key Vault's shapes", async (t) => {
  await keys.createKey("gone", "oct-HSM", { keySize: 256 });
  const del = await keys.beginDeleteKey("gone");
  await del.pollUntilDone();
  const deleted = await keys.getDeletedKey("gone");
  t.truthy(deleted.properties.recoveryId);
  t.truthy(deleted.properties.scheduledPurgeDate);
  t.true(emu.admin.key("gone")?.deleted);
  const reuse = await rejects(keys.createKey("gone", "oct-HSM"));
  t.is(reuse.statusCode, 409);
  t.is(reuse.code, "Conflict");
  const rec = await keys.beginRecoverDeletedKey("gone");
  await rec.pollUntilDone();
  t.is((await keys.getKey("gone")).name, "gone");
  await (await keys.beginDeleteKey("gone")).pollUntilDone();
  await keys.purgeDeletedKey("gone");
  t.is(emu.admin.key("gone"), undefined);
  const missing = await rejects(keys.getKey("gone"));
  t.is(missing.statusCode, 404);
  t.is(missing.code, "KeyNotFound");

  await keys.createKey("oob", "RSA", { keySize: 2048 });
  emu.admin.deleteKey("oob");
  t.is((await rejects(keys.getKey("oob"))).code, "KeyNotFound");
});

interface RawAnswer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function raw(path: string, headers: Record<string, string> = {}, method = "GET", body?: string): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(`${emu.endpoint}${path}`, { method, ca: emu.caCertPem, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }));
    });
    req.on("error", reject);
    req.end(body);
  });
}

test("the bearer challenge, unknown tokens and api-versions answer like Key Vault", async (t) => {
  const anon = await raw("/keys?api-version=7.4");
  t.is(anon.status, 401);
  t.is(anon.headers["www-authenticate"], `Bearer authorization="https://login.microsoftonline.com/${emu.tenantId}", resource="https://vault.azure.net"`);
  t.is((JSON.parse(anon.body) as { error: { code: string } }).error.code, "Unauthorized");
  const bearer = { authorization: `Bearer ${emu.token}` };
  for (const v of ["7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01"]) {
    t.is((await raw(`/keys?api-version=${v}`, bearer)).status, 200, v);
  }
  const badVersion = await raw("/keys?api-version=7.9", bearer);
  t.is(badVersion.status, 400);
  t.is((JSON.parse(badVersion.body) as { error: { code: string } }).error.code, "BadParameter");
  t.is((await raw("/keys", bearer)).status, 400);

  const stranger = new KeyClient(emu.endpoint, tokenCredential("not-a-known-token"), options);
  const e = await rejects(stranger.getKey("kek"));
  t.is(e.statusCode, 401);
  t.is(e.code, "Unauthorized");
});

test("faults: throttling (429), 5xx and timeouts as the SDK sees them; seeded and scoped to operations", async (t) => {
  const own = await startAzureKeyVaultEmulator();
  const c = new KeyClient(own.endpoint, tokenCredential(own.token), { ...options, tlsOptions: { ca: own.caCertPem } });
  try {
    await c.createKey("f", "oct-HSM");
    own.admin.failNext({ operation: "GetKey", kind: "throttle" });
    const thr = await rejects(c.getKey("f"));
    t.is(thr.statusCode, 429);
    t.is(thr.code, "Throttled");
    own.admin.failNext({ operation: "GetKey", kind: "server-error" });
    t.is((await rejects(c.getKey("f"))).statusCode, 500);
    own.admin.failNext({ operation: "GetKey", kind: "timeout" });
    const controller = new AbortController();
    const aborted = rejects(c.getKey("f", { abortSignal: controller.signal }));
    // Give up only once the emulator holds the request, so nothing depends on timing.
    const held = await own.admin.waitForCall((x) => x.fault === "timeout");
    t.is(held.operation, "GetKey");
    t.is(held.status, 0);
    controller.abort();
    t.is((await aborted).name, "AbortError");

    own.admin.failNext({ operation: "CreateKey", kind: "server-error", afterCommit: true });
    t.is((await rejects(c.createKey("g", "oct-HSM"))).statusCode, 500);
    t.truthy(own.admin.key("g"), "created although the client saw a 5xx");
    t.deepEqual(
      own.admin.calls().filter((x) => x.operation === "CreateKey" && x.committed).map((x) => x.target),
      ["f", "g"],
    );

    own.admin.setFaults({ throttleRate: 0.3, serverErrorRate: 0.05, seed: 9, onlyOperations: ["GetKey"] });
    const outcomes: number[] = [];
    for (let i = 0; i < 30; i++) outcomes.push(await c.getKey("f").then(() => 200, (e: { statusCode?: number }) => e.statusCode ?? -1));
    t.true(outcomes.includes(429));
    t.true(outcomes.includes(200));
    t.true(outcomes.every((s) => s === 200 || s === 429 || s === 500));
    for (let i = 0; i < 10; i++) {
      const listed: string[] = [];
      for await (const p of c.listPropertiesOfKeyVersions("f")) listed.push(p.name);
      t.deepEqual(listed, ["f"], "other operations are not affected");
    }
    own.admin.clearFaults();

    await (await c.beginDeleteKey("g")).pollUntilDone();
    own.admin.setFaults({ latencyMs: 1 });
    own.admin.reset();
    t.deepEqual([own.admin.keys(), own.admin.calls(), own.admin.imports()], [[], [], []]);
    t.deepEqual(own.admin.faults().config, {});
    const after: string[] = [];
    for await (const p of c.listPropertiesOfKeys()) after.push(p.name);
    t.deepEqual(after, []);
  } finally {
    await own.close();
  }
});

test("admin HTTP interface: keys with KCVs, captured imports and out-of-band disable", async (t) => {
  const material = randomBytes(32);
  await keys.importKey("admin-http", { kty: "oct-HSM", t: transferBlob(material) }, { hardwareProtected: true });
  const view = (await adminFetch(emu.adminUrl, "GET", "/keys/admin-http")) as { versions: Array<{ kcv: string }> };
  t.is(view.versions[0]?.kcv, kcvAes(material));
  const imports = (await adminFetch(emu.adminUrl, "GET", "/imports")) as Array<{ keyRef: string; wrappedBlob: string; materialKcv: string }>;
  const mine = imports.filter((i) => i.keyRef === "admin-http").pop();
  t.is(mine?.materialKcv, kcvAes(material));
  t.is(Buffer.from(mine?.wrappedBlob ?? "", "base64").length, 256 + 40);
  await adminFetch(emu.adminUrl, "POST", "/keys/admin-http/disable");
  t.is((await rejects(keys.getKey("admin-http"))).statusCode, 403);
  await adminFetch(emu.adminUrl, "POST", "/keys/admin-http/enable");
  t.is((await keys.getKey("admin-http")).name, "admin-http");
});

test("OpenSSL's command line unwraps a captured Azure transfer blob to material with the same KCV", async (t) => {
  const { privateKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  await keys.importKey("openssl-ec", { kty: "EC-HSM", crv: "P-256", t: transferBlob(pkcs8(privateKey)) }, { hardwareProtected: true });
  const cap = lastCapture("openssl-ec");
  t.truthy(cap?.transferBlobJson);
  if (!cap?.transferBlobJson) return;
  const doc = JSON.parse(cap.transferBlobJson) as { ciphertext: string; header: { enc: string } };
  t.is(doc.header.enc, "CKM_RSA_AES_KEY_WRAP");
  const blob = Buffer.from(doc.ciphertext, "base64url");
  t.deepEqual(blob, cap.wrappedBlob);
  const dir = mkdtempSync(join(tmpdir(), "mcko-akv-openssl-"));
  try {
    writeFileSync(join(dir, "kek.pem"), cap.wrappingPrivateKeyPem);
    writeFileSync(join(dir, "head.bin"), blob.subarray(0, 256));
    writeFileSync(join(dir, "tail.bin"), blob.subarray(256));
    execFileSync("openssl", [
      "pkeyutl", "-decrypt", "-inkey", join(dir, "kek.pem"), "-in", join(dir, "head.bin"), "-out", join(dir, "aes.bin"),
      "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1", "-pkeyopt", "rsa_mgf1_md:sha1",
    ]);
    const aes = readFileSync(join(dir, "aes.bin"));
    execFileSync("openssl", [
      "enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", aes.toString("hex"),
      "-in", join(dir, "tail.bin"), "-out", join(dir, "material.der"),
    ]);
    const pub = execFileSync("openssl", ["pkey", "-inform", "DER", "-in", join(dir, "material.der"), "-pubout", "-outform", "DER"]);
    const kcv = createHash("sha256").update(pub).digest("hex");
    t.is(kcv, kcvPublicKey(privateKey));
    t.is(emu.admin.key("openssl-ec")?.versions[0]?.kcv, kcv);
    t.is(cap.materialKcv, kcv);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a key exchange key refuses ordinary crypto: the SDK refuses locally and the vault answers 403", async (t) => {
  const crypto = new CryptographyClient(kekId, cred, options);
  const ct = publicEncrypt({ key: kekPublic, padding: constants.RSA_PKCS1_OAEP_PADDING }, Buffer.from("x"));
  const local = await rejects(crypto.decrypt({ algorithm: "RSA-OAEP", ciphertext: ct }));
  t.regex(local.message, /Operation decrypt is not supported/);
  const version = kekId.split("/").pop() ?? "";
  const answer = await raw(
    `/keys/kek/${version}/decrypt?api-version=7.4`,
    { authorization: `Bearer ${emu.token}`, "content-type": "application/json" },
    "POST",
    JSON.stringify({ alg: "RSA-OAEP", value: ct.toString("base64url") }),
  );
  t.is(answer.status, 403);
  t.deepEqual(JSON.parse(answer.body), {
    error: { code: "Forbidden", message: "Operation decrypt is not permitted on this key.", innererror: { code: "KeyOperationForbidden" } },
  });
  t.notThrows(() => privateDecrypt({ key: emu.admin.material("kek").privateKeyPem ?? "", padding: constants.RSA_PKCS1_OAEP_PADDING }, ct));
});
