/**
 * `hsm.sessions` end to end on the daemon process with SoftHSM2: the configured number of token sessions is the
 * pool the daemon serves with (logged on start), one session still serves many concurrent calls correctly (they
 * queue for it), the default is 16, and an out-of-range value stops the start with a message naming the setting
 * while every file of the vault stays byte-for-byte as it was.
 */
import test from "ava";
import { spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { fileHashes } from "../support/files.js";
import { MCKO_BIN, clientsFor, makeHome, mtls, rpc, startDaemonProcess, type Home } from "../support/daemon.js";

/** Rewrites the home's config with `sessions` in its hsm section (undefined removes it). */
function setSessions(home: Home, sessions: unknown): void {
  const config = JSON.parse(readFileSync(home.configFile, "utf8")) as { hsm: Record<string, unknown> };
  if (sessions === undefined) delete config.hsm.sessions;
  else config.hsm.sessions = sessions;
  writeFileSync(home.configFile, JSON.stringify(config, null, 2));
}

/**
 * The `hsmSessions` field of the daemon's "mckod serving" log line. The JSON log goes to stderr, which may reach us
 * after the stdout line that told `startDaemonProcess` the daemon serves: wait for it (at most 10 s).
 */
async function servingSessions(logs: () => string): Promise<unknown> {
  for (const end = Date.now() + 10_000; ; ) {
    const line = logs().split("\n").find((l) => l.includes('"mckod serving"'));
    if (line !== undefined) return (JSON.parse(line) as { hsmSessions?: unknown }).hsmSessions;
    if (Date.now() > end) return undefined;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const keyMsg = (algorithm: KeyAlgorithm) => ({ name: "", algorithm, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" });

test("hsm.sessions: one session serves 32 concurrent calls, the default is 16, and 0 or 257 refuse to start touching nothing", async (t) => {
  t.timeout(300_000);
  const home = await makeHome({ logLevel: "info" }, "pkcs11");
  t.teardown(() => home.cleanup());

  setSessions(home, 1);
  const one = await startDaemonProcess(home);
  const c = clientsFor(one.address, mtls(home));
  try {
    t.is(await servingSessions(one.logs), 1, "the daemon serves with the one session configured");
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "s", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    // 32 calls at once through one session: symmetric and asymmetric generation, each wrapped under the master.
    const algorithms = [KeyAlgorithm.KEY_ALGORITHM_AES_256, KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, KeyAlgorithm.KEY_ALGORITHM_EC_P256, KeyAlgorithm.KEY_ALGORITHM_RSA_2048];
    const created = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        rpc(c.keys, c.keys.createKey, { parent: "vaults/s", keyId: `k${i}`, key: keyMsg(algorithms[i % algorithms.length]!), initialState: KeyState.KEY_STATE_ACTIVE, requestId: "" }),
      ),
    );
    const kcvs = new Set(created.map((r) => r.key!.versions[0]!.kcv));
    t.is(created.length, 32);
    t.is(kcvs.size, 32, "every key has material of its own");
    for (const r of created) t.regex(r.key!.versions[0]!.kcv, /^[0-9a-f]{6,64}$/);
    // And 16 rotations at once, each generating and wrapping a second version through the same single session.
    const rotated = await Promise.all(created.slice(0, 16).map((r) => rpc(c.keys, c.keys.rotateKey, { name: r.key!.name, etag: "", requestId: "" })));
    for (const r of rotated) t.is(r.key!.primaryVersion, 2);
  } finally {
    c.close();
    await one.stop();
  }

  setSessions(home, undefined);
  const dflt = await startDaemonProcess(home);
  const d = clientsFor(dflt.address, mtls(home));
  try {
    t.is(await servingSessions(dflt.logs), 16, "without hsm.sessions the pool has 16 sessions");
    const listed = await rpc(d.keys, d.keys.listKeys, { parent: "vaults/s", pageSize: 100, pageToken: "", filter: "" });
    t.is(listed.keys.length, 32, "the keys made with one session are all there");
  } finally {
    d.close();
    await dflt.stop();
  }

  const before = fileHashes(home.dataDir);
  for (const bad of [0, 257, 2.5, "8"]) {
    setSessions(home, bad);
    const child = spawn(MCKO_BIN, ["daemon", "--config", home.configFile], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (b: Buffer) => (out += b.toString()));
    child.stderr.on("data", (b: Buffer) => (out += b.toString()));
    const code = await new Promise<number | null>((res) => child.on("close", (x) => res(x)));
    t.not(code, 0, `hsm.sessions ${JSON.stringify(bad)} is refused`);
    t.regex(out, /hsm\.sessions \(in .*config\.json\) must be an integer from 1 to 256/, `the message names the setting (${JSON.stringify(bad)})`);
    t.notRegex(out, /mckod serving/);
  }
  t.deepEqual(fileHashes(home.dataDir), before, "a refused start changes no file of the vault");
});
