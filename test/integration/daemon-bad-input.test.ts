/**
 * Bad input gets the right status code and a field path, and never changes what is stored: invalid names,
 * unknown enum values, oversized fields, empty required fields, wrong etags, messages over 4 MiB, and 1,000
 * random invalid requests from fast-check (never INTERNAL or UNKNOWN, and the daemon stays up).
 */
import anyTest, { type TestFn } from "ava";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { KeyAlgorithm, KeyState, type Key } from "../../protos/gen/mcko/v1/key.js";
import { clientsFor, healthCheck, makeHome, mtls, rpc, rpcError, startDaemonProcess, type Clients, type DaemonProcess, type Home } from "../support/daemon.js";

const test = anyTest as TestFn<{ home: Home; daemon: DaemonProcess; c: Clients; active: Key }>;

const keyMsg = (extra: Partial<Key> = {}): Key => ({ name: "", algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "", ...extra });

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  await rpc(c.vaults, c.vaults.createVault, { vaultId: "bad", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  const active = (await rpc(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "active", key: keyMsg({ labels: { a: "b" } }), initialState: 0, requestId: "" })).key!;
  await rpc(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "pre", key: keyMsg(), initialState: KeyState.KEY_STATE_PRE_ACTIVATION, requestId: "" });
  t.context = { home, daemon, c, active };
});

test.after.always(async (t) => {
  t.context.c?.close();
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

/** Everything a client can observe of the stored state: vaults and keys with their etags. */
async function snapshot(c: Clients): Promise<string> {
  const vaults = await rpc(c.vaults, c.vaults.listVaults, { pageSize: 1000, pageToken: "" });
  const out: string[] = vaults.vaults.map((v) => `${v.name} ${v.etag} ${v.keyCount}`);
  for (const v of vaults.vaults) {
    const keys = await rpc(c.keys, c.keys.listKeys, { parent: v.name, pageSize: 1000, pageToken: "", filter: "" });
    out.push(...keys.keys.map((k) => `${k.name} ${k.etag} ${k.state} ${k.primaryVersion} ${JSON.stringify(k.labels)}`));
  }
  return out.join("\n");
}

test.serial("named bad inputs get INVALID_ARGUMENT with every field path, ABORTED or RESOURCE_EXHAUSTED, and change nothing", async (t) => {
  const { c, active } = t.context;
  const before = await snapshot(c);

  const empty = await rpcError(c.keys, c.keys.createKey, { parent: "", keyId: "", key: undefined, initialState: 0, requestId: "" });
  t.is(empty.code, grpc.status.INVALID_ARGUMENT);
  t.deepEqual(empty.fieldViolations.sort(), ["key", "key_id", "parent"]);

  const many = await rpcError(c.keys, c.keys.createKey, {
    parent: "vaults/bad",
    keyId: "Not Valid!",
    key: keyMsg({ algorithm: 99 as KeyAlgorithm, labels: { "Bad Key": "x", ok: "UPPER" }, rotationPeriod: { seconds: 5n, nanos: 0 } }),
    initialState: KeyState.KEY_STATE_DESTROYED,
    requestId: "not-a-uuid",
  });
  t.is(many.code, grpc.status.INVALID_ARGUMENT);
  t.deepEqual(
    [...new Set(many.fieldViolations)].sort(),
    ["initial_state", 'key.labels["Bad Key"]', 'key.labels["ok"]', "key.algorithm", "key.rotation_period", "key_id", "request_id"].sort(),
  );

  const unspecified = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "x", key: keyMsg({ algorithm: KeyAlgorithm.KEY_ALGORITHM_UNSPECIFIED }), initialState: 0, requestId: "" });
  t.deepEqual(unspecified.fieldViolations, ["key.algorithm"]);

  const oversized = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "k".repeat(5000), key: keyMsg({ labels: { big: "v".repeat(100_000) } }), initialState: 0, requestId: "" });
  t.is(oversized.code, grpc.status.INVALID_ARGUMENT);
  t.deepEqual(oversized.fieldViolations.sort(), ["key.labels[\"big\"]", "key_id"]);

  const badName = await rpcError(c.keys, c.keys.getKey, { name: "vaults/bad/keys/../../etc" });
  t.is(badName.code, grpc.status.INVALID_ARGUMENT);
  t.deepEqual(badName.fieldViolations, ["name"]);

  const badState = await rpcError(c.keys, c.keys.setKeyState, { name: active.name, state: 42 as KeyState, etag: "", reason: "" });
  t.deepEqual(badState.fieldViolations, ["state"]);
  const noReason = await rpcError(c.keys, c.keys.setKeyState, { name: active.name, state: KeyState.KEY_STATE_COMPROMISED, etag: "", reason: "  " });
  t.deepEqual(noReason.fieldViolations, ["reason"]);

  const stale = await rpcError(c.keys, c.keys.rotateKey, { name: active.name, etag: "stale-etag", requestId: "" });
  t.is(stale.code, grpc.status.ABORTED);

  const huge = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "huge", key: keyMsg({ labels: { x: "y".repeat(4 * 1024 * 1024 + 10) } }), initialState: 0, requestId: "" });
  t.is(huge.code, grpc.status.RESOURCE_EXHAUSTED);

  const negative = await rpcError(c.keys, c.keys.listKeys, { parent: "vaults/bad", pageSize: -1, pageToken: "", filter: "" });
  t.deepEqual(negative.fieldViolations, ["page_size"]);
  const filter = await rpcError(c.keys, c.keys.listKeys, { parent: "vaults/bad", pageSize: 1, pageToken: "", filter: "color = blue" });
  t.deepEqual(filter.fieldViolations, ["filter"]);
  const token = await rpcError(c.keys, c.keys.listKeys, { parent: "vaults/bad", pageSize: 1, pageToken: "garbage", filter: "" });
  t.is(token.reason, "INVALID_PAGE_TOKEN");

  const missingVault = await rpcError(c.keys, c.keys.createKey, { parent: "vaults/nope", keyId: "k", key: keyMsg(), initialState: 0, requestId: "" });
  t.is(missingVault.code, grpc.status.NOT_FOUND);

  t.is(await snapshot(c), before, "nothing stored changed");
});

// ---- property-based: random invalid requests --------------------------------------------------------------------

const badId = fc.oneof(fc.constant(""), fc.string({ minLength: 64, maxLength: 200 }), fc.string().map((s) => `X${s}`), fc.string().map((s) => `a/${s}`), fc.constant("1abc"));
const anyText = fc.oneof(fc.string({ maxLength: 80 }), fc.string({ unit: "grapheme", maxLength: 40 }), fc.constantFrom("vaults/", "vaults/bad/keys/", "vaults//keys/x", "vaults/bad/keys/active/x", "../../", "\u0000"));
const badEnum = fc.oneof(fc.constant(0), fc.integer({ min: 12, max: 2 ** 31 - 1 }), fc.integer({ min: -(2 ** 31), max: -1 }));
const badBigLabel = fc.dictionary(fc.string({ minLength: 1, maxLength: 70 }).filter((k) => !/^[a-z][a-z0-9_-]{0,62}$/.test(k)), fc.string({ maxLength: 10 }), { minKeys: 1, maxKeys: 3 });

type Call = { kind: string; run: (c: Clients) => Promise<grpc.status> };

async function codeOf(p: Promise<unknown>): Promise<grpc.status> {
  try {
    await p;
    return grpc.status.OK;
  } catch (e) {
    return (e as grpc.ServiceError).code;
  }
}

const invalidCall: fc.Arbitrary<Call> = fc.oneof(
  fc.record({ parent: anyText, keyId: badId, labels: fc.option(badBigLabel, { nil: undefined }) }).map(({ parent, keyId, labels }) => ({
    kind: "createKey/bad id",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.createKey, { parent, keyId, key: keyMsg(labels ? { labels } : {}), initialState: 0, requestId: "" })),
  })),
  fc.record({ alg: badEnum, init: fc.integer({ min: -3, max: 40 }).filter((s) => s !== 0 && s !== 1 && s !== 2), rid: fc.string({ minLength: 1, maxLength: 50 }) }).map(({ alg, init, rid }) => ({
    kind: "createKey/bad enums",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "fuzz", key: keyMsg({ algorithm: alg as KeyAlgorithm }), initialState: init as KeyState, requestId: rid })),
  })),
  fc.record({ secs: fc.bigInt({ min: -(2n ** 40n), max: 3599n }).filter((s) => s !== 0n), nanos: fc.integer({ min: -999_999_999, max: 999_999_999 }) }).map(({ secs, nanos }) => ({
    kind: "createKey/bad rotation",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.createKey, { parent: "vaults/bad", keyId: "fuzz2", key: keyMsg({ rotationPeriod: { seconds: secs, nanos } }), initialState: 0, requestId: "" })),
  })),
  fc.record({ name: anyText, state: fc.integer({ min: -5, max: 50 }) }).map(({ name, state }) => ({
    kind: "setKeyState/bad",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.setKeyState, { name: /^vaults\/bad\/keys\/[a-z]/.test(name) ? `${name}!` : name, state: state as KeyState, etag: "", reason: "" })),
  })),
  fc.record({ state: fc.constantFrom(KeyState.KEY_STATE_DESTROYED, KeyState.KEY_STATE_PRE_ACTIVATION, KeyState.KEY_STATE_DESTROYED_COMPROMISED, KeyState.KEY_STATE_ACTIVE) }).map(({ state }) => ({
    kind: "setKeyState/forbidden",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.setKeyState, { name: "vaults/bad/keys/active", state, etag: "", reason: "" })),
  })),
  fc.record({ paths: fc.array(fc.string({ maxLength: 20 }), { maxLength: 4 }) }).map(({ paths }) => ({
    kind: "updateKey/bad mask",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.updateKey, { key: keyMsg({ name: "vaults/bad/keys/active", etag: "wrong" }), updateMask: paths.length ? paths : [] })),
  })),
  fc.record({ size: fc.integer({ min: -1000, max: -1 }), token: fc.string({ minLength: 1, maxLength: 100 }), filter: fc.string({ minLength: 1, maxLength: 60 }) }).map(({ size, token, filter }) => ({
    kind: "listKeys/bad",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.listKeys, { parent: "vaults/bad", pageSize: size, pageToken: token, filter })),
  })),
  fc.record({ name: anyText, rid: fc.string({ minLength: 1, maxLength: 40 }) }).map(({ name, rid }) => ({
    kind: "rotateKey/bad",
    run: (c: Clients) => codeOf(rpc(c.keys, c.keys.rotateKey, { name: "vaults/bad/keys/active", etag: name.length > 0 ? `x${name}` : "x", requestId: rid })),
  })),
  fc.record({ id: badId }).map(({ id }) => ({
    kind: "createVault/bad",
    run: (c: Clients) => codeOf(rpc(c.vaults, c.vaults.createVault, { vaultId: id, vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" })),
  })),
  fc.constant({ kind: "deleteKey/not destroyed", run: (c: Clients) => codeOf(rpc(c.keys, c.keys.deleteKey, { name: "vaults/bad/keys/active", etag: "" })) }),
);

test.serial("1,000 random invalid requests: always refused with a client-error code, never INTERNAL or UNKNOWN", async (t) => {
  const { c, daemon, home } = t.context;
  const before = await snapshot(c);
  const seen = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(invalidCall, async (call) => {
      const code = await call.run(c);
      seen.set(call.kind, (seen.get(call.kind) ?? 0) + 1);
      if (code === grpc.status.OK || code === grpc.status.INTERNAL || code === grpc.status.UNKNOWN || code === grpc.status.UNAVAILABLE) {
        throw new Error(`${call.kind} answered ${grpc.status[code]}`);
      }
    }),
    { numRuns: 1000, seed: 20261203 },
  );
  t.is([...seen.values()].reduce((a, b) => a + b, 0), 1000);
  t.is(await healthCheck(daemon.address, mtls(home), ""), "SERVING", "the daemon is still up");
  t.is(await snapshot(c), before, "nothing stored changed");
});
