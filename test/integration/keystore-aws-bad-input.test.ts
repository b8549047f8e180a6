/**
 * Bad input to keystores and distributions against the real daemon and the AWS emulator: an unknown keystore type,
 * a malformed endpoint, a region that does not exist, wrong credentials and an algorithm AWS cannot import each
 * get a clear error naming the field or carrying the cloud's refusal, and nothing stored changes (keystores,
 * distributions, keys at the emulator). Caller-supplied credentials work per call. Canary: no credential appears in
 * any daemon log line, stored file, audit event, response or error message.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { CredentialSource, KeystoreType } from "../../protos/gen/mcko/v1/keystore.js";
import { SyncState } from "../../protos/gen/mcko/v1/distribution.js";
import { startAwsKmsEmulator } from "../emulators/aws-kms/index.js";
import { clientsFor, decodeFailure, makeHome, mtls, rpc, rpcError, startDaemonProcess } from "../support/daemon.js";
import { awsKeystore, keystoreClientsFor, newKey } from "../support/keystores.js";

const VAULT = "bad";
const SECRET = "Canary+Secret/Access=Key0123456789abcdefXYZ";
const ACCESS_KEY_ID = "AKIACANARY0000000042";
const WRONG_SECRET = "Wrong+Secret/Value=0123456789abcdefghijklmn";

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? filesUnder(p) : [p];
  });
}

type Unary<Req, Res> = (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall;
function rpcWith<Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req, md: grpc.Metadata): Promise<Res> {
  return new Promise((resolve, reject) => fn.call(client, req, md, { deadline: Date.now() + 30_000 }, (err, res) => (err ? reject(err) : resolve(res))));
}

test("bad input gets a clear error and changes nothing; caller credentials work per call; no credential leaks anywhere", async (t) => {
  t.timeout(300_000);
  const emu = await startAwsKmsEmulator({ accessKeys: { [ACCESS_KEY_ID]: SECRET } });
  const home = await makeHome({ logLevel: "trace", reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 3000, cloudDeadlineMs: 8000 });
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  const k = keystoreClientsFor(daemon.address, mtls(home));
  const responses: string[] = [];
  const seen = (x: unknown) => responses.push(JSON.stringify(x, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v)));
  const fail = async <Req, Res>(client: grpc.Client, fn: Unary<Req, Res>, req: Req) => {
    const f = await rpcError(client, fn, req);
    seen(f);
    return f;
  };
  const good = { region: emu.region, endpoint: emu.endpoint, accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET };
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const ks = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "aws", keystore: awsKeystore(good), requestId: "", validateOnly: false })).keystore!;
    seen(ks);
    t.true(ks.hasCredentials);
    t.is(ks.config?.$case, "awsKms");
    if (ks.config?.$case === "awsKms") {
      t.is(ks.config.value.secretAccessKey, "", "credentials are write-only");
      t.is(ks.config.value.accessKeyId, "");
      t.is(ks.config.value.endpoint, emu.endpoint);
    }
    const snapshot = async () => ({
      keystores: (await rpc(k.keystores, k.keystores.listKeystores, { parent: `vaults/${VAULT}`, pageSize: 0, pageToken: "" })).keystores.map((x) => `${x.name}:${x.etag}`),
      distributions: (await rpc(k.distributions, k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions.map((x) => x.name),
      cloudKeys: emu.admin.keys().length,
    });
    const before = await snapshot();

    // Unknown keystore type.
    let f = await fail(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x1", keystore: { ...awsKeystore(good), type: 99 as KeystoreType, config: undefined }, requestId: "", validateOnly: false });
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.true(f.fieldViolations.includes("keystore.type"), f.message);
    // Type and config disagree.
    f = await fail(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x2", keystore: { ...awsKeystore(good), type: KeystoreType.KEYSTORE_TYPE_GCP_KMS }, requestId: "", validateOnly: false });
    t.true(f.fieldViolations.includes("keystore.type"), f.message);
    // Malformed endpoint; a region that is not a region name.
    f = await fail(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x3", keystore: awsKeystore({ ...good, endpoint: "htp:/127.0.0.1::99/x?y", region: "mars" }), requestId: "", validateOnly: false });
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual([...f.fieldViolations].sort(), ["keystore.aws_kms.endpoint", "keystore.aws_kms.region"]);
    // A well-formed region that does not exist: the cloud refuses it (dry run), naming the field.
    f = await fail(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x4", keystore: awsKeystore({ ...good, region: "us-nowhere-9" }), requestId: "", validateOnly: true });
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.aws_kms.region"]);
    // Wrong credentials, dry run: the cloud's refusal comes back, nothing is stored.
    f = await fail(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x5", keystore: awsKeystore({ ...good, secretAccessKey: WRONG_SECRET }), requestId: "", validateOnly: true });
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.is(f.metadata.cloudErrorCode, "InvalidSignatureException");
    // The good settings pass the dry run, still storing nothing.
    const dry = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x6", keystore: awsKeystore(good), requestId: "", validateOnly: true })).keystore!;
    seen(dry);
    t.is(dry.lastTestResult.includes("accepted the credentials"), true);
    t.deepEqual(await snapshot(), before);

    // An algorithm AWS cannot import.
    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "aes128", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_128), initialState: 0, requestId: "" });
    f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes128`, keystore: `vaults/${VAULT}/keystores/aws`, requestId: "" });
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
    t.regex(f.message, /256-bit/);
    t.deepEqual(await snapshot(), before);

    // A keystore whose stored credentials are wrong: TestKeystore says so; a push is refused and rolled back.
    await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "wrong", keystore: awsKeystore({ ...good, secretAccessKey: WRONG_SECRET }), requestId: "", validateOnly: false });
    const tested = await rpc(k.keystores, k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrong` });
    seen(tested);
    t.false(tested.ok);
    t.is(tested.cloudErrorCode, "InvalidSignatureException");
    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "aes256", key: newKey(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId: "" });
    const before2 = await snapshot();
    f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes256`, keystore: `vaults/${VAULT}/keystores/wrong`, requestId: "" });
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.deepEqual(await snapshot(), before2, "the rejected push left no distribution and no cloud key");
    // Fixing the credentials through UpdateKeystore (one field of the config) makes the same push work.
    const fixed = (await rpc(k.keystores, k.keystores.updateKeystore, { keystore: { ...awsKeystore({ secretAccessKey: SECRET }), name: `vaults/${VAULT}/keystores/wrong` }, updateMask: ["aws_kms.secret_access_key"], validateOnly: false })).keystore!;
    seen(fixed);
    t.true((await rpc(k.keystores, k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrong` })).ok);
    const pushed = (await rpc(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes256`, keystore: `vaults/${VAULT}/keystores/wrong`, requestId: "" })).distribution!;
    seen(pushed);
    t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
    // A keystore in use cannot be deleted.
    f = await fail(k.keystores, k.keystores.deleteKeystore, { name: `vaults/${VAULT}/keystores/wrong`, etag: "" });
    t.is(f.reason, "KEYSTORE_IN_USE");

    // Caller credentials: nothing stored; a call without them is refused, with them it works.
    const callerKs = (await rpc(k.keystores, k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "caller", keystore: awsKeystore({ region: emu.region, endpoint: emu.endpoint }, { credentialSource: CredentialSource.CREDENTIAL_SOURCE_CALLER }), requestId: "", validateOnly: false })).keystore!;
    t.false(callerKs.hasCredentials);
    await rpc(c.keys, c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: "hmac", key: newKey(KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256), initialState: 0, requestId: "" });
    f = await fail(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/hmac`, keystore: `vaults/${VAULT}/keystores/caller`, requestId: "" });
    t.is(f.reason, "CLOUD_CREDENTIALS_REQUIRED");
    const md = new grpc.Metadata();
    md.set("x-mcko-cloud-credentials", Buffer.from(JSON.stringify({ access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET })).toString("base64"));
    const viaCaller = (await rpcWith(k.distributions, k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/hmac`, keystore: `vaults/${VAULT}/keystores/caller`, requestId: "" }, md)).distribution!;
    seen(viaCaller);
    t.is(viaCaller.syncState, SyncState.SYNC_STATE_IN_SYNC, viaCaller.lastError);
    const live = (await rpcWith(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/hmac/distributions/caller`, readLive: true }, md)).distribution!;
    t.deepEqual(live.drift, []);
    // Drift seen live: disabled behind the vault's back → DRIFTED with the reason; SyncDistribution repairs it.
    emu.admin.disableKey(viaCaller.cloudKeyId);
    const drifted = (await rpcWith(k.distributions, k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/hmac/distributions/caller`, readLive: true }, md)).distribution!;
    t.is(drifted.syncState, SyncState.SYNC_STATE_DRIFTED);
    t.true(drifted.drift.some((d) => /DISABLED, the vault wants ENABLED/.test(d)), drifted.drift.join("; "));
    await rpcWith(k.distributions, k.distributions.syncDistribution, { name: `vaults/${VAULT}/keys/hmac/distributions/caller` }, md);
    t.is(emu.admin.key(viaCaller.cloudKeyId)!.keyState, "Enabled");

    // A vault that still has a keystore cannot be deleted; after removing the keystore it can.
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "ksonly", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    await rpc(k.keystores, k.keystores.createKeystore, { parent: "vaults/ksonly", keystoreId: "aws", keystore: awsKeystore(good), requestId: "", validateOnly: false });
    f = await fail(c.vaults, c.vaults.deleteVault, { name: "vaults/ksonly", etag: "" });
    t.is(f.reason, "VAULT_NOT_EMPTY");
    await rpc(k.keystores, k.keystores.deleteKeystore, { name: "vaults/ksonly/keystores/aws", etag: "" });
    await rpc(c.vaults, c.vaults.deleteVault, { name: "vaults/ksonly", etag: "" });
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    c.close();
    k.close();
    await daemon.stop();
    await emu.close();
  }

  // Canary: the credentials appear nowhere the daemon wrote or answered.
  const haystacks = filesUnder(home.dir).map((file) => ({ where: file, text: readFileSync(file).toString("latin1") }));
  haystacks.push({ where: "daemon log", text: daemon.logs() }, { where: "responses and errors", text: responses.join("\n") });
  t.true(daemon.logs().includes('"level":'), "the daemon's log was captured (it runs at trace)");
  const needles = [SECRET, WRONG_SECRET, ACCESS_KEY_ID, Buffer.from(SECRET).toString("base64").slice(0, 24), Buffer.from(SECRET).toString("hex").slice(0, 32)];
  let hits = 0;
  for (const n of needles) {
    for (const h of haystacks) {
      if (h.text.includes(n)) {
        hits++;
        t.log(`credential found in ${h.where}`);
      }
    }
  }
  t.is(hits, 0);
  t.true(readFileSync(home.journalFile, "utf8").includes("KeystoreService/CreateKeystore"), "keystore changes are audited");
  home.cleanup();
});
