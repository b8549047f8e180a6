/**
 * Crash test: the daemon is killed with SIGKILL at random moments during a stream of creates, rotations and state
 * changes (20+ kills). After each restart every change acknowledged to a client is there with its KCV, a change
 * whose answer never came is either fully there or fully absent, and the audit chain verifies.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm, KeyState, type Key } from "../../protos/gen/mcko/v1/key.js";
import { clientsFor, makeHome, mtls, rpc, startDaemonProcess, type Clients } from "../support/daemon.js";

const KILLS = 20;
const WORKERS = 6;

/** What the test knows for sure about a key, and what may or may not have happened to it. */
interface Known {
  name: string;
  state: KeyState | undefined; // undefined: the create itself was never acknowledged
  kcvs: Map<number, string>; // acknowledged versions
  pending?: { op: "create" | "rotate" | "state"; state?: KeyState };
}

/** Small seeded PRNG (mulberry32) so a failing run can be replayed. */
function rng(seed: number) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

const NEXT: Partial<Record<KeyState, KeyState[]>> = {
  [KeyState.KEY_STATE_ACTIVE]: [KeyState.KEY_STATE_SUSPENDED],
  [KeyState.KEY_STATE_SUSPENDED]: [KeyState.KEY_STATE_ACTIVE, KeyState.KEY_STATE_DEACTIVATED],
  [KeyState.KEY_STATE_DEACTIVATED]: [KeyState.KEY_STATE_DESTROYED],
};

test("acknowledged changes survive SIGKILL at random moments; the audit chain verifies after every restart", async (t) => {
  t.timeout(600_000, "20 kills and restarts");
  const seed = Number(process.env.MCKO_CRASH_SEED ?? Date.now() % 1_000_000);
  t.log(`seed ${seed} (set MCKO_CRASH_SEED to replay)`);
  const random = rng(seed);
  const home = await makeHome();
  const known = new Map<string, Known>();
  let counter = 0;
  let port = 0;
  let acknowledged = 0;
  try {
    let daemon = await startDaemonProcess(home);
    port = daemon.port;
    let c: Clients = clientsFor(daemon.address, mtls(home));
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "crash", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });

    for (let round = 0; round < KILLS; round++) {
      let stop = false;
      const worker = async (w: number) => {
        const mine = () => [...known.values()].filter((k) => k.name.endsWith(`-w${w}`) && k.state !== undefined && !k.pending && NEXT[k.state]);
        while (!stop) {
          const candidates = mine();
          const roll = random();
          if (candidates.length === 0 || roll < 0.4) {
            const name = `vaults/crash/keys/k${counter++}-w${w}`;
            const k: Known = { name, state: undefined, kcvs: new Map(), pending: { op: "create" } };
            known.set(name, k);
            try {
              const r = (await rpc(c.keys, c.keys.createKey, { parent: "vaults/crash", keyId: name.split("/").pop()!, key: { name: "", algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" }, initialState: 0, requestId: "" }, 5000)).key!;
              k.state = r.state;
              k.kcvs.set(1, r.versions[0]!.kcv);
              delete k.pending;
              acknowledged++;
            } catch {
              return; // the daemon died: this create is in doubt
            }
          } else {
            const k = candidates[Math.floor(random() * candidates.length)]!;
            const rotate = roll < 0.65 && k.state === KeyState.KEY_STATE_ACTIVE;
            const targets = NEXT[k.state!]!;
            const target = targets[Math.floor(random() * targets.length)]!;
            k.pending = rotate ? { op: "rotate" } : { op: "state", state: target };
            try {
              const r = rotate
                ? (await rpc(c.keys, c.keys.rotateKey, { name: k.name, etag: "", requestId: "" }, 5000)).key!
                : (await rpc(c.keys, c.keys.setKeyState, { name: k.name, state: target, etag: "", reason: "crash test" }, 5000)).key!;
              record(k, r);
              delete k.pending;
              acknowledged++;
            } catch {
              return;
            }
          }
        }
      };
      const workers = Array.from({ length: WORKERS }, (_, w) => worker(w));
      await new Promise((r) => setTimeout(r, 150 + random() * 600));
      await daemon.kill();
      stop = true;
      await Promise.all(workers);
      c.close();

      daemon = await startDaemonProcess(home, {}, port);
      c = clientsFor(daemon.address, mtls(home));
      await verify(t, c, known);
      const chain = await rpc(c.audit, c.audit.verifyAuditChain, {});
      t.true(chain.valid, `round ${round}: ${chain.problem}`);
    }
    t.log(`${KILLS} kills, ${acknowledged} acknowledged changes over ${known.size} keys`);
    t.true(acknowledged > KILLS * 5, "the stream really ran between kills");
    c.close();
    await daemon.stop();
  } finally {
    home.cleanup();
  }
});

function record(k: Known, key: Key): void {
  k.state = key.state;
  for (const v of key.versions) if (v.kcv) k.kcvs.set(v.versionNumber, v.kcv);
}

async function verify(t: { is: (a: unknown, b: unknown, m?: string) => void; true: (v: boolean, m?: string) => void }, c: Clients, known: Map<string, Known>) {
  const stored = new Map<string, Key>();
  let pageToken = "";
  do {
    const r = await rpc(c.keys, c.keys.listKeys, { parent: "vaults/crash", pageSize: 1000, pageToken, filter: "" });
    for (const k of r.keys) stored.set(k.name, k);
    pageToken = r.nextPageToken;
  } while (pageToken);
  for (const k of known.values()) {
    const s = stored.get(k.name);
    if (k.pending?.op === "create") {
      // In doubt: either fully created (ACTIVE with a KCV) or absent. Adopt what the daemon has.
      if (s) {
        t.is(s.state, KeyState.KEY_STATE_ACTIVE, `${k.name} half-created`);
        t.true(/^[0-9a-f]{6}$/.test(s.versions[0]?.kcv ?? ""), `${k.name} has its KCV`);
        record(k, s);
      } else known.delete(k.name);
      delete k.pending;
      continue;
    }
    t.true(s !== undefined, `${k.name} was acknowledged but is missing`);
    if (!s) continue;
    for (const [version, kcv] of k.kcvs) {
      const v = s.versions.find((x) => x.versionNumber === version);
      if (s.state !== KeyState.KEY_STATE_DESTROYED) t.is(v?.kcv, kcv, `${k.name} v${version} KCV`);
    }
    if (k.pending?.op === "state") t.true(s.state === k.state || s.state === k.pending.state, `${k.name} state ${s.state}`);
    else if (k.pending?.op === "rotate") t.true(s.versions.length === k.kcvs.size || s.versions.length === k.kcvs.size + 1, `${k.name} rotation in doubt`);
    else t.is(s.state, k.state, `${k.name} state`);
    record(k, s);
    delete k.pending;
  }
  // No key exists that the test never asked for.
  for (const name of stored.keys()) t.true(known.has(name), `unexpected key ${name}`);
}
