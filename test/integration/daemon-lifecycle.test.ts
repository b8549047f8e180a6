/**
 * The key lifecycle through the real daemon process over mutual TLS: every pair of NIST states, rotation,
 * scheduled activation, destruction, etags, request ids, pagination and filters.
 */
import anyTest, { type TestFn } from "ava";
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { KeyAlgorithm, KeyState, type Key } from "../../protos/gen/mcko/v1/key.js";
import { clientsFor, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";

const test = anyTest as TestFn<{ home: Home; daemon: DaemonProcess; c: Clients }>;

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  await rpc(c.vaults, c.vaults.createVault, { vaultId: "life", vault: { name: "", displayName: "Lifecycle", description: "", etag: "", keyCount: 0n }, requestId: "" });
  t.context = { home, daemon, c };
});

test.after.always(async (t) => {
  t.context.c?.close();
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

const S = KeyState;
const STATES = [S.KEY_STATE_PRE_ACTIVATION, S.KEY_STATE_ACTIVE, S.KEY_STATE_SUSPENDED, S.KEY_STATE_DEACTIVATED, S.KEY_STATE_COMPROMISED, S.KEY_STATE_DESTROYED, S.KEY_STATE_DESTROYED_COMPROMISED];
const name = (s: KeyState) => KeyState[s].replace("KEY_STATE_", "");

/** DESIGN.md's table: requested target → resulting state. */
const ALLOWED: Partial<Record<KeyState, Partial<Record<KeyState, KeyState>>>> = {
  [S.KEY_STATE_PRE_ACTIVATION]: { [S.KEY_STATE_ACTIVE]: S.KEY_STATE_ACTIVE, [S.KEY_STATE_COMPROMISED]: S.KEY_STATE_COMPROMISED, [S.KEY_STATE_DESTROYED]: S.KEY_STATE_DESTROYED },
  [S.KEY_STATE_ACTIVE]: { [S.KEY_STATE_SUSPENDED]: S.KEY_STATE_SUSPENDED, [S.KEY_STATE_DEACTIVATED]: S.KEY_STATE_DEACTIVATED, [S.KEY_STATE_COMPROMISED]: S.KEY_STATE_COMPROMISED },
  [S.KEY_STATE_SUSPENDED]: { [S.KEY_STATE_ACTIVE]: S.KEY_STATE_ACTIVE, [S.KEY_STATE_DEACTIVATED]: S.KEY_STATE_DEACTIVATED, [S.KEY_STATE_COMPROMISED]: S.KEY_STATE_COMPROMISED },
  [S.KEY_STATE_DEACTIVATED]: { [S.KEY_STATE_COMPROMISED]: S.KEY_STATE_COMPROMISED, [S.KEY_STATE_DESTROYED]: S.KEY_STATE_DESTROYED },
  [S.KEY_STATE_COMPROMISED]: { [S.KEY_STATE_DESTROYED]: S.KEY_STATE_DESTROYED_COMPROMISED, [S.KEY_STATE_DESTROYED_COMPROMISED]: S.KEY_STATE_DESTROYED_COMPROMISED },
};

/** How to walk a fresh ACTIVE (or PRE_ACTIVATION) key into each state. */
const PATH: Record<number, KeyState[]> = {
  [S.KEY_STATE_PRE_ACTIVATION]: [],
  [S.KEY_STATE_ACTIVE]: [],
  [S.KEY_STATE_SUSPENDED]: [S.KEY_STATE_SUSPENDED],
  [S.KEY_STATE_DEACTIVATED]: [S.KEY_STATE_DEACTIVATED],
  [S.KEY_STATE_COMPROMISED]: [S.KEY_STATE_COMPROMISED],
  [S.KEY_STATE_DESTROYED]: [S.KEY_STATE_DEACTIVATED, S.KEY_STATE_DESTROYED],
  [S.KEY_STATE_DESTROYED_COMPROMISED]: [S.KEY_STATE_COMPROMISED, S.KEY_STATE_DESTROYED],
};

function keyMsg(algorithm: KeyAlgorithm, extra: Partial<Key> = {}): Key {
  return { name: "", algorithm, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "", ...extra };
}

async function createKey(c: Clients, id: string, extra: { initialState?: KeyState; key?: Partial<Key>; requestId?: string; algorithm?: KeyAlgorithm } = {}): Promise<Key> {
  const r = await rpc(c.keys, c.keys.createKey, {
    parent: "vaults/life",
    keyId: id,
    key: keyMsg(extra.algorithm ?? KeyAlgorithm.KEY_ALGORITHM_AES_128, extra.key),
    initialState: extra.initialState ?? 0,
    requestId: extra.requestId ?? "",
  });
  return r.key!;
}

async function setState(c: Clients, keyName: string, state: KeyState, reason = "test"): Promise<Key> {
  return (await rpc(c.keys, c.keys.setKeyState, { name: keyName, state, etag: "", reason })).key!;
}

test("every pair of states: allowed transitions succeed, every other one is FAILED_PRECONDITION", async (t) => {
  const { c } = t.context;
  let n = 0;
  const jobs: Promise<void>[] = [];
  for (const from of STATES) {
    for (const to of STATES) {
      const id = `p${n++}`;
      jobs.push(
        (async () => {
          let k = await createKey(c, id, from === S.KEY_STATE_PRE_ACTIVATION ? { initialState: S.KEY_STATE_PRE_ACTIVATION } : {});
          for (const step of PATH[from]!) k = await setState(c, k.name, step);
          t.is(k.state, from, `setup ${name(from)}`);
          const expected = ALLOWED[from]?.[to];
          if (expected !== undefined) {
            const after = await setState(c, k.name, to);
            t.is(after.state, expected, `${name(from)} -> ${name(to)} ends in ${name(expected)}`);
          } else {
            const f = await rpcError(c.keys, c.keys.setKeyState, { name: k.name, state: to, etag: "", reason: "test" });
            t.is(f.code, grpc.status.FAILED_PRECONDITION, `${name(from)} -> ${name(to)}`);
            t.is(f.reason, "KEY_STATE_TRANSITION_NOT_ALLOWED");
            t.deepEqual(f.metadata, { from: name(from), to: name(to) });
            const still = (await rpc(c.keys, c.keys.getKey, { name: k.name })).key!;
            t.is(still.state, from, "a refused transition changes nothing");
            t.is(still.etag, k.etag);
          }
        })(),
      );
    }
  }
  await Promise.all(jobs);
  t.is(n, 49);
});

test("destroying erases the material but keeps the metadata; only destroyed keys can be deleted", async (t) => {
  const { c } = t.context;
  const k = await createKey(c, "to-destroy", { key: { labels: { team: "pay" } } });
  const kcv = k.versions[0]!.kcv;
  t.regex(kcv, /^[0-9a-f]{6}$/);
  const early = await rpcError(c.keys, c.keys.deleteKey, { name: k.name, etag: "" });
  t.is(early.code, grpc.status.FAILED_PRECONDITION);
  t.is(early.reason, "KEY_NOT_DESTROYED");
  await setState(c, k.name, S.KEY_STATE_DEACTIVATED);
  const d = await setState(c, k.name, S.KEY_STATE_DESTROYED);
  t.is(d.state, S.KEY_STATE_DESTROYED);
  t.deepEqual(d.labels, { team: "pay" });
  t.is(d.versions[0]!.kcv, "");
  t.truthy(d.versions[0]!.destroyTime);
  t.truthy(d.destroyTime);
  const rot = await rpcError(c.keys, c.keys.rotateKey, { name: k.name, etag: "", requestId: "" });
  t.is(rot.code, grpc.status.FAILED_PRECONDITION);
  t.is(rot.reason, "KEY_NOT_ROTATABLE");
  await rpc(c.keys, c.keys.deleteKey, { name: k.name, etag: d.etag });
  const gone = await rpcError(c.keys, c.keys.getKey, { name: k.name });
  t.is(gone.code, grpc.status.NOT_FOUND);
});

test("rotation adds a version and moves the primary; a retried request_id does not rotate twice", async (t) => {
  const { c } = t.context;
  const k = await createKey(c, "rot", { algorithm: KeyAlgorithm.KEY_ALGORITHM_EC_P256 });
  const requestId = randomUUID();
  const r1 = (await rpc(c.keys, c.keys.rotateKey, { name: k.name, etag: k.etag, requestId })).key!;
  const r2 = (await rpc(c.keys, c.keys.rotateKey, { name: k.name, etag: "", requestId })).key!;
  t.is(r1.primaryVersion, 2);
  t.is(r2.primaryVersion, 2, "the retry returned the first result");
  t.is(r1.versions.length, 2);
  t.not(r1.versions[0]!.kcv, r1.versions[1]!.kcv);
  t.true(r1.versions[1]!.publicKey.length > 0);
  const r3 = (await rpc(c.keys, c.keys.rotateKey, { name: k.name, etag: "", requestId: randomUUID() })).key!;
  t.is(r3.primaryVersion, 3);
});

test("a retried CreateKey with the same request_id returns the first result; a different request with it is refused", async (t) => {
  const { c } = t.context;
  const requestId = randomUUID();
  const a = await createKey(c, "idem", { requestId });
  const b = await createKey(c, "idem", { requestId });
  t.is(a.versions[0]!.kcv, b.versions[0]!.kcv);
  t.is(a.etag, b.etag);
  const other = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/life", keyId: "idem-other", key: keyMsg(KeyAlgorithm.KEY_ALGORITHM_AES_256), initialState: 0, requestId });
  t.is(other.code, grpc.status.ALREADY_EXISTS);
  t.is(other.reason, "REQUEST_ID_REUSED");
  const dup = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/life", keyId: "idem", key: keyMsg(KeyAlgorithm.KEY_ALGORITHM_AES_128), initialState: 0, requestId: "" });
  t.is(dup.code, grpc.status.ALREADY_EXISTS);
});

test("a stale etag is ABORTED and changes nothing", async (t) => {
  const { c } = t.context;
  const k = await createKey(c, "etag");
  const suspended = await setState(c, k.name, S.KEY_STATE_SUSPENDED);
  const f = await rpcError(c.keys, c.keys.setKeyState, { name: k.name, state: S.KEY_STATE_ACTIVE, etag: k.etag, reason: "" });
  t.is(f.code, grpc.status.ABORTED);
  t.is(f.reason, "ETAG_MISMATCH");
  const u = await rpcError(c.keys, c.keys.updateKey, { key: { ...k, labels: { a: "b" } }, updateMask: ["labels"] });
  t.is(u.code, grpc.status.ABORTED);
  const now = (await rpc(c.keys, c.keys.getKey, { name: k.name })).key!;
  t.is(now.etag, suspended.etag);
  t.is(now.state, S.KEY_STATE_SUSPENDED);
  t.deepEqual(now.labels, {});
});

test("UpdateKey changes labels and rotation period through update_mask, never the state", async (t) => {
  const { c } = t.context;
  const k = await createKey(c, "upd");
  const u = (await rpc(c.keys, c.keys.updateKey, { key: { ...k, labels: { env: "prod" }, rotationPeriod: { seconds: 86400n * 30n, nanos: 0 } }, updateMask: ["labels", "rotation_period"] })).key!;
  t.deepEqual(u.labels, { env: "prod" });
  t.is(u.rotationPeriod?.seconds, 86400n * 30n);
  t.truthy(u.nextRotationTime);
  const f = await rpcError(c.keys, c.keys.updateKey, { key: { ...u, state: S.KEY_STATE_SUSPENDED }, updateMask: ["state"] });
  t.is(f.code, grpc.status.INVALID_ARGUMENT);
  t.deepEqual(f.fieldViolations, ["update_mask"]);
});

test("ListKeys pages through every key exactly once and filters by state, algorithm and label", async (t) => {
  const { c } = t.context;
  await rpc(c.vaults, c.vaults.createVault, { vaultId: "paging", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  const ids: string[] = [];
  await Promise.all(
    Array.from({ length: 23 }, async (_, i) => {
      const id = `k${String(i).padStart(2, "0")}`;
      ids.push(id);
      await rpc(c.keys, c.keys.createKey, {
        parent: "vaults/paging",
        keyId: id,
        key: keyMsg(i % 2 ? KeyAlgorithm.KEY_ALGORITHM_AES_256 : KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, { labels: { parity: i % 2 ? "odd" : "even" } }),
        initialState: i % 3 === 0 ? S.KEY_STATE_PRE_ACTIVATION : 0,
        requestId: "",
      });
    }),
  );
  const seen: string[] = [];
  let pageToken = "";
  do {
    const r = await rpc(c.keys, c.keys.listKeys, { parent: "vaults/paging", pageSize: 5, pageToken, filter: "" });
    t.true(r.keys.length <= 5);
    seen.push(...r.keys.map((k) => k.name.split("/").pop()!));
    pageToken = r.nextPageToken;
  } while (pageToken);
  t.deepEqual(seen, [...ids].sort());
  const odd = await rpc(c.keys, c.keys.listKeys, { parent: "vaults/paging", pageSize: 100, pageToken: "", filter: "labels.parity = odd AND algorithm = AES_256" });
  t.is(odd.keys.length, 11);
  const pre = await rpc(c.keys, c.keys.listKeys, { parent: "vaults/paging", pageSize: 100, pageToken: "", filter: 'state = "PRE_ACTIVATION"' });
  t.is(pre.keys.length, 8);
  const first = await rpc(c.keys, c.keys.listKeys, { parent: "vaults/paging", pageSize: 2, pageToken: "", filter: "" });
  const mixed = await rpcError(c.keys, c.keys.listKeys, { parent: "vaults/paging", pageSize: 2, pageToken: first.nextPageToken, filter: "state = ACTIVE" });
  t.is(mixed.code, grpc.status.INVALID_ARGUMENT);
  t.is(mixed.reason, "INVALID_PAGE_TOKEN");
  const v = (await rpc(c.vaults, c.vaults.getVault, { name: "vaults/paging" })).vault!;
  t.is(v.keyCount, 23n);
});

test("a key with a future activation_time waits in PRE_ACTIVATION and is activated by the scheduler", async (t) => {
  const { c } = t.context;
  const at = new Date(Date.now() + 1500);
  const k = await createKey(c, "scheduled", { key: { activationTime: at } });
  t.is(k.state, S.KEY_STATE_PRE_ACTIVATION);
  let now = k;
  for (let i = 0; i < 200 && now.state === S.KEY_STATE_PRE_ACTIVATION; i++) {
    await new Promise((r) => setTimeout(r, 100));
    now = (await rpc(c.keys, c.keys.getKey, { name: k.name })).key!;
  }
  t.is(now.state, S.KEY_STATE_ACTIVE);
  const events = await rpc(c.audit, c.audit.listAuditEvents, { parent: "vaults/life", pageSize: 1000, pageToken: "", filter: `resource = ${k.name} AND principal = system` });
  t.is(events.auditEvents.length, 1);
  t.is(events.auditEvents[0]!.method, "system/activate");
});

test("every algorithm can be created; KCVs have the documented form", async (t) => {
  const { c } = t.context;
  const algs = [
    [KeyAlgorithm.KEY_ALGORITHM_AES_128, "enc-zero", 6],
    [KeyAlgorithm.KEY_ALGORITHM_AES_192, "enc-zero", 6],
    [KeyAlgorithm.KEY_ALGORITHM_AES_256, "enc-zero", 6],
    [KeyAlgorithm.KEY_ALGORITHM_RSA_2048, "spki-sha256", 64],
    [KeyAlgorithm.KEY_ALGORITHM_RSA_3072, "spki-sha256", 64],
    [KeyAlgorithm.KEY_ALGORITHM_EC_P256, "spki-sha256", 64],
    [KeyAlgorithm.KEY_ALGORITHM_EC_P384, "spki-sha256", 64],
    [KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, "hmac-empty", 6],
    [KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA384, "hmac-empty", 6],
    [KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA512, "hmac-empty", 6],
  ] as const;
  for (const [alg, method, len] of algs) {
    const k = await createKey(c, `alg-${KeyAlgorithm[alg].toLowerCase().replace("key_algorithm_", "").replace(/_/g, "-")}`, { algorithm: alg });
    t.is(k.algorithm, alg);
    t.is(k.versions[0]!.kcvMethod, method);
    t.is(k.versions[0]!.kcv.length, len);
    t.is(k.protectionLevel, t.context.home.hsm);
  }
});
