/**
 * BYOK push to IBM Key Protect through the real daemon process and the Key Protect emulator (REST, IAM API-key
 * grant, import tokens checked for real): AES root keys imported with an import token (RSA-OAEP-SHA-256 of the
 * material, AES-GCM-sealed nonce) arrive with the vault's KCV; state changes, rotation and destruction show in the
 * emulator's own state; a cloud wrap decrypts with the vault's copy and a ciphertext made with the vault's copy
 * unwraps at the cloud. Pass-through IAM tokens (credential source CALLER), bad input, and the pkcs11 backend's
 * refusal without allow_software_wrap. Runs on the backend MCKO_TEST_HSM selects; the last test always on SoftHSM2.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { createDecipheriv, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { CloudKeyState, SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { CredentialSource, KeystoreType, type IbmKeyProtectConfig, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { parseCiphertext, startKeyProtectEmulator } from "../emulators/key-protect/index.js";
import { wrap as kpWrapCiphertext } from "../emulators/key-protect/crypto.js";
import { clientsFor, decodeFailure, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Home } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey, vaultMaterials } from "../support/keystores.js";
import { filesUnder } from "../support/files.js";

const VAULT = "kp";
const INSTANCE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const OTHER_INSTANCE = "0a0b0c0d-1e1f-4a2b-8c3d-4e5f6a7b8c9d";
const API_KEY = "Canary-KP-ApiKey-0123456789abcdefXYZ";
const WRONG_API_KEY = "Wrong-KP-ApiKey-9876543210zyxwvuABC";
const CALLER_TOKEN = "Canary-caller-IAM-token-0123456789";

function kpConfig(c: Partial<IbmKeyProtectConfig>): IbmKeyProtectConfig {
  return { endpoint: "", instanceId: "", iamEndpoint: "", apiKey: "", iamToken: "", keyRing: "", caCertPem: "", ...c };
}

function kpKeystore(c: Partial<IbmKeyProtectConfig>, extra: Partial<Keystore> = {}): Keystore {
  return { ...awsKeystore({}), type: KeystoreType.KEYSTORE_TYPE_IBM_KEY_PROTECT, config: { $case: "ibmKeyProtect", value: kpConfig(c) }, allowSoftwareWrap: true, ...extra };
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;
function rpcWith<Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, md, { deadline: Date.now() + 60_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}
function callerMetadata(creds: Record<string, string>): grpc.Metadata {
  const md = new grpc.Metadata();
  md.set("x-mcko-cloud-credentials", Buffer.from(JSON.stringify(creds)).toString("base64"));
  return md;
}

/** Counts where any needle appears in what the daemon wrote (home files, log) or answered. */
function leaks(home: Home, logs: string, responses: string[], needles: string[]): string[] {
  const haystacks = filesUnder(home.dir).map((file) => ({ where: file, text: readFileSync(file).toString("latin1") }));
  haystacks.push({ where: "daemon log", text: logs }, { where: "responses and errors", text: responses.join("\n") });
  const found: string[] = [];
  for (const n of needles) for (const h of haystacks) if (h.text.includes(n)) found.push(`${n.slice(0, 8)}… in ${h.where}`);
  return found;
}

test.serial("AES root keys arrive through the import token with the vault's KCV; state, rotation and destroy show at Key Protect; cloud crypto checks out with the vault's copy", async (t) => {
  t.timeout(300_000);
  const emu = await startKeyProtectEmulator({ tokens: [], apiKeys: { [API_KEY]: [INSTANCE] }, instances: [INSTANCE], reuseWrappingKeys: true });
  const home = await makeHome({ logLevel: "trace", reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const KS = `vaults/${VAULT}/keystores/kp`;
  const get = async (id: string) => (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${id}/distributions/kp`, readLive: false })).distribution!;
  const until = async (id: string, pred: (d: Awaited<ReturnType<typeof get>>) => boolean) => {
    for (;;) {
      const d = await get(id);
      if (pred(d)) return d;
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  const good = { endpoint: emu.endpoint, instanceId: INSTANCE, iamEndpoint: emu.endpoint, apiKey: API_KEY };
  let stopped = false;
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const dry = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "kp", keystore: kpKeystore(good), requestId: "", validateOnly: true })).keystore!;
    t.regex(dry.lastTestResult, /accepted the credentials/);
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "kp", keystore: kpKeystore(good), requestId: "", validateOnly: false })).keystore!;
    t.true(ks.hasCredentials);
    t.is(ks.config?.$case, "ibmKeyProtect");
    if (ks.config?.$case === "ibmKeyProtect") {
      t.is(ks.config.value.apiKey, "", "the API key is write-only");
      t.is(ks.config.value.instanceId, INSTANCE);
    }

    // Every algorithm Key Protect accepts: AES-128/192/256 root keys.
    const pushed = new Map<string, { cloudKeyId: string; kcv: string }>();
    for (const [id, alg] of [["aes128", KeyAlgorithm.KEY_ALGORITHM_AES_128], ["aes192", KeyAlgorithm.KEY_ALGORITHM_AES_192], ["aes256", KeyAlgorithm.KEY_ALGORITHM_AES_256]] as const) {
      const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(alg), initialState: 0, requestId: "" })).key!;
      const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: KS, requestId: "" })).distribution!;
      t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}: ${d.lastError}`);
      t.is(d.softwareStep, "rsa-over-material", "RSA-OAEP-SHA-256 over the material ran in software (allow_software_wrap)");
      const view = emu.admin.key(d.cloudKeyId)!;
      t.is(view.state, 1, "Active");
      t.false(view.extractable, "a root key");
      t.true(view.imported);
      t.is(view.name, id);
      t.deepEqual(view.aliases, [id]);
      t.is(emu.admin.kcv(d.cloudKeyId), key.versions[0]!.kcv, `${id}: the vault's material arrived`);
      pushed.set(id, { cloudKeyId: d.cloudKeyId, kcv: key.versions[0]!.kcv });
    }
    const imports = emu.admin.imports();
    t.is(imports.length, 3);
    t.true(imports.every((i) => i.wrappingAlgorithm === "RSAES_OAEP_SHA_256" && i.accepted && i.encryptedNonce.length === 12 + 16 && i.iv.length === 12), "secure import with the token");
    t.is(emu.admin.calls().filter((x) => x.operation === "CreateImportToken").length, 1, "one import token served all three imports");

    // What Key Protect cannot import is refused before anything is stored.
    for (const [id, alg] of [["hm", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256], ["rsa", KeyAlgorithm.KEY_ALGORITHM_RSA_2048], ["ec", KeyAlgorithm.KEY_ALGORITHM_EC_P256]] as const) {
      const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(alg), initialState: 0, requestId: "" })).key!;
      const f = await rpcError(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: KS, requestId: "" });
      t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
      t.regex(f.message, /only AES root keys/);
    }
    t.is(emu.admin.keys().length, 3);

    // Suspend → Suspended (2); activate → Active (1); deactivate → 2; destroy → Destroyed (5). From the emulator's state.
    const aes192 = pushed.get("aes192")!.cloudKeyId;
    await rpc(c.keys, c.keys.setKeyState, { name: `vaults/${VAULT}/keys/aes192`, state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "t" });
    await until("aes192", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(emu.admin.key(aes192)!.state, 2);
    await rpc(c.keys, c.keys.setKeyState, { name: `vaults/${VAULT}/keys/aes192`, state: KeyState.KEY_STATE_ACTIVE, etag: "", reason: "t" });
    await until("aes192", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_ENABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(emu.admin.key(aes192)!.state, 1);
    const aes128 = pushed.get("aes128")!.cloudKeyId;
    await rpc(c.keys, c.keys.setKeyState, { name: `vaults/${VAULT}/keys/aes128`, state: KeyState.KEY_STATE_DEACTIVATED, etag: "", reason: "t" });
    await until("aes128", (d) => d.desiredState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(emu.admin.key(aes128)!.state, 2);
    await rpc(c.keys, c.keys.setKeyState, { name: `vaults/${VAULT}/keys/aes128`, state: KeyState.KEY_STATE_DESTROYED, etag: "", reason: "t" });
    await until("aes128", (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED);
    t.is(emu.admin.key(aes128)!.state, 5, "Destroyed at Key Protect");

    // Rotation: new material through the token on actions/rotate → a second key version with the new KCV.
    const aes256 = pushed.get("aes256")!.cloudKeyId;
    const rotated = (await rpc(c.keys, c.keys.rotateKey, { name: `vaults/${VAULT}/keys/aes256`, etag: "", requestId: "" })).key!;
    const afterRotate = await until("aes256", (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC);
    t.is(afterRotate.cloudKeyId, aes256, "same key, new version");
    const rotView = emu.admin.key(aes256)!;
    t.is(rotView.versions.length, 2);
    t.is(emu.admin.kcv(aes256), rotated.versions[1]!.kcv, "the current version holds the vault's version 2");
    t.is(emu.admin.kcv(aes256, rotView.versions[0]!.id), rotated.versions[0]!.kcv, "version 1 is kept");
    t.is(afterRotate.versions[1]!.cloudVersionId, rotView.versions[1]!.id);
    t.true(emu.admin.imports().some((i) => i.operation === "RotateKey" && i.accepted && i.wrappingAlgorithm === "RSAES_OAEP_SHA_256"));

    // Drift: disabled out of band is seen live and repaired; a removed alias is put back.
    emu.admin.disableKey(aes192);
    const drifted = (await rpc(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/aes192/distributions/kp`, readLive: true })).distribution!;
    t.is(drifted.syncState, SyncState.SYNC_STATE_DRIFTED);
    t.true(drifted.drift.some((x) => /DISABLED, the vault wants ENABLED/.test(x)), drifted.drift.join("; "));
    emu.admin.setAliases(aes192, []);
    await rpc(k.distributions, k.distributions.syncDistribution, { name: drifted.name });
    t.is(emu.admin.key(aes192)!.state, 1);
    t.deepEqual(emu.admin.key(aes192)!.aliases, ["aes192"]);

    // The audit log records where the RSA step ran.
    const journal = readFileSync(home.journalFile, "utf8");
    t.true(journal.includes("rsa-over-material"), "the software step is audited");

    // Cloud crypto against the vault's copy (needs the software master key file to read the vault's copy).
    const token = (await (await fetch(`${emu.endpoint}/identity/token`, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: `grant_type=urn:ibm:params:oauth:grant-type:apikey&apikey=${API_KEY}` })).json()) as { access_token: string };
    const kpAction = async (id: string, action: string, body: unknown) => {
      const res = await fetch(`${emu.endpoint}/api/v2/keys/${id}/actions/${action}`, { method: "POST", headers: { authorization: `Bearer ${token.access_token}`, "bluemix-instance": INSTANCE, "content-type": "application/vnd.ibm.kms.key_action_wrap+json" }, body: JSON.stringify(body) });
      t.is(res.status, 200);
      return (await res.json()) as { ciphertext?: string; plaintext?: string };
    };
    const dek = randomBytes(32);
    const wrapped = await kpAction(aes256, "wrap", { plaintext: dek.toString("base64") });
    await daemon.stop();
    stopped = true;
    if (home.hsm === "software") {
      const materials = (await vaultMaterials(home, VAULT)).get("aes256")!;
      const parsed = parseCiphertext(wrapped.ciphertext!)!;
      t.is(parsed.keyVersion, rotView.versions[1]!.id);
      const d = createDecipheriv("aes-256-gcm", materials.get(2)!, parsed.iv);
      d.setAuthTag(parsed.body.subarray(parsed.body.length - 16));
      t.deepEqual(Buffer.concat([d.update(parsed.body.subarray(0, parsed.body.length - 16)), d.final()]), dek, "Key Protect's wrap decrypts with the vault's version 2");
      const mine = kpWrapCiphertext(aes256, rotView.versions[0]!.id, materials.get(1)!, Buffer.from("made with the vault's copy"));
      const unwrapped = await kpAction(aes256, "unwrap", { ciphertext: mine });
      t.is(Buffer.from(unwrapped.plaintext!, "base64").toString(), "made with the vault's copy", "Key Protect unwraps what the vault's version 1 wrapped");
      for (const m of materials.values()) m.fill(0);
    } else {
      t.log("pkcs11 backend: the vault's copy cannot be read outside the HSM; the KCVs above prove the material");
    }
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    c.close();
    k.close();
    if (!stopped) await daemon.stop();
    await emu.close();
  }
  const found = leaks(home, daemon.logs(), [], [API_KEY]);
  t.deepEqual(found, [], "the API key is nowhere the daemon wrote");
  home.cleanup();
});

test.serial("pass-through IAM tokens: the caller's token is what Key Protect authorizes; without one the call is UNAUTHENTICATED and says why", async (t) => {
  t.timeout(240_000);
  // No token of the emulator's own: only the caller's token, scoped to the instance, is accepted.
  const emu = await startKeyProtectEmulator({ tokens: [], instanceTokens: { [CALLER_TOKEN]: [INSTANCE] }, instances: [INSTANCE, OTHER_INSTANCE], reuseWrappingKeys: true });
  const home = await makeHome({ logLevel: "trace", reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 5000, cloudDeadlineMs: 15000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const responses: string[] = [];
  const seen = (x: unknown) => responses.push(JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
  const md = callerMetadata({ iam_token: CALLER_TOKEN });
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    // Storing a token on a pass-through keystore is refused, naming the field.
    let f = await rpcError(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "p", keystore: kpKeystore({ endpoint: emu.endpoint, instanceId: INSTANCE, iamToken: CALLER_TOKEN }, { credentialSource: CredentialSource.CREDENTIAL_SOURCE_CALLER }), requestId: "", validateOnly: false });
    seen(f);
    t.deepEqual(f.fieldViolations, ["keystore.ibm_key_protect.iam_token"]);
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "pass", keystore: kpKeystore({ endpoint: emu.endpoint, instanceId: INSTANCE }, { credentialSource: CredentialSource.CREDENTIAL_SOURCE_CALLER }), requestId: "", validateOnly: false })).keystore!;
    t.false(ks.hasCredentials);
    const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "aes", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
    const dists = async () => (await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions.map((x) => x.name);

    // Without a token: UNAUTHENTICATED, a message that says so, nothing stored, nothing at Key Protect.
    f = await rpcError(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: ks.name, requestId: "" });
    seen(f);
    t.is(f.code, grpc.status.UNAUTHENTICATED);
    t.is(f.reason, "CLOUD_CREDENTIALS_REQUIRED");
    t.regex(f.message, /caller's own cloud credentials.*x-mcko-cloud-credentials.*iam_token/);
    // Metadata without a credential field is no better.
    try {
      await rpcWith(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: ks.name, requestId: "" }, callerMetadata({ something: "else" }));
      t.fail("a push without an iam_token succeeded");
    } catch (e) {
      const g = decodeFailure(e as grpc.ServiceError);
      seen(g);
      t.is(g.code, grpc.status.UNAUTHENTICATED);
      t.is(g.reason, "CLOUD_CREDENTIALS_REQUIRED");
    }
    t.deepEqual(await dists(), []);
    t.is(emu.admin.calls().length, 0, "Key Protect was never called");

    // With the caller's token: the emulator, which knows no other token, authorizes every call with it.
    const d = (await rpcWith(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: ks.name, requestId: "" }, md)).distribution!;
    seen(d);
    t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, d.lastError);
    t.is(emu.admin.kcv(d.cloudKeyId), key.versions[0]!.kcv);
    t.true(emu.admin.calls().every((x) => x.status >= 200 && x.status < 300), "every call was authorized");
    const live = (await rpcWith(k.distributions, k.distributions.getDistribution, { name: d.name, readLive: true }, md)).distribution!;
    t.deepEqual(live.drift, []);
    // Key Protect's own decision: once the token is revoked there, the same call is refused by Key Protect.
    emu.admin.revokeToken(CALLER_TOKEN);
    try {
      await rpcWith(k.distributions, k.distributions.getDistribution, { name: d.name, readLive: true }, md);
      t.fail("a revoked token was accepted");
    } catch (e) {
      const g = decodeFailure(e as grpc.ServiceError);
      seen(g);
      t.is(g.reason, "CLOUD_CREDENTIALS_REJECTED");
      t.regex(g.message, /refused the IAM token/);
    }
    t.is(emu.admin.calls().at(-1)!.status, 401);
    // A token for another instance only: Key Protect answers 403, reported as the instance being denied.
    emu.admin.addToken(CALLER_TOKEN, [OTHER_INSTANCE]);
    try {
      await rpcWith(k.distributions, k.distributions.getDistribution, { name: d.name, readLive: true }, md);
      t.fail("a token without access to the instance was accepted");
    } catch (e) {
      const g = decodeFailure(e as grpc.ServiceError);
      seen(g);
      t.is(g.reason, "CLOUD_CREDENTIALS_REJECTED");
      t.regex(g.message, /instance_id/);
    }
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
  }
  t.deepEqual(leaks(home, daemon.logs(), responses, [CALLER_TOKEN]), [], "the caller's token is nowhere the daemon wrote or answered");
  t.true(readFileSync(home.journalFile, "utf8").includes("UNAUTHENTICATED"), "the refused calls are audited");
  home.cleanup();
});

test.serial("bad input: malformed endpoint, missing instance id, wrong API key, unsupported algorithm — a clear error naming the field, nothing stored changes, no credential anywhere", async (t) => {
  t.timeout(240_000);
  const emu = await startKeyProtectEmulator({ tokens: [], apiKeys: { [API_KEY]: [INSTANCE] }, instances: [INSTANCE], reuseWrappingKeys: true });
  const home = await makeHome({ logLevel: "trace", reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 3000, cloudDeadlineMs: 8000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const responses: string[] = [];
  const seen = (x: unknown) => responses.push(JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
  const good = { endpoint: emu.endpoint, instanceId: INSTANCE, iamEndpoint: emu.endpoint, apiKey: API_KEY };
  const create = async (id: string, cfg: Partial<IbmKeyProtectConfig>, validateOnly = false) => {
    const f = await rpcError(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: id, keystore: kpKeystore(cfg), requestId: "", validateOnly });
    seen(f);
    return f;
  };
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "kp", keystore: kpKeystore(good), requestId: "", validateOnly: false });
    const snapshot = async () => ({
      keystores: (await rpc(k.keystores, k.keystores.listKeystores, { parent: `vaults/${VAULT}`, pageSize: 0, pageToken: "" })).keystores.map((x) => `${x.name}:${x.etag}`),
      distributions: (await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions.map((x) => x.name),
      cloudKeys: emu.admin.keys().length,
    });
    const before = await snapshot();

    let f = await create("x1", { ...good, endpoint: "htp:/127.0.0.1::99/x?y" });
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.ibm_key_protect.endpoint"]);
    f = await create("x2", { ...good, instanceId: "" });
    t.deepEqual(f.fieldViolations, ["keystore.ibm_key_protect.instance_id"]);
    t.regex(f.message, /instance_id: is required/);
    f = await create("x3", { ...good, instanceId: "not-a-guid", iamEndpoint: "ftp://iam" });
    t.deepEqual([...f.fieldViolations].sort(), ["keystore.ibm_key_protect.iam_endpoint", "keystore.ibm_key_protect.instance_id"]);
    f = await create("x4", { ...good, apiKey: "" });
    t.deepEqual(f.fieldViolations, ["keystore.ibm_key_protect.api_key"]);
    // A wrong API key: IAM's refusal comes back on the dry run, naming the field and IAM's code.
    f = await create("x5", { ...good, apiKey: WRONG_API_KEY }, true);
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.is(f.metadata.cloudErrorCode, "BXNIM0415E");
    t.regex(f.message, /api_key/);
    t.deepEqual(await snapshot(), before);

    // Stored with a wrong API key: TestKeystore says so; a push is refused and leaves nothing behind.
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "wrong", keystore: kpKeystore({ ...good, apiKey: WRONG_API_KEY }), requestId: "", validateOnly: false });
    const tested = await rpc(k.keystores, k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrong` });
    seen(tested);
    t.false(tested.ok);
    t.is(tested.cloudErrorCode, "BXNIM0415E");
    const aes = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "aes", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
    const before2 = await snapshot();
    f = await rpcError(k.distributions, k.distributions.createDistribution, { parent: aes.name, keystore: `vaults/${VAULT}/keystores/wrong`, requestId: "" });
    seen(f);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.deepEqual(await snapshot(), before2, "no distribution, no key at Key Protect");

    // Unsupported algorithm.
    const hm = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "hm", key: newKey(KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512), initialState: 0, requestId: "" })).key!;
    f = await rpcError(k.distributions, k.distributions.createDistribution, { parent: hm.name, keystore: `vaults/${VAULT}/keystores/kp`, requestId: "" });
    seen(f);
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
    t.deepEqual(await snapshot(), before2);

    // Fixing the API key makes the same push work.
    await rpc(k.keystores, k.keystores.updateKeystore, { keystore: { ...kpKeystore({ apiKey: API_KEY }), name: `vaults/${VAULT}/keystores/wrong` }, updateMask: ["ibm_key_protect.api_key"], validateOnly: false });
    const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: aes.name, keystore: `vaults/${VAULT}/keystores/wrong`, requestId: "" })).distribution!;
    seen(d);
    t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, d.lastError);
    t.is(emu.admin.kcv(d.cloudKeyId), aes.versions[0]!.kcv);
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
  }
  t.true(daemon.logs().includes('"level":'), "the daemon's log was captured");
  t.deepEqual(leaks(home, daemon.logs(), responses, [API_KEY, WRONG_API_KEY, Buffer.from(API_KEY).toString("base64").slice(0, 24)]), []);
  home.cleanup();
});

test.serial("pkcs11 (SoftHSM2 has OAEP with SHA-1 only): refused without allow_software_wrap, nothing stored; allowed, the step runs in software and is audited", async (t) => {
  t.timeout(240_000);
  const emu = await startKeyProtectEmulator({ tokens: [], apiKeys: { [API_KEY]: [INSTANCE] }, instances: [INSTANCE], reuseWrappingKeys: true });
  const home = await makeHome({ reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 10000, cloudDeadlineMs: 30000 }, "pkcs11");
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  try {
    t.is(home.hsm, "pkcs11");
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "kp", keystore: kpKeystore({ endpoint: emu.endpoint, instanceId: INSTANCE, iamEndpoint: emu.endpoint, apiKey: API_KEY }, { allowSoftwareWrap: false }), requestId: "", validateOnly: false })).keystore!;
    const key = (await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "aes", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" })).key!;
    const f = await rpcError(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: ks.name, requestId: "" });
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "SOFTWARE_WRAP_NOT_ALLOWED");
    t.regex(f.message, /allow_software_wrap/);
    t.is(f.metadata.format, "RSA_OAEP_SHA256");
    t.deepEqual((await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions, []);
    t.is(emu.admin.keys().length, 0);
    t.is(emu.admin.imports().length, 0, "nothing was sent");

    await rpc(k.keystores, k.keystores.updateKeystore, { keystore: { ...kpKeystore({}, { allowSoftwareWrap: true }), name: ks.name }, updateMask: ["allow_software_wrap"], validateOnly: false });
    const d = (await rpc(k.distributions, k.distributions.createDistribution, { parent: key.name, keystore: ks.name, requestId: "" })).distribution!;
    t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, d.lastError);
    t.is(d.softwareStep, "rsa-over-material");
    t.is(emu.admin.kcv(d.cloudKeyId), key.versions[0]!.kcv, "the nonce sealed with CKM_AES_GCM in the token checked out at Key Protect");
    const events = readFileSync(home.journalFile, "utf8").split("\n").filter((l) => l.includes("distributions/kp") && l.includes("rsa-over-material"));
    t.is(events.length, 1, "the push's audit event records the software step");
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
    home.cleanup();
  }
});
