// The Key Protect emulator driven as a REST client drives it (plain fetch): the import-token flow for real, the
// material proven by KCV and by wrap/unwrap both ways, key states, real error bodies, pass-through tokens, faults
// and out-of-band changes.
import test from "ava";
import crypto from "node:crypto";
import { request as httpsRequest } from "node:https";
import { startKeyProtectEmulator, type KeyProtectEmulator } from "./key-protect/index.js";

const TOKEN = "all-instances-token";
const SCOPED = "instance-a-only-token";
const A = "11111111-1111-4111-8111-111111111111";
const B = "22222222-2222-4222-8222-222222222222";

let emu: KeyProtectEmulator;

test.before(async () => {
  emu = await startKeyProtectEmulator({ tokens: [TOKEN], instanceTokens: { [SCOPED]: [A] }, instances: [A, B], reuseWrappingKeys: true });
});

test.after.always(async () => {
  await emu?.close();
});

interface Answer {
  status: number;
  json: Record<string, unknown> & { resources?: Array<Record<string, unknown>> };
}

async function kp(method: string, path: string, opts: { body?: unknown; token?: string | null; instance?: string | null; prefer?: string; signal?: AbortSignal } = {}): Promise<Answer> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.token !== null) headers["authorization"] = `Bearer ${opts.token ?? TOKEN}`;
  if (opts.instance !== null) headers["bluemix-instance"] = opts.instance ?? A;
  if (opts.prefer) headers["prefer"] = opts.prefer;
  if (opts.body !== undefined) headers["content-type"] = path.includes("/actions/") ? "application/vnd.ibm.kms.key_action+json" : "application/vnd.ibm.kms.key+json";
  const res = await fetch(`${emu.endpoint}${path}`, {
    method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body), signal: opts.signal,
  });
  const text = await res.text();
  return { status: res.status, json: text ? (JSON.parse(text) as Answer["json"]) : {} };
}

const keyBody = (resource: Record<string, unknown>) => ({
  metadata: { collectionType: "application/vnd.ibm.kms.key+json", collectionTotal: 1 },
  resources: [{ type: "application/vnd.ibm.kms.key+json", ...resource }],
});

function aesKcv(key: Buffer): string {
  const c = crypto.createCipheriv(`aes-${key.length * 8}-ecb`, key, null).setAutoPadding(false);
  return Buffer.concat([c.update(Buffer.alloc(16)), c.final()]).subarray(0, 3).toString("hex");
}

/** What a client does with an import token (BYOK.md §5.3). */
async function tokenImportFields(material: Buffer, instance = A): Promise<Record<string, string>> {
  const t = await kp("GET", "/api/v2/import_token", { instance });
  const pem = Buffer.from(String(t.json["payload"]), "base64").toString();
  const nonce = Buffer.from(String(t.json["nonce"]), "base64");
  const payload = crypto.publicEncrypt({ key: pem, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, material);
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv(`aes-${material.length * 8}-gcm` as crypto.CipherGCMTypes, material, iv);
  const encryptedNonce = Buffer.concat([c.update(nonce), c.final(), c.getAuthTag()]);
  return { payload: payload.toString("base64"), encryptedNonce: encryptedNonce.toString("base64"), iv: iv.toString("base64"), encryptionAlgorithm: "RSAES_OAEP_SHA_256" };
}

async function newToken(instance = A, maxAllowedRetrievals = 50): Promise<void> {
  const r = await kp("POST", "/api/v2/import_token", { instance, body: { expiration: 1200, maxAllowedRetrievals } });
  if (r.status !== 200) throw new Error(`import token: ${r.status}`);
}

/** Unwraps an emulator wrap ciphertext with the local copy of the material (layout in key-protect/README.md). */
function localUnwrap(material: Buffer, ciphertext: string, aad?: string[]): Buffer {
  const doc = JSON.parse(Buffer.from(ciphertext, "base64").toString()) as { ciphertext: string; iv: string };
  const body = Buffer.from(doc.ciphertext, "base64");
  const d = crypto.createDecipheriv(`aes-${material.length * 8}-gcm` as crypto.CipherGCMTypes, material, Buffer.from(doc.iv, "base64"));
  if (aad) d.setAAD(Buffer.from(JSON.stringify(aad)));
  d.setAuthTag(body.subarray(body.length - 16));
  return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]);
}

function localWrap(keyId: string, versionId: string, material: Buffer, plaintext: Buffer): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv(`aes-${material.length * 8}-gcm` as crypto.CipherGCMTypes, material, iv);
  const body = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  return Buffer.from(JSON.stringify({ ciphertext: body.toString("base64"), iv: iv.toString("base64"), version: "4.0.0", handle: keyId, keyVersion: versionId })).toString("base64");
}

const first = (a: Answer): Record<string, unknown> => a.json.resources?.[0] ?? {};
const reasonCode = (a: Answer): unknown => (first(a)["reasons"] as Array<{ code: string }> | undefined)?.[0]?.code;

// ---- tests ----------------------------------------------------------------------------------------------------
test.serial("import-token flow: AES-128/192/256 root keys arrive intact; wrap/unwrap crosses with the vault's copy", async (t) => {
  const created = await kp("POST", "/api/v2/import_token", { body: { expiration: 600, maxAllowedRetrievals: 5 } });
  t.is(created.status, 200);
  t.like(created.json, { maxAllowedRetrievals: 5, remainingRetrievals: 5 });
  for (const size of [16, 24, 32]) {
    const material = crypto.randomBytes(size);
    const r = await kp("POST", "/api/v2/keys", { body: keyBody({ name: `root-${size}`, extractable: false, ...(await tokenImportFields(material)) }) });
    t.is(r.status, 201, JSON.stringify(r.json));
    t.like(r.json, { metadata: { collectionType: "application/vnd.ibm.kms.key+json", collectionTotal: 1 } });
    const key = first(r);
    t.like(key, { name: `root-${size}`, state: 1, extractable: false, imported: true, deleted: false });
    const id = String(key["id"]);
    t.is(emu.admin.kcv(id), aesKcv(material));
    const capture = emu.admin.imports().at(-1);
    t.like(capture, { keyRef: id, instance: A, operation: "CreateKey", wrappingAlgorithm: "RSAES_OAEP_SHA_256", wrappingKeySpec: "RSA_4096", accepted: true, materialKcv: aesKcv(material) });
    // The captured blob unwraps with the captured token key, independently of the emulator.
    const recovered = crypto.privateDecrypt({ key: capture?.wrappingPrivateKeyPem ?? "", padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, capture?.wrappedBlob ?? Buffer.alloc(0));
    t.true(recovered.equals(material));

    const dek = crypto.randomBytes(32);
    const wrapped = await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: { plaintext: dek.toString("base64"), aad: ["tenant-a"] } });
    t.is(wrapped.status, 200);
    t.true(localUnwrap(material, String(wrapped.json["ciphertext"]), ["tenant-a"]).equals(dek), "a ciphertext made at the target decrypts with the vault's copy");
    const versionId = String((wrapped.json["keyVersion"] as { id: string }).id);
    const unwrapped = await kp("POST", `/api/v2/keys/${id}/actions/unwrap`, { body: { ciphertext: localWrap(id, versionId, material, dek) } });
    t.is(unwrapped.status, 200);
    t.is(unwrapped.json["plaintext"], dek.toString("base64"));
  }
  const meta = await kp("GET", "/api/v2/import_token");
  t.is(meta.json["remainingRetrievals"], 1);
});

test.serial("plain, generated and standard keys; versions and rotation with new material", async (t) => {
  await newToken();
  const material = crypto.randomBytes(32);
  const plain = first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "plain-root", payload: material.toString("base64") }) }));
  const id = String(plain["id"]);
  t.is(emu.admin.kcv(id), aesKcv(material));
  t.is(emu.admin.imports().at(-1)?.wrappingAlgorithm, "NONE");

  const std = crypto.randomBytes(100);
  const stdKey = first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "standard", extractable: true, payload: std.toString("base64") }) }));
  const got = await kp("GET", `/api/v2/keys/${String(stdKey["id"])}`);
  t.is(first(got)["payload"], std.toString("base64"));
  t.is(first(await kp("GET", `/api/v2/keys/${String(stdKey["id"])}/metadata`))["payload"], undefined);
  const wrapStd = await kp("POST", `/api/v2/keys/${String(stdKey["id"])}/actions/wrap`, { body: {} });
  t.is(wrapStd.status, 400);
  t.is(reasonCode(wrapStd), "KEY_ROOT_REQ_ERR");

  const generated = first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "generated" }) }));
  t.like(generated, { imported: false, state: 1 });
  t.is((await kp("POST", `/api/v2/keys/${String(generated["id"])}/actions/rotate`)).status, 204);
  t.is((await kp("GET", `/api/v2/keys/${String(generated["id"])}/versions`)).json.resources?.length, 2);

  // A wrap made before rotation keeps unwrapping; the answer names the newer version.
  const dek = crypto.randomBytes(32);
  const before = await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: { plaintext: dek.toString("base64") } });
  const noPayload = await kp("POST", `/api/v2/keys/${id}/actions/rotate`);
  t.is(noPayload.status, 400);
  t.is(reasonCode(noPayload), "KEY_PAYLOAD_REQ_ERR");
  const next = crypto.randomBytes(32);
  t.is((await kp("POST", `/api/v2/keys/${id}/actions/rotate`, { body: await tokenImportFields(next) })).status, 204);
  t.is(emu.admin.kcv(id), aesKcv(next));
  t.like(emu.admin.imports().at(-1), { keyRef: id, operation: "RotateKey", accepted: true });
  const versions = await kp("GET", `/api/v2/keys/${id}/versions`);
  t.like(versions.json, { metadata: { collectionType: "application/vnd.ibm.kms.key_version+json", collectionTotal: 2 } });
  t.is(versions.json.resources?.[0]?.["id"], emu.admin.key(id)?.currentVersion, "newest first");
  const old = await kp("POST", `/api/v2/keys/${id}/actions/unwrap`, { body: { ciphertext: before.json["ciphertext"] } });
  t.is(old.json["plaintext"], dek.toString("base64"));
  t.deepEqual(old.json["rewrappedKeyVersion"], { id: emu.admin.key(id)?.currentVersion });
  const fresh = await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: { plaintext: dek.toString("base64") } });
  t.true(localUnwrap(next, String(fresh.json["ciphertext"])).equals(dek));

  const again = await kp("POST", `/api/v2/keys/${id}/actions/rotate`, { body: { payload: crypto.randomBytes(32).toString("base64") } });
  t.is(again.status, 409);
  t.is(reasonCode(again), "KEY_ROTATION_NOT_PERMITTED");
  emu.admin.advanceClock(3601);
  t.is((await kp("POST", `/api/v2/keys/${id}/actions/rotate`, { body: { payload: crypto.randomBytes(32).toString("base64") } })).status, 204);
});

test.serial("key states 1/2/3/5 and Key Protect's error bodies; rejected imports create nothing", async (t) => {
  await newToken(A, 3);
  const id = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "states" }) }))["id"]);
  t.is((await kp("POST", `/api/v2/keys/${id}/actions/disable`)).status, 204);
  t.is(first(await kp("GET", `/api/v2/keys/${id}`))["state"], 2);
  const twice = await kp("POST", `/api/v2/keys/${id}/actions/disable`);
  t.is(twice.status, 409);
  t.deepEqual(twice.json, {
    metadata: { collectionType: "application/vnd.ibm.kms.error+json", collectionTotal: 1 },
    resources: [{
      errorMsg: "Conflict: Key is not in active state: Key could not be disabled. Please see `reasons` for more details.",
      reasons: [{ code: "KEY_ACTION_INVALID_STATE_ERR", message: "Key is not in a valid state", status: 409, moreInfo: "https://cloud.ibm.com/apidocs/key-protect" }],
    }],
  });
  t.is((await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: {} })).status, 409);
  t.is((await kp("POST", `/api/v2/keys/${id}?action=enable`, { body: {} })).status, 204, "the older ?action= form works too");
  t.regex(String(first(await kp("POST", `/api/v2/keys/${id}/actions/enable`))["errorMsg"]), /^Conflict: Key is not in suspended state/);

  const deleted = await kp("DELETE", `/api/v2/keys/${id}`, { prefer: "return=representation" });
  t.is(deleted.status, 200);
  t.like(first(deleted), { state: 5, deleted: true });
  t.like(first(await kp("GET", `/api/v2/keys/${id}/metadata`)), { state: 5, deleted: true });
  const gone = await kp("DELETE", `/api/v2/keys/${id}`);
  t.is(gone.status, 410);
  t.like(first(gone), { errorMsg: "Gone: Key could not be deleted. Please see `reasons` for more details." });
  t.is(reasonCode(gone), "KEY_DELETED_ERR");
  t.is(reasonCode(await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: {} })), "KEY_DELETED_ERR");
  t.is((await kp("GET", "/api/v2/keys")).json.resources?.some((k) => k["id"] === id), false, "deleted keys are not listed by default");
  t.is((await kp("GET", "/api/v2/keys?state=5")).json.resources?.some((k) => k["id"] === id), true);

  const missing = await kp("GET", `/api/v2/keys/${crypto.randomUUID()}`);
  t.is(missing.status, 404);
  t.like(first(missing), { errorMsg: "Not Found: Key could not be retrieved. Please see `reasons` for more details." });
  t.is(reasonCode(missing), "KEY_NOT_FOUND_ERR");

  const keysBefore = emu.admin.keys(A).length;
  const material = crypto.randomBytes(32);
  const good = await tokenImportFields(material);
  const badIv = await kp("POST", "/api/v2/keys", { body: keyBody({ name: "bad-iv", ...good, iv: crypto.randomBytes(12).toString("base64") }) });
  t.is(badIv.status, 400);
  t.is(reasonCode(badIv), "INCORRECT_NONCE_IV_ERR");
  const otherNonce = crypto.randomBytes(12);
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv("aes-256-gcm", material, iv);
  const wrongNonce = await kp("POST", "/api/v2/keys", {
    body: keyBody({ name: "bad-nonce", ...good, iv: iv.toString("base64"), encryptedNonce: Buffer.concat([c.update(otherNonce), c.final(), c.getAuthTag()]).toString("base64") }),
  });
  t.is(reasonCode(wrongNonce), "INCORRECT_NONCE_ERR");
  t.is(reasonCode(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "short", payload: crypto.randomBytes(20).toString("base64") }) })), "INVALID_FIELD_ERR");
  const mismatch = await kp("POST", "/api/v2/keys", { body: { metadata: { collectionType: "application/vnd.ibm.kms.key+json", collectionTotal: 2 }, resources: [{ name: "x1" }] } });
  t.is(reasonCode(mismatch), "COLLECTION_TOTAL_MISMATCH_ERR");
  emu.admin.expireImportToken(A);
  const expired = await kp("POST", "/api/v2/keys", { body: keyBody({ name: "late", ...good }) });
  t.is(expired.status, 409);
  t.is(reasonCode(expired), "IMPORT_TOKEN_EXPIRED_ERR");
  t.is(emu.admin.keys(A).length, keysBefore, "no rejected import created a key");
  t.like(emu.admin.imports().at(-1), { accepted: false, error: "IMPORT_TOKEN_EXPIRED_ERR", keyRef: "" });

  const wrapKey = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "unwrap-bad" }) }))["id"]);
  const garbage = await kp("POST", `/api/v2/keys/${wrapKey}/actions/unwrap`, { body: { ciphertext: Buffer.from("{}").toString("base64") } });
  t.is(garbage.status, 422);
  t.is(reasonCode(garbage), "UNPROCESSABLE_CIPHERTEXT_ERR");

  t.is(reasonCode(await kp("POST", `/api/v2/keys/${wrapKey}/actions/setKeyForDeletion`)), "NOT_DUAL_AUTH_ERR");
  emu.admin.setDualAuth(wrapKey, true);
  t.is(reasonCode(await kp("DELETE", `/api/v2/keys/${wrapKey}`)), "AUTHORIZATIONS_NOT_MET");
  t.is((await kp("POST", `/api/v2/keys/${wrapKey}/actions/setKeyForDeletion`)).status, 204);
  t.is((await kp("DELETE", `/api/v2/keys/${wrapKey}`)).status, 204);

  // Expiration: Active → Deactivated (3); wrap refused, unwrap allowed.
  const soon = new Date(Date.parse(emu.admin.state().now) + 3_600_000).toISOString();
  const exp = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "expiring", expirationDate: soon }) }))["id"]);
  const wrappedEarly = await kp("POST", `/api/v2/keys/${exp}/actions/wrap`, { body: {} });
  emu.admin.advanceClock(3601);
  t.is(first(await kp("GET", `/api/v2/keys/${exp}`))["state"], 3);
  t.is((await kp("POST", `/api/v2/keys/${exp}/actions/wrap`, { body: {} })).status, 409);
  t.is((await kp("POST", `/api/v2/keys/${exp}/actions/unwrap`, { body: { ciphertext: wrappedEarly.json["ciphertext"] } })).json["plaintext"], wrappedEarly.json["plaintext"]);
});

test.serial("pass-through tokens: the caller's bearer token is checked, per instance", async (t) => {
  const noToken = await kp("GET", "/api/v2/keys", { token: null });
  t.is(noToken.status, 401);
  t.deepEqual(noToken.json, {
    metadata: { collectionType: "application/vnd.ibm.kms.error+json", collectionTotal: 1 },
    resources: [{ errorMsg: "Unauthorized: The user does not have access to the specified resource" }],
  });
  t.is((await kp("GET", "/api/v2/keys", { token: "not-a-known-token" })).status, 401);
  t.is((await kp("GET", "/api/v2/keys", { instance: null })).status, 400);
  t.is((await kp("GET", "/api/v2/keys", { token: SCOPED, instance: A })).status, 200);
  t.is((await kp("GET", "/api/v2/keys", { token: SCOPED, instance: B })).status, 403);
  t.is((await kp("GET", "/api/v2/keys", { instance: "33333333-3333-4333-8333-333333333333" })).status, 403, "unknown instance");
  const denied = emu.admin.calls(2);
  t.like(denied, [{ status: 403, committed: false }, { status: 403, committed: false }]);

  emu.admin.addToken("rotated-token", [B]);
  t.is((await kp("GET", "/api/v2/keys", { token: "rotated-token", instance: B })).status, 200);
  emu.admin.revokeToken("rotated-token");
  t.is((await kp("GET", "/api/v2/keys", { token: "rotated-token", instance: B })).status, 401);
  // Keys are per instance.
  const inB = first(await kp("POST", "/api/v2/keys", { instance: B, body: keyBody({ name: "b-key" }) }));
  t.is((await kp("GET", `/api/v2/keys/${String(inB["id"])}`, { instance: A })).status, 404);
});

test.serial("faults reach the client as Key Protect answers", async (t) => {
  const count = () => emu.admin.keys(A).length;
  const before = count();
  emu.admin.failNext({ operation: "CreateKey", kind: "throttle" });
  const throttled = await kp("POST", "/api/v2/keys", { body: keyBody({ name: "throttled" }) });
  t.is(throttled.status, 429);
  t.is(reasonCode(throttled), "TOO_MANY_REQUESTS_ERR");
  t.like(throttled.json, { metadata: { collectionType: "application/vnd.ibm.kms.error+json" } });
  emu.admin.failNext({ operation: "CreateKey", kind: "server-error" });
  t.is((await kp("POST", "/api/v2/keys", { body: keyBody({ name: "unavailable" }) })).status, 503);
  t.is(count(), before, "faults before commit create nothing");

  emu.admin.failNext({ operation: "CreateKey", kind: "server-error", afterCommit: true });
  t.is((await kp("POST", "/api/v2/keys", { body: keyBody({ name: "lost-answer" }) })).status, 503);
  t.is(count(), before + 1, "an after-commit fault loses the answer, not the key");
  t.like(emu.admin.calls(1)[0], { operation: "CreateKey", status: 503, fault: "server-error", committed: true });

  emu.admin.failNext({ operation: "ListKeys", kind: "timeout" });
  // The emulator never answers; the client's own deadline ends the call (a DOMException, not an Error, in Node 20).
  const outcome = await kp("GET", "/api/v2/keys", { signal: AbortSignal.timeout(1500) }).then(() => "answered", (e: { name?: string }) => e.name);
  t.is(outcome, "TimeoutError");
  t.deepEqual(emu.admin.faults().scripted, [], "the emulator received the call and held it");
  t.like(emu.admin.calls(1)[0], { operation: "ListKeys", status: 0, fault: "timeout" });

  const pattern = async () => {
    emu.admin.setFaults({ throttleRate: 0.5, onlyOperations: ["ListKeys"], seed: 7, latencyMs: 1 });
    const out: number[] = [];
    for (let i = 0; i < 12; i++) out.push((await kp("GET", "/api/v2/keys")).status);
    return out;
  };
  const run = await pattern();
  t.deepEqual(await pattern(), run);
  t.true(run.includes(200) && run.includes(429));
  emu.admin.clearFaults();
  t.deepEqual(emu.admin.faults().scripted, []);
});

test.serial("out-of-band changes are visible to the client", async (t) => {
  const material = crypto.randomBytes(32);
  const id = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "oob", payload: material.toString("base64") }) }))["id"]);
  emu.admin.disableKey(id);
  t.is(first(await kp("GET", `/api/v2/keys/${id}`))["state"], 2);
  t.is((await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: {} })).status, 409);
  emu.admin.enableKey(id);

  const foreign = crypto.randomBytes(32);
  emu.admin.replaceMaterial(id, foreign);
  t.is(emu.admin.kcv(id), aesKcv(foreign));
  const wrapped = String((await kp("POST", `/api/v2/keys/${id}/actions/wrap`, { body: { plaintext: Buffer.from("dek").toString("base64") } })).json["ciphertext"]);
  t.throws(() => localUnwrap(material, wrapped), undefined, "the vault's copy no longer unwraps");
  t.is(localUnwrap(foreign, wrapped).toString(), "dek");

  emu.admin.setAliases(id, ["someone-elses-alias"]);
  emu.admin.setName(id, "renamed");
  t.like(first(await kp("GET", `/api/v2/keys/${id}`)), { name: "renamed", aliases: ["someone-elses-alias"] });
  const v2 = emu.admin.rotateKey(id);
  t.is((await kp("GET", `/api/v2/keys/${id}/versions`)).json.resources?.[0]?.["id"], v2);
  emu.admin.setKeyState(id, 3);
  t.is(first(await kp("GET", `/api/v2/keys/${id}`))["state"], 3);
  emu.admin.deleteKey(id);
  t.like(first(await kp("GET", `/api/v2/keys/${id}`)), { state: 5, deleted: true });
  emu.admin.purgeKey(id);
  t.is((await kp("GET", `/api/v2/keys/${id}`)).status, 404);
});

test.serial("call log proves a single create; admin HTTP mirrors the in-process API", async (t) => {
  emu.admin.clearCalls();
  const id = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "once" }) }))["id"]);
  await kp("GET", `/api/v2/keys/${id}`);
  t.deepEqual(emu.admin.calls().map((c) => c.operation), ["CreateKey", "GetKey"]);

  const admin = `${emu.adminUrl}/_emulator`;
  const state = (await (await fetch(`${admin}/state`)).json()) as { instances: Array<{ id: string; keys: Array<{ id: string; kcv?: string }> }> };
  t.is(state.instances.find((i) => i.id === A)?.keys.find((k) => k.id === id)?.kcv, emu.admin.kcv(id));
  t.is((await fetch(`${admin}/keys/${id}/disable`, { method: "POST" })).status, 200);
  t.is(first(await kp("GET", `/api/v2/keys/${id}`))["state"], 2);
  const material = (await (await fetch(`${admin}/keys/${id}/material`)).json()) as string;
  t.is(emu.admin.kcv(id), aesKcv(Buffer.from(material, "base64")));
  t.is((await fetch(`${admin}/tokens/http-token`, { method: "PUT", body: JSON.stringify({ instances: [A] }) })).status, 200);
  t.is((await kp("GET", "/api/v2/keys", { token: "http-token" })).status, 200);
  t.is((await fetch(`${admin}/keys/${crypto.randomUUID()}/disable`, { method: "POST" })).status, 404);
  const calls = (await (await fetch(`${admin}/calls?limit=1`)).json()) as Array<{ operation: string; status: number }>;
  t.like(calls, [{ operation: "ListKeys", status: 200 }]);
});

test.serial("the admin key view carries the description as stored (where clients without tags keep theirs)", async (t) => {
  const description = "mcko:key=vaults/v/keys/k mcko:request-id=0b5e";
  const id = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "described", description }) }))["id"]);
  const plain = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "undescribed" }) }))["id"]);
  t.is(emu.admin.key(id)?.description, description);
  t.is(emu.admin.keys(A).find((k) => k.id === id)?.description, description);
  t.is(emu.admin.key(plain)?.description, undefined, "no description, none invented");
  t.is(first(await kp("GET", `/api/v2/keys/${id}/metadata`))["description"], description, "the same text the REST API answers");
  const viaHttp = (await (await fetch(`${emu.adminUrl}/_emulator/keys/${id}`)).json()) as { description?: string };
  t.is(viaHttp.description, description);
});

test.serial("HTTPS with the per-run CA", async (t) => {
  const tlsEmu = await startKeyProtectEmulator({ tls: true, reuseWrappingKeys: true });
  try {
    t.regex(tlsEmu.endpoint, /^https:\/\/127\.0\.0\.1:\d+$/);
    const get = (ca?: string) =>
      new Promise<number>((resolve, reject) => {
        const req = httpsRequest(`${tlsEmu.endpoint}/api/v2/keys`, { ca, headers: { authorization: "Bearer mcko-emulator-token", "bluemix-instance": A } }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on("error", reject);
        req.end();
      });
    t.is(await get(tlsEmu.caCertPem), 200);
    await t.throwsAsync(get(undefined));
  } finally {
    await tlsEmu.close();
  }
});

test.serial("reset() forgets keys, tokens, captures, calls and faults", async (t) => {
  const id = String(first(await kp("POST", "/api/v2/keys", { body: keyBody({ name: "before-reset" }) }))["id"]);
  emu.admin.setFaults({ latencyMs: 1 });
  emu.admin.reset();
  t.deepEqual(emu.admin.state().instances, []);
  t.deepEqual(emu.admin.imports(), []);
  t.deepEqual(emu.admin.faults(), { config: {}, scripted: [] });
  t.is((await kp("GET", `/api/v2/keys/${id}`)).status, 404);
  t.deepEqual(emu.admin.calls().map((c) => c.operation), ["GetKey"]);
});

test("IAM: an API key is exchanged for a bearer token scoped like the key; a wrong one gets IAM's BXNIM0415E", async (t) => {
  const iam = await startKeyProtectEmulator({ tokens: [], apiKeys: { "good-api-key": [A] }, instances: [A, B] });
  try {
    const exchange = (apikey: string) =>
      fetch(`${iam.endpoint}/identity/token`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
        body: new URLSearchParams({ grant_type: "urn:ibm:params:oauth:grant-type:apikey", apikey }).toString(),
      });
    const ok = await exchange("good-api-key");
    t.is(ok.status, 200);
    const body = (await ok.json()) as { access_token: string; token_type: string; expires_in: number };
    t.is(body.token_type, "Bearer");
    t.is(body.expires_in, 3600);
    const list = (instance: string) => fetch(`${iam.endpoint}/api/v2/keys`, { headers: { authorization: `Bearer ${body.access_token}`, "bluemix-instance": instance } });
    t.is((await list(A)).status, 200);
    t.is((await list(B)).status, 403, "the token carries the API key's instances only");
    const bad = await exchange("wrong-api-key");
    t.is(bad.status, 400);
    t.like(await bad.json(), { errorCode: "BXNIM0415E", errorMessage: "Provided API key could not be found." });
    t.deepEqual(iam.admin.calls().map((c) => [c.operation, c.status]).filter(([op]) => op === "IamGetToken"), [["IamGetToken", 200], ["IamGetToken", 400]]);
  } finally {
    await iam.close();
  }
});

test("aliases: POST /keys/{id}/aliases/{alias} adds an alias, unique in the instance", async (t) => {
  const a = await kp("POST", "/api/v2/keys", { body: keyBody({ name: "alias-a" }) });
  const b = await kp("POST", "/api/v2/keys", { body: keyBody({ name: "alias-b" }) });
  const idA = String(a.json.resources![0]!["id"]);
  const idB = String(b.json.resources![0]!["id"]);
  const made = await kp("POST", `/api/v2/keys/${idA}/aliases/team-alias`);
  t.is(made.status, 201);
  t.like(made.json.resources![0]!, { keyId: idA, alias: "team-alias" });
  t.deepEqual((await kp("GET", `/api/v2/keys/${idA}/metadata`)).json.resources![0]!["aliases"], ["team-alias"]);
  const clash = await kp("POST", `/api/v2/keys/${idB}/aliases/team-alias`);
  t.is(clash.status, 400);
  t.is((clash.json.resources![0]!["reasons"] as Array<{ code: string }>)[0]!.code, "INVALID_FIELD_ERR");
});
