// mcko_key's refresh reads (provider/src/client/key-reads.ts) against the real daemon process over mTLS, through the
// provider's own daemon client: many reads of one vault cost one GetKey and one ListKeys, and every answer equals
// what GetKey says; a listing stops answering once it is older than its time limit or once a write went through the
// client, so a change or a deletion is seen; a vault that cannot be listed is read key by key with GetKey's answers.
// Each call the reads make is recorded from the request shape (GetKey has `name`, ListKeys `parent`).
import test from "ava";
import { Key, KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { Vault } from "../../protos/gen/mcko/v1/vault.js";
import { createDaemonClient, type DaemonClient } from "../../provider/src/client/daemon-client.js";
import { readKey, SNAPSHOT_TTL_MS } from "../../provider/src/client/key-reads.js";
import { clientsFor, type Clients, type DaemonProcess, type Home, makeHome, mtls, rpc, startDaemonProcess } from "../support/daemon.js";

let home: Home;
let daemon: DaemonProcess;
let admin: Clients;
const VAULT = "vaults/reads";
const N = 25;
const keyName = (i: number) => `${VAULT}/keys/k${i}`;

test.before(async () => {
  home = await makeHome();
  daemon = await startDaemonProcess(home);
  admin = clientsFor(daemon.address, mtls(home));
  await rpc(admin.vaults, admin.vaults.createVault, { vaultId: "reads", vault: Vault.fromPartial({}), requestId: "" });
  for (let i = 0; i < N; i++) {
    await rpc(admin.keys, admin.keys.createKey, {
      parent: VAULT,
      keyId: `k${i}`,
      key: Key.fromPartial({ algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, labels: { n: String(i) } }),
      initialState: KeyState.KEY_STATE_ACTIVE,
      requestId: "",
    });
  }
});
test.after.always(async () => {
  admin?.close();
  await daemon?.stop();
  home?.cleanup();
});

/** The provider's daemon client, with every call it makes recorded as "GetKey <name>" or "ListKeys <parent>". */
function recordingClient(): { client: DaemonClient; calls: string[]; close(): void } {
  const inner = createDaemonClient({
    address: daemon.address,
    caPem: home.caPem,
    certPem: home.admin.certPem,
    keyPem: home.admin.keyPem,
    requestTimeoutMs: 30_000,
  });
  const calls: string[] = [];
  const client: DaemonClient = {
    ...inner,
    unary: (method, request, signal) => {
      const r = request as { name?: string; parent?: string };
      calls.push(r.parent !== undefined ? `ListKeys ${r.parent}` : r.name !== undefined ? `GetKey ${r.name}` : "other");
      return inner.unary(method, request, signal);
    },
  };
  return { client, calls, close: () => inner.close() };
}

const getKey = async (name: string): Promise<Key | undefined> => (await rpc<{ name: string }, GetKeyResponse>(admin.keys, admin.keys.getKey, { name })).key;

test.serial("refreshing 25 keys of a vault: one GetKey, then one ListKeys answers the rest; every answer equals GetKey's", async (t) => {
  const { client, calls, close } = recordingClient();
  try {
    const first = await readKey(client, keyName(0));
    // Terraform refreshes ten resources at a time.
    const rest: (Key | null)[] = [];
    for (let i = 1; i < N; i += 10) rest.push(...(await Promise.all(Array.from({ length: Math.min(10, N - i) }, (_, j) => readKey(client, keyName(i + j))))));
    t.deepEqual(calls, [`GetKey ${keyName(0)}`, `ListKeys ${VAULT}`]);
    const all = [first, ...rest];
    for (let i = 0; i < N; i++) t.deepEqual(all[i], await getKey(keyName(i)), keyName(i));
  } finally {
    close();
  }
});

test.serial("a change out of band shows once the listing is older than its limit; a deleted key reads as gone (null)", async (t) => {
  const { client, calls, close } = recordingClient();
  let clock = 0;
  const now = () => clock;
  try {
    await readKey(client, keyName(1), undefined, now);
    t.is((await readKey(client, keyName(2), undefined, now))?.state, KeyState.KEY_STATE_ACTIVE);
    await rpc(admin.keys, admin.keys.setKeyState, { name: keyName(2), state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "" });
    for (const s of [KeyState.KEY_STATE_DEACTIVATED, KeyState.KEY_STATE_DESTROYED]) await rpc(admin.keys, admin.keys.setKeyState, { name: keyName(3), state: s, etag: "", reason: "" });
    await rpc(admin.keys, admin.keys.deleteKey, { name: keyName(3), etag: "" });
    t.deepEqual(calls, [`GetKey ${keyName(1)}`, `ListKeys ${VAULT}`]);

    clock += SNAPSHOT_TTL_MS + 1;
    t.is((await readKey(client, keyName(2), undefined, now))?.state, KeyState.KEY_STATE_SUSPENDED);
    t.is(await readKey(client, keyName(3), undefined, now), null);
    t.deepEqual(calls.slice(2), [`ListKeys ${VAULT}`], "one new listing answered both");
  } finally {
    close();
  }
});

test.serial("a write through the client ends the listing: the next read lists again and sees it", async (t) => {
  const { client, calls, close } = recordingClient();
  const now = () => 0; // the time limit never runs out here
  try {
    await readKey(client, keyName(4), undefined, now);
    t.deepEqual((await readKey(client, keyName(5), undefined, now))?.labels, { n: "5" });
    await client.unary(client.keys.updateKey.bind(client.keys), { key: Key.fromPartial({ name: keyName(5), labels: { n: "five" } }), updateMask: ["labels"] });
    t.deepEqual((await readKey(client, keyName(5), undefined, now))?.labels, { n: "five" });
    t.deepEqual(calls.filter((c) => c.startsWith("ListKeys")).length, 2);
  } finally {
    close();
  }
});

test.serial("a vault that cannot be listed (gone) is read key by key: both reads say the key is gone", async (t) => {
  const { client, calls, close } = recordingClient();
  try {
    t.is(await readKey(client, "vaults/nowhere/keys/a"), null);
    t.is(await readKey(client, "vaults/nowhere/keys/b"), null);
    t.is(await readKey(client, "vaults/nowhere/keys/c"), null);
    t.deepEqual(calls, ["GetKey vaults/nowhere/keys/a", "ListKeys vaults/nowhere", "GetKey vaults/nowhere/keys/b", "GetKey vaults/nowhere/keys/c"]);
  } finally {
    close();
  }
});
