/**
 * The PKCS#11 token keystore target through the real daemon process, with a second SoftHSM2 token as the target,
 * for both daemon HSM backends (software, and pkcs11 on its own SoftHSM2 token in the same SoftHSM configuration, so
 * the daemon loads libsofthsm2 once for both). What the token holds is read by a separate plain pkcs11js program
 * (test/support/pkcs11-app.mjs, its own process) the way any application would: it finds each pushed object by
 * label and encrypts, MACs or signs with it, and the vault's own copy decrypts or verifies the result. State
 * changes, rotation and destroy are asserted from the token's attributes and object presence. Bad input (a module
 * that does not exist or is no PKCS#11 library, an unknown token label, a wrong PIN, an algorithm the keystore
 * cannot take) gets an error naming the field and changes nothing; the PIN appears in no log, file, response or
 * audit event. Last, at the connector level: an interrupted push resumes into exactly one object, and a token that
 * refuses to change usage attributes gets the object removed on disable and pushed again on enable.
 */
import test, { type ExecutionContext } from "ava";
import * as grpc from "@grpc/grpc-js";
import { execFile, spawn } from "node:child_process";
import { createDecipheriv, createHmac, createPublicKey, randomUUID, verify } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KeyAlgorithm, KeyState, type Key } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, Pkcs11KeyUsage, type Keystore, type Pkcs11KeystoreConfig } from "../../protos/gen/mcko/v1/keystore.js";
import { CloudKeyState, SyncState, type Distribution } from "../../protos/gen/mcko/v1/distribution.js";
import { REPO, clientsFor, decodeFailure, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";
import { keystoreClientsFor, newKey, vaultMaterials, type KeystoreClients } from "../support/keystores.js";
import { SOFTHSM_MODULE_PATH, createSoftHsmToken, recoverMaterialsForTest, type SoftHsmToken } from "../support/softhsm.js";
import { filesUnder } from "../support/files.js";
import { LowdbStore } from "../../daemon/src/store/lowdb/lowdb-store.js";
import type { KeyRecord } from "../../daemon/src/core/keys.js";
import { SoftwareHsm } from "../../daemon/src/hsm/software/software-hsm.js";
import { makeCallPolicy } from "../../daemon/src/cloud/call-policy.js";
import { objectIdFor, pkcs11TokenFactory } from "../../daemon/src/cloud/pkcs11-token/connector.js";
import { acquireModule, findSlotByTokenLabel, login, logoutUser, openSession, type Handle, type Pkcs11 } from "../../daemon/src/hsm/pkcs11/module.js";
import { Secret } from "../../daemon/src/util/secret.js";
import pkcs11js from "pkcs11js";

const execFileAsync = promisify(execFile);
const pk11Close = (pk: Pkcs11, session: Handle): void => {
  try {
    pk.C_CloseSession(session);
  } catch {
    // already closed
  }
};
const APP = join(REPO, "test/support/pkcs11-app.mjs");
const VAULT = "tok";
const TARGET = "target";
const OTHER = "other";
/** Canary: the target tokens' user PINs must never show up anywhere the daemon writes or answers. */
const PIN = "Tgt-PIN-canary-4711-xq";
const OTHER_PIN = "Other-PIN-canary-0815-zv";
const WRONG_PIN = "Wrong-PIN-canary-9999-kk";

const ALGORITHMS: Array<[string, KeyAlgorithm, string]> = [
  ["aes128", KeyAlgorithm.KEY_ALGORITHM_AES_128, "AES"],
  ["aes192", KeyAlgorithm.KEY_ALGORITHM_AES_192, "AES"],
  ["aes256", KeyAlgorithm.KEY_ALGORITHM_AES_256, "AES"],
  ["rsa2048", KeyAlgorithm.KEY_ALGORITHM_RSA_2048, "RSA"],
  ["rsa3072", KeyAlgorithm.KEY_ALGORITHM_RSA_3072, "RSA"],
  ["rsa4096", KeyAlgorithm.KEY_ALGORITHM_RSA_4096, "RSA"],
  ["ecp256", KeyAlgorithm.KEY_ALGORITHM_EC_P256, "EC"],
  ["ecp384", KeyAlgorithm.KEY_ALGORITHM_EC_P384, "EC"],
  ["hmac256", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, "HMAC"],
  ["hmac384", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA384, "HMAC"],
  ["hmac512", KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512, "HMAC"],
];
const HMAC_HASH: Record<string, string> = { hmac256: "sha256", hmac384: "sha384", hmac512: "sha512" };

interface TokenObject {
  class: string;
  label: string;
  id?: string;
  application?: string;
  value?: string;
  private?: boolean;
  sensitive?: boolean;
  extractable?: boolean;
  encrypt?: boolean;
  decrypt?: boolean;
  sign?: boolean;
  verify?: boolean;
  wrap?: boolean;
  unwrap?: boolean;
  derive?: boolean;
  valueReadable?: boolean;
}
interface AppUse {
  iv?: string;
  ciphertext?: string;
  mac?: string;
  signature?: string;
  error?: string;
}
/** Something the application made with a token object, to check against the vault's copy of `version`. */
interface Made {
  readonly id: string;
  readonly family: string;
  readonly version: number;
  readonly data: string;
  readonly out: AppUse;
}

interface World {
  readonly backend: "software" | "pkcs11";
  readonly home: Home;
  readonly conf: string;
  readonly target?: SoftHsmToken;
  readonly daemon: DaemonProcess;
  readonly c: Clients;
  readonly k: KeystoreClients;
  readonly made: Made[];
  readonly responses: string[];
}

const worlds = new Map<string, Promise<World>>();

async function initToken(conf: string, label: string, pin: string): Promise<void> {
  await execFileAsync("softhsm2-util", ["--init-token", "--free", "--label", label, "--so-pin", "1234", "--pin", pin], { env: { ...process.env, SOFTHSM2_CONF: conf } });
}

function world(backend: "software" | "pkcs11"): Promise<World> {
  let w = worlds.get(backend);
  if (!w) {
    w = (async () => {
      const home = await makeHome({ logLevel: "trace", reconcileIntervalMs: 200, cloudAttemptTimeoutMs: 5000, cloudDeadlineMs: 20000 }, backend);
      let conf: string;
      let target: SoftHsmToken | undefined;
      if (backend === "pkcs11") {
        // The target tokens live in the daemon's own SoftHSM configuration: one library, one C_Initialize.
        conf = home.token!.conf;
        await initToken(conf, TARGET, PIN);
      } else {
        target = await createSoftHsmToken({ tokenLabel: TARGET, pin: PIN });
        conf = target.conf;
      }
      await initToken(conf, OTHER, OTHER_PIN);
      const daemon = await startDaemonProcess(home, { SOFTHSM2_CONF: conf });
      const c = clientsFor(daemon.address, mtls(home));
      const k = keystoreClientsFor(daemon.address, mtls(home));
      await rpc(c.vaults, c.vaults.createVault, { vaultId: VAULT, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
      return { backend, home, conf, ...(target ? { target } : {}), daemon, c, k, made: [], responses: [] };
    })();
    worlds.set(backend, w);
  }
  return w;
}

test.after.always(async () => {
  for (const p of worlds.values()) {
    const w = await p.catch(() => undefined);
    if (!w) continue;
    w.c.close();
    w.k.close();
    if (w.daemon.child.exitCode === null) await w.daemon.stop();
    await w.target?.cleanup();
    w.home.cleanup();
  }
});

function pkcs11Config(c: Partial<Pkcs11KeystoreConfig>): Pkcs11KeystoreConfig {
  return { modulePath: SOFTHSM_MODULE_PATH, tokenLabel: TARGET, pin: "", labelPrefix: "", keyUsage: Pkcs11KeyUsage.PKCS11_KEY_USAGE_UNSPECIFIED, transportKeyLabel: "", ...c };
}

function pkcs11Keystore(c: Partial<Pkcs11KeystoreConfig>, extra: Partial<Keystore> = {}): Keystore {
  return {
    name: "",
    type: KeystoreType.KEYSTORE_TYPE_PKCS11,
    config: { $case: "pkcs11", value: pkcs11Config(c) },
    credentialSource: 0,
    hasCredentials: false,
    allowSoftwareWrap: false,
    deletionWindowDays: 0,
    maxConcurrency: 0,
    description: "",
    lastTestResult: "",
    etag: "",
    distributionCount: 0n,
    ...extra,
  };
}

/** Runs the application as its own process against `conf`, the PIN in its environment. */
function app<T>(conf: string, request: Record<string, unknown>, pin = PIN): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [APP], { env: { ...process.env, SOFTHSM2_CONF: conf, APP_PIN: pin }, stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`pkcs11-app exited with ${code}: ${err}`))));
    child.stdin.end(JSON.stringify({ module: SOFTHSM_MODULE_PATH, token: TARGET, ...request }));
  });
}

const inspect = async (w: World): Promise<TokenObject[]> => (await app<{ objects: TokenObject[] }>(w.conf, { op: "inspect" })).objects;
const use = (w: World, label: string, data: string, hash?: string): Promise<AppUse> => app<AppUse>(w.conf, { op: "use", label, data, ...(hash ? { hash } : {}) });

async function until<T>(read: () => Promise<T>, pred: (v: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const v = await read();
    if (pred(v)) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? String(x) : x))}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const getDist = async (w: World, id: string, keystore = "tok"): Promise<Distribution> =>
  (await rpc(w.k.distributions, w.k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/${id}/distributions/${keystore}`, readLive: false })).distribution!;
const getKey = async (w: World, id: string): Promise<Key> => (await rpc(w.c.keys, w.c.keys.getKey, { name: `vaults/${VAULT}/keys/${id}` })).key!;
const setState = (w: World, id: string, state: KeyState) => rpc(w.c.keys, w.c.keys.setKeyState, { name: `vaults/${VAULT}/keys/${id}`, state, etag: "", reason: "test" });

/**
 * The tests of one backend are the steps of one scenario: each works on what the steps before it left (keys, token
 * objects, `made`). A step whose earlier steps have not run (e.g. with `--match`) runs them first, each at most once.
 */
function scenario(backend: "software" | "pkcs11") {
  const steps: Array<{ title: string; timeoutMs: number; run: (t: ExecutionContext, w: World) => Promise<void> }> = [];
  const done = new Map<string, Promise<void>>();
  return (title: string, timeoutMs: number, run: (t: ExecutionContext, w: World) => Promise<void>): void => {
    const before = [...steps];
    const me = { title, timeoutMs, run };
    steps.push(me);
    test.serial(`[${backend}] ${title}`, async (t) => {
      t.timeout([...before, me].reduce((sum, s) => sum + (done.has(s.title) ? 0 : s.timeoutMs), 0));
      const w = await world(backend);
      for (const s of [...before, me]) {
        if (!done.has(s.title)) {
          if (s !== me) t.log(`running the earlier step first: ${s.title}`);
          done.set(s.title, s.run(t, w));
        }
        await done.get(s.title);
      }
    });
  };
}

/** Checks what the application made with a private key object against the vault's public key of that version. */
function verifiesWithVaultPublicKey(key: Key, version: number, m: Made): boolean {
  const spki = key.versions.find((v) => v.versionNumber === version)!.publicKey;
  const pub = createPublicKey({ key: Buffer.from(spki), format: "der", type: "spki" });
  const data = Buffer.from(m.data, "hex");
  const sig = Buffer.from(m.out.signature!, "hex");
  return m.family === "RSA" ? verify("sha256", data, pub, sig) : verify("sha256", data, { key: pub, dsaEncoding: "ieee-p1363" }, sig);
}

for (const backend of ["software", "pkcs11"] as const) {
  const step = scenario(backend);
  step(`every algorithm arrives as a sensitive, non-extractable token object that a separate application finds by label and uses`, 600_000, async (t, w) => {
    const ks = (await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "tok", keystore: pkcs11Keystore({ pin: PIN, labelPrefix: "app/" }), requestId: "", validateOnly: false })).keystore!;
    w.responses.push(JSON.stringify(ks, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
    t.true(ks.hasCredentials);
    t.is(ks.config?.$case, "pkcs11");
    if (ks.config?.$case === "pkcs11") {
      t.is(ks.config.value.pin, "", "the PIN is write-only");
      t.is(ks.config.value.labelPrefix, "app/");
    }
    const tested = await rpc(w.k.keystores, w.k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/tok` });
    t.true(tested.ok, tested.detail);

    for (const [id, alg, family] of ALGORITHMS) {
      await rpc(w.c.keys, w.c.keys.createKey, { parent: `vaults/${VAULT}`, keyId: id, key: newKey(alg), initialState: 0, requestId: "" });
      const d = (await rpc(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/${id}`, keystore: `vaults/${VAULT}/keystores/tok`, requestId: "" })).distribution!;
      t.is(d.syncState, SyncState.SYNC_STATE_IN_SYNC, `${id}: ${d.lastError}`);
      t.is(d.observedState, CloudKeyState.CLOUD_KEY_STATE_ENABLED);
      t.is(d.cloudAlias, `app/${id}`);
      t.is(d.cloudKeyId, objectIdFor(d.requestId).toString("hex"), `${id}: CKA_ID carries the push's request id`);
      t.regex(d.cloudKeyUri, new RegExp(`^pkcs11:token=${TARGET};object=app%2f${id};id=(%[0-9a-f]{2}){16};type=(secret|private)-key$`));
      // On the pkcs11 backend the whole wrap runs in the HSM: no plaintext of the material in daemon memory.
      if (backend === "pkcs11") t.is(d.softwareStep, "none", `${id}: the transport wrap ran inside the daemon's HSM`);
    }

    const objects = await inspect(w);
    for (const [id, , family] of ALGORITHMS) {
      const d = await getDist(w, id);
      const mine = objects.filter((o) => o.id === d.cloudKeyId);
      t.is(mine.length, 1, `${id}: exactly one key object with the distribution's CKA_ID`);
      const o = mine[0]!;
      t.is(o.label, `app/${id}`);
      t.is(o.class, family === "AES" || family === "HMAC" ? "secret" : "private");
      t.true(o.private && o.sensitive, `${id}: private and sensitive`);
      t.false(o.extractable, `${id}: not extractable`);
      t.false(o.valueReadable, `${id}: the token refuses to reveal the value`);
      t.false(o.derive ?? false);
      if (family === "AES") t.deepEqual([o.encrypt, o.decrypt, o.sign, o.wrap], [true, true, false, false]);
      if (family === "HMAC") t.deepEqual([o.sign, o.verify, o.encrypt, o.decrypt], [true, true, false, false]);
      if (family === "RSA") t.deepEqual([o.decrypt, o.sign, o.unwrap], [true, true, false]);
      if (family === "EC") t.deepEqual([o.sign, o.decrypt], [true, false]);
      const tag = objects.find((x) => x.class === "data" && x.label === `mcko:${d.cloudKeyId}`);
      t.truthy(tag, `${id}: its tag object is there`);
      t.is(tag!.application, "mcko");
      const tags = JSON.parse(tag!.value!) as Record<string, string>;
      t.is(tags["mcko:key"], `vaults/${VAULT}/keys/${id}`);
      t.is(tags["mcko:request-id"], d.requestId);
    }
    const transport = objects.filter((o) => o.label === "mcko-transport");
    t.deepEqual(transport.map((o) => o.class).sort(), ["private", "public"], "one transport key pair");
    t.like(transport.find((o) => o.class === "private")!, { sensitive: true, extractable: false, unwrap: true, decrypt: false, sign: false });

    // The application uses each object by label; RSA/EC results are checked now with the vault's public key.
    for (const [id, , family] of ALGORITHMS) {
      const data = Buffer.from(`made by the application with ${id}`).toString("hex");
      const out = await use(w, `app/${id}`, data, HMAC_HASH[id]);
      t.is(out.error, undefined, `${id}: ${out.error}`);
      const m = { id, family, version: 1, data, out };
      w.made.push(m);
      if (family === "RSA" || family === "EC") t.true(verifiesWithVaultPublicKey(await getKey(w, id), 1, m), `${id}: the token's signature verifies with the vault's public key`);
    }
    const live = (await rpc(w.k.distributions, w.k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/aes256/distributions/tok`, readLive: true })).distribution!;
    t.deepEqual(live.drift, [], "read live: no drift");
  });

  step(`disable/enable, rotation, compromise and destroy are reflected in the token's attributes and objects`, 600_000, async (t, w) => {
    const aes = await getDist(w, "aes256");
    const flags = async (id: string) => (await inspect(w)).find((o) => o.id === id);

    // SUSPENDED → usage attributes off; the application is refused. ACTIVE → on again; it works.
    await setState(w, "aes256", KeyState.KEY_STATE_SUSPENDED);
    await until(() => getDist(w, "aes256"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "aes256 disabled");
    t.like(await flags(aes.cloudKeyId), { encrypt: false, decrypt: false, sensitive: true, extractable: false });
    t.is((await use(w, "app/aes256", "00")).error, "CKR_KEY_FUNCTION_NOT_PERMITTED", "a disabled object cannot encrypt");
    const disabledLive = (await rpc(w.k.distributions, w.k.distributions.getDistribution, { name: `vaults/${VAULT}/keys/aes256/distributions/tok`, readLive: true })).distribution!;
    t.is(disabledLive.observedState, CloudKeyState.CLOUD_KEY_STATE_DISABLED);
    await setState(w, "aes256", KeyState.KEY_STATE_ACTIVE);
    await until(() => getDist(w, "aes256"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_ENABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "aes256 enabled");
    t.like(await flags(aes.cloudKeyId), { encrypt: true, decrypt: true });
    t.is((await use(w, "app/aes256", "00")).error, undefined);

    // Rotation: a new object takes the label; the old one keeps its material under `<label>#1`.
    await rpc(w.c.keys, w.c.keys.rotateKey, { name: `vaults/${VAULT}/keys/aes256`, etag: "", requestId: "" });
    const rotated = await until(() => getDist(w, "aes256"), (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "aes256 rotated");
    t.not(rotated.cloudKeyId, aes.cloudKeyId);
    let objects = await inspect(w);
    t.is(objects.find((o) => o.id === rotated.cloudKeyId)?.label, "app/aes256");
    t.is(objects.find((o) => o.id === aes.cloudKeyId)?.label, "app/aes256#1");
    t.is(objects.filter((o) => o.label === "app/aes256").length, 1, "exactly one object answers to the label");
    const data = Buffer.from("after rotation").toString("hex");
    w.made.push({ id: "aes256", family: "AES", version: 2, data, out: await use(w, "app/aes256", data) });
    await rpc(w.c.keys, w.c.keys.rotateKey, { name: `vaults/${VAULT}/keys/ecp256`, etag: "", requestId: "" });
    await until(() => getDist(w, "ecp256"), (d) => d.versions.length === 2 && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "ecp256 rotated");
    const ecData = Buffer.from("ec after rotation").toString("hex");
    const ecMade = { id: "ecp256", family: "EC", version: 2, data: ecData, out: await use(w, "app/ecp256", ecData) };
    t.true(verifiesWithVaultPublicKey(await getKey(w, "ecp256"), 2, ecMade), "the label now signs with version 2");
    t.false(verifiesWithVaultPublicKey(await getKey(w, "ecp256"), 1, ecMade), "…not with version 1");

    // Suspending a rotated key disables every object of the distribution.
    await setState(w, "aes256", KeyState.KEY_STATE_SUSPENDED);
    await until(() => getDist(w, "aes256"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "aes256 disabled after rotation");
    objects = await inspect(w);
    for (const id of [aes.cloudKeyId, rotated.cloudKeyId]) t.like(objects.find((o) => o.id === id), { encrypt: false, decrypt: false });

    // COMPROMISED: sign/verify off at once.
    const hm = await getDist(w, "hmac256");
    await setState(w, "hmac256", KeyState.KEY_STATE_COMPROMISED);
    await until(() => getDist(w, "hmac256"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "hmac256 disabled");
    t.like(await flags(hm.cloudKeyId), { sign: false, verify: false });

    // DESTROYED: C_DestroyObject — neither the key object nor its tag object remains.
    const rsa = await getDist(w, "rsa3072");
    await setState(w, "rsa3072", KeyState.KEY_STATE_DEACTIVATED);
    await until(() => getDist(w, "rsa3072"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DISABLED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "rsa3072 disabled");
    t.like(await flags(rsa.cloudKeyId), { decrypt: false, sign: false });
    await setState(w, "rsa3072", KeyState.KEY_STATE_DESTROYED);
    await until(() => getDist(w, "rsa3072"), (d) => d.observedState === CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED && d.syncState === SyncState.SYNC_STATE_IN_SYNC, "rsa3072 destroyed");
    objects = await inspect(w);
    t.is(objects.filter((o) => o.id === rsa.cloudKeyId).length, 0, "the key object is gone");
    t.is(objects.filter((o) => o.label === `mcko:${rsa.cloudKeyId}`).length, 0, "its tag object is gone");
    t.is(objects.filter((o) => o.label === "app/rsa3072").length, 0);
    t.true(objects.some((o) => o.label === "app/rsa2048"), "other objects stay");
  });

  step(`bad input names the field and changes nothing; the PIN is in no log, file, response or audit event`, 300_000, async (t, w) => {
    const fail = async <Req, Res>(client: grpc.Client, fn: Parameters<typeof rpcError<Req, Res>>[1], req: Req) => {
      const f = await rpcError(client, fn, req);
      w.responses.push(JSON.stringify(f));
      return f;
    };
    const snapshot = async () => ({
      keystores: (await rpc(w.k.keystores, w.k.keystores.listKeystores, { parent: `vaults/${VAULT}`, pageSize: 0, pageToken: "" })).keystores.map((x) => `${x.name}:${x.etag}`),
      distributions: (await rpc(w.k.distributions, w.k.distributions.listDistributions, { parent: `vaults/${VAULT}/keys/-`, pageSize: 0, pageToken: "", keystore: "" })).distributions.map((x) => `${x.name}:${x.etag}`),
      token: (await inspect(w)).map((o) => `${o.class}:${o.label}:${o.id ?? ""}`).sort(),
    });
    const before = await snapshot();
    const create = (id: string, ks: Keystore, validateOnly = false) => fail(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: id, keystore: ks, requestId: "", validateOnly });

    let f = await create("x1", pkcs11Keystore({ pin: PIN, modulePath: "/usr/lib/softhsm/no-such-module.so" }));
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.pkcs11.module_path"]);
    t.regex(f.message, /does not exist/);
    f = await create("x2", pkcs11Keystore({ pin: PIN, modulePath: "/etc/hostname" }), true);
    t.is(f.code, grpc.status.INVALID_ARGUMENT, f.message);
    t.deepEqual(f.fieldViolations, ["keystore.pkcs11.module_path"], "a file that is no PKCS#11 library");
    f = await create("x3", pkcs11Keystore({ pin: PIN, tokenLabel: "no-such-token" }), true);
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.pkcs11.token_label"]);
    t.regex(f.message, /no-such-token/);
    // Wrong PIN for a token nobody in the daemon is logged in to: the token itself refuses it.
    f = await create("x4", pkcs11Keystore({ pin: WRONG_PIN, tokenLabel: OTHER }), true);
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.regex(f.message, /^pin: .*CKR_PIN_INCORRECT/);
    // Wrong PIN for the token the daemon already uses with the right one.
    f = await create("x5", pkcs11Keystore({ pin: WRONG_PIN }), true);
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.regex(f.message, /^pin: /);
    f = await create("x6", pkcs11Keystore({ pin: "" }));
    t.deepEqual(f.fieldViolations, ["keystore.pkcs11.pin"]);
    f = await create("x7", pkcs11Keystore({ pin: PIN, labelPrefix: "a#b", keyUsage: 42 as Pkcs11KeyUsage }));
    t.deepEqual([...f.fieldViolations].sort(), ["keystore.pkcs11.key_usage", "keystore.pkcs11.label_prefix"]);
    // The right PIN for the other token passes the dry run, storing nothing.
    const dry = (await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "x8", keystore: pkcs11Keystore({ pin: OTHER_PIN, tokenLabel: OTHER }), requestId: "", validateOnly: true })).keystore!;
    t.regex(dry.lastTestResult, /accepted the credentials \(user PIN\)/);
    t.deepEqual(await snapshot(), before);

    // An algorithm the keystore cannot take (key_usage ENCRYPT_DECRYPT has no meaning for EC keys).
    await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "enc", keystore: pkcs11Keystore({ pin: PIN, labelPrefix: "enc/", keyUsage: Pkcs11KeyUsage.PKCS11_KEY_USAGE_ENCRYPT_DECRYPT }), requestId: "", validateOnly: false });
    const before2 = await snapshot();
    f = await fail(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/ecp384`, keystore: `vaults/${VAULT}/keystores/enc`, requestId: "" });
    t.is(f.code, grpc.status.FAILED_PRECONDITION);
    t.is(f.reason, "ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE");
    t.regex(f.message, /EC keys can only sign/);
    t.deepEqual(await snapshot(), before2);
    // A stored keystore whose token label is unknown: the push is refused naming the field and rolled back.
    await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "lost", keystore: pkcs11Keystore({ pin: PIN, tokenLabel: "gone-token" }), requestId: "", validateOnly: false });
    const before3 = await snapshot();
    f = await fail(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes128`, keystore: `vaults/${VAULT}/keystores/lost`, requestId: "" });
    t.is(f.code, grpc.status.INVALID_ARGUMENT);
    t.deepEqual(f.fieldViolations, ["keystore.pkcs11.token_label"]);
    t.deepEqual(await snapshot(), before3, "no distribution, no token object");
    const tested = await rpc(w.k.keystores, w.k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/lost` });
    w.responses.push(JSON.stringify(tested));
    t.false(tested.ok);
    // A stored keystore with a wrong PIN: TestKeystore says so, a push is refused and rolled back; fixing the PIN
    // (one field, UpdateKeystore) makes the same push work.
    await rpc(w.k.keystores, w.k.keystores.createKeystore, { parent: `vaults/${VAULT}`, keystoreId: "wrongpin", keystore: pkcs11Keystore({ pin: WRONG_PIN, tokenLabel: OTHER }), requestId: "", validateOnly: false });
    const wrongTested = await rpc(w.k.keystores, w.k.keystores.testKeystore, { name: `vaults/${VAULT}/keystores/wrongpin` });
    w.responses.push(JSON.stringify(wrongTested));
    t.false(wrongTested.ok);
    t.is(wrongTested.cloudErrorCode, "CKR_PIN_INCORRECT");
    const before4 = await snapshot();
    f = await fail(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes192`, keystore: `vaults/${VAULT}/keystores/wrongpin`, requestId: "" });
    t.is(f.reason, "CLOUD_CREDENTIALS_REJECTED");
    t.regex(f.message, /^pin: /);
    t.deepEqual(await snapshot(), before4, "the refused push left nothing behind");
    const fixed = (await rpc(w.k.keystores, w.k.keystores.updateKeystore, { keystore: { ...pkcs11Keystore({ pin: OTHER_PIN, tokenLabel: OTHER }), name: `vaults/${VAULT}/keystores/wrongpin` }, updateMask: ["pkcs11.pin"], validateOnly: false })).keystore!;
    w.responses.push(JSON.stringify(fixed, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)));
    const pushed = (await rpc(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes192`, keystore: `vaults/${VAULT}/keystores/wrongpin`, requestId: "" })).distribution!;
    t.is(pushed.syncState, SyncState.SYNC_STATE_IN_SYNC, pushed.lastError);
    const inOther = (await app<{ objects: TokenObject[] }>(w.conf, { op: "inspect", token: OTHER }, OTHER_PIN)).objects;
    t.like(inOther.find((o) => o.id === pushed.cloudKeyId), { label: "aes192", sensitive: true, extractable: false });
    // The same key to the usable keystore with ENCRYPT_DECRYPT works.
    const ok = (await rpc(w.k.distributions, w.k.distributions.createDistribution, { parent: `vaults/${VAULT}/keys/aes128`, keystore: `vaults/${VAULT}/keystores/enc`, requestId: "" })).distribution!;
    t.is(ok.syncState, SyncState.SYNC_STATE_IN_SYNC, ok.lastError);
    t.is(ok.cloudAlias, "enc/aes128");
  });

  if (backend === "software") {
    step(`mcko keystore add --type pkcs11 takes the PIN only from a 0600 file; a key distributed with the CLI reaches the token`, 120_000, async (t, w) => {
      const mcko = (...args: string[]) =>
        execFileAsync(join(REPO, "daemon/bin/mcko"), args, { env: { ...process.env, MCKO_HOME: w.home.dir, MCKO_ADDR: w.daemon.address } }).then(
          (r) => ({ stdout: r.stdout, stderr: r.stderr, code: 0 }),
          (e: { stdout: string; stderr: string; code: number }) => e,
        );
      const run = async (...args: string[]) => {
        const r = await mcko(...args);
        w.responses.push(r.stdout, r.stderr);
        return r;
      };
      // The PIN files live outside the daemon's home, whose every file the canary below searches.
      const pinDir = mkdtempSync(join(tmpdir(), "mcko-pin-"));
      const pinFile = join(pinDir, "target.pin");
      writeFileSync(pinFile, `${PIN}\n`, { mode: 0o600 });
      const base = ["keystore", "add", `${VAULT}/cli`, "--type", "pkcs11", "--module", SOFTHSM_MODULE_PATH, "--token-label", TARGET, "--label-prefix", "cli/"];
      let r = await run(...base, "--validate-only");
      t.not(r.code, 0, "no PIN file");
      t.regex(r.stderr, /--pin-file/);
      const loose = join(pinDir, "loose.pin");
      writeFileSync(loose, PIN, { mode: 0o644 });
      chmodSync(loose, 0o644);
      r = await run(...base, "--pin-file", loose, "--validate-only");
      t.not(r.code, 0);
      t.regex(r.stderr, /--pin-file: .*accessible by group or others/);
      r = await run(...base, "--pin-file", pinFile, "--validate-only");
      t.is(r.code, 0, r.stderr);
      t.regex(r.stdout, /^valid: PKCS#11 token "target" .*accepted the credentials \(user PIN\)/);
      r = await run(...base, "--pin-file", pinFile, "--key-usage", "ENCRYPT_DECRYPT");
      t.is(r.code, 0, r.stderr);
      r = await run("-o", "json", "distribute", `${VAULT}/aes192`, "--keystore", `${VAULT}/cli`);
      t.is(r.code, 0, r.stderr);
      const d = JSON.parse(r.stdout) as { syncState: string; cloudKeyId: string; cloudAlias: string };
      t.is(d.syncState, "SYNC_STATE_IN_SYNC");
      t.is(d.cloudAlias, "cli/aes192");
      t.like((await inspect(w)).find((o) => o.id === d.cloudKeyId), { label: "cli/aes192", encrypt: true, decrypt: true, extractable: false });
      rmSync(pinDir, { recursive: true, force: true });
    });
  }

  step(`the vault's copy decrypts and verifies what the application made with the token objects`, 300_000, async (t, w) => {
    const journal = readFileSync(w.home.journalFile, "utf8");
    t.true(journal.includes("KeystoreService/CreateKeystore"), "keystore changes are audited");
    await w.daemon.stop();

    // The vault's symmetric material, recovered from the stopped daemon's store (test-only knowledge).
    const materials = new Map<string, Map<number, Buffer>>();
    if (backend === "software") {
      for (const [id, m] of await vaultMaterials(w.home, VAULT)) materials.set(id, m);
    } else {
      const store = await LowdbStore.open({ dir: join(w.home.dataDir, "vault") });
      const wanted: Array<{ id: string; number: number; algorithm: string; blob: Buffer; masterKcv: string }> = [];
      try {
        for (const rec of (await store.list<KeyRecord>(`key/${VAULT}/`, { pageSize: 1000 })).records) {
          if (!rec.value.algorithm.startsWith("AES_") && !rec.value.algorithm.startsWith("HMAC_")) continue;
          for (const v of rec.value.versions) if (v.blob && v.masterKcv) wanted.push({ id: rec.value.id, number: v.number, algorithm: rec.value.algorithm, blob: Buffer.from(v.blob, "base64"), masterKcv: v.masterKcv });
        }
      } finally {
        await store.close();
      }
      const values = await recoverMaterialsForTest(w.home.token!, "mcko-master", wanted);
      wanted.forEach((x, i) => {
        if (!materials.has(x.id)) materials.set(x.id, new Map());
        materials.get(x.id)!.set(x.number, values[i]!);
      });
    }
    let checked = 0;
    for (const m of w.made) {
      const data = Buffer.from(m.data, "hex");
      if (m.family === "AES") {
        const key = materials.get(m.id)!.get(m.version)!;
        const decipher = createDecipheriv(`aes-${key.length * 8}-cbc`, key, Buffer.from(m.out.iv!, "hex"));
        t.deepEqual(Buffer.concat([decipher.update(Buffer.from(m.out.ciphertext!, "hex")), decipher.final()]), data, `${m.id} v${m.version}: the vault's copy decrypts the token's ciphertext`);
        checked++;
      } else if (m.family === "HMAC") {
        t.is(m.out.mac, createHmac(HMAC_HASH[m.id]!, materials.get(m.id)!.get(m.version)!).update(data).digest("hex"), `${m.id}: the vault's copy verifies the token's MAC`);
        checked++;
      }
    }
    t.is(checked, 7, "three AES keys, one of them twice, and three HMAC keys");
    for (const m of materials.values()) for (const b of m.values()) b.fill(0);

    // Canary: the PINs appear nowhere the daemon wrote or answered.
    const haystacks = filesUnder(w.home.dir).map((file) => ({ where: file, text: readFileSync(file).toString("latin1") }));
    haystacks.push({ where: "daemon log", text: w.daemon.logs() }, { where: "responses and errors", text: w.responses.join("\n") });
    t.true(w.daemon.logs().includes('"level":'), "the daemon's log was captured (it runs at trace)");
    let hits = 0;
    for (const pin of [PIN, OTHER_PIN, WRONG_PIN]) {
      for (const needle of [pin, Buffer.from(pin).toString("base64").slice(0, 16), Buffer.from(pin).toString("hex")]) {
        for (const h of haystacks) {
          if (h.text.includes(needle)) {
            hits++;
            t.log(`a PIN was found in ${h.where}`);
          }
        }
      }
    }
    t.is(hits, 0);
  });
}

test.serial("connector: a push interrupted after its tag object resumes into exactly one key object; a repeated push makes no second one; a token that refuses to turn usage off gets the object removed and pushed again on enable", async (t) => {
  t.timeout(120_000);
  const token = await createSoftHsmToken({ tokenLabel: TARGET, pin: PIN });
  process.env.SOFTHSM2_CONF = token.conf;
  const dir = mkdtempSync(join(tmpdir(), "mcko-p11-connector-"));
  const masterKcv = await SoftwareHsm.initMasterKeyFile(join(dir, "master.key"));
  const hsm = await SoftwareHsm.create({ masterKeyFile: join(dir, "master.key"), expectedMasterKcv: masterKcv });
  const connector = pkcs11TokenFactory.create({ module_path: SOFTHSM_MODULE_PATH, token_label: TARGET }, { pin: PIN }, makeCallPolicy({ maxConcurrency: 2, attemptTimeoutMs: 5000, deadlineMs: 10000 }));
  try {
    const key = await hsm.generateKey("AES_256");
    const requestId = randomUUID();
    // Parts of a PushRequest that other targets use and this one never calls (Key Protect's nonce sealing, GCP's
    // creation-time deletion window); kept in a variable so the request type may or may not have them.
    const callbacksOtherTargetsUse = {
      sealWithMaterial: async (): Promise<Buffer> => {
        throw new Error("the PKCS#11 token target must not need the material under AES-GCM");
      },
      deletionWindowDays: 0,
    };
    let wraps = 0;
    const base = {
      requestId,
      algorithm: "AES_256" as const,
      cloudName: "resumed",
      description: "d",
      tags: { "mcko:key": "vaults/v/keys/k", "mcko:version": "1", "mcko:distribution": "vaults/v/keys/k/distributions/t" },
      wrap: async (spki: Buffer, format: Parameters<typeof hsm.wrapForKeystore>[1]["format"]) => {
        wraps++;
        return hsm.wrapForKeystore(key, { wrappingKeySpki: spki, format, allowSoftwareWrap: false });
      },
      ...callbacksOtherTargetsUse,
    };
    // "Crash" right after the tag object exists (core could not record the key): the push fails.
    await t.throwsAsync(connector.push({ ...base, onKeyCreated: async () => Promise.reject(new Error("crash before the record was saved")) }), { message: /crash before/ });
    t.is(wraps, 0, "no material was sent before the key was recorded");
    const found = await connector.findByRequestId(requestId);
    t.is(found.length, 1, "the interrupted push is found by its request id");
    t.is((await connector.describe(found[0]!)).state, "PENDING_IMPORT");
    const done = await connector.push({ ...base, existingKey: found[0]! });
    t.is(done.key.id, found[0]!.id);
    const again = await connector.push({ ...base });
    t.is(again.key.id, done.key.id, "a repeated push with the same request id continues the same object");
    t.is(wraps, 1, "the material was unwrapped into the token once");
    const objects = (await app<{ objects: TokenObject[] }>(token.conf, { op: "inspect" })).objects;
    t.is(objects.filter((o) => o.id === done.key.id).length, 1, "one key object");
    t.is(objects.filter((o) => o.class === "data" && o.label === `mcko:${done.key.id}`).length, 1, "one tag object");
    t.is(objects.filter((o) => o.label === "resumed").length, 1);
    t.is((await connector.describe(done.key)).state, "ENABLED");

    // A token that will not turn usage off (here: the object replaced by a CKA_MODIFIABLE=false copy, as an HSM
    // policy might make it): disable removes the key object, the tag object stays, and the next push brings the
    // material back from the vault.
    const mod = acquireModule(SOFTHSM_MODULE_PATH);
    const slot = findSlotByTokenLabel(mod, TARGET);
    const session = openSession(mod, slot);
    try {
      const pin = Secret.copyOf(Buffer.from(PIN));
      login(mod, slot, session, pin, TARGET);
      pin.dispose();
      const pk = mod.pkcs11;
      pk.C_FindObjectsInit(session, [{ type: pkcs11js.CKA_CLASS, value: pkcs11js.CKO_SECRET_KEY }, { type: pkcs11js.CKA_ID, value: Buffer.from(done.key.id, "hex") }]);
      const [original] = pk.C_FindObjects(session, 2);
      pk.C_FindObjectsFinal(session);
      pk.C_CopyObject(session, original!, [{ type: pkcs11js.CKA_MODIFIABLE, value: false }]);
      pk.C_DestroyObject(session, original!);
      logoutUser(mod, slot);
    } finally {
      pk11Close(mod.pkcs11, session);
      mod.release();
    }
    await connector.setEnabled(done.key, false);
    t.is((await connector.describe(done.key)).state, "PENDING_IMPORT", "the unchangeable object was removed; its tag object remains");
    let frozen = (await app<{ objects: TokenObject[] }>(token.conf, { op: "inspect" })).objects;
    t.is(frozen.filter((o) => o.id === done.key.id).length, 0);
    t.is(frozen.filter((o) => o.label === `mcko:${done.key.id}`).length, 1);
    const back = await connector.push({ ...base, existingKey: done.key });
    t.is(back.key.id, done.key.id);
    t.is(wraps, 2, "enable brought the material back from the vault");
    t.is((await connector.describe(done.key)).state, "ENABLED");
    frozen = (await app<{ objects: TokenObject[] }>(token.conf, { op: "inspect" })).objects;
    t.like(frozen.find((o) => o.id === done.key.id), { label: "resumed", encrypt: true, decrypt: true, extractable: false, sensitive: true });
  } catch (e) {
    if (e && typeof e === "object" && "code" in e) t.log(decodeFailure(e as grpc.ServiceError));
    throw e;
  } finally {
    connector.close();
    await hsm.close();
    await token.cleanup();
  }
});
