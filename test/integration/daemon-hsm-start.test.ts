/**
 * `mcko init --hsm pkcs11` end to end through the CLI on a SoftHSM2 token, then the daemon process refusing to
 * start on HSM problems a person must be able to tell apart: a wrong PIN, a missing token, a token whose master
 * key has another KCV. Each refusal: exit code 1, a message on stderr that says which, and every file under the
 * data folder byte-for-byte unchanged (SHA-256 of each, and no file added or removed).
 */
import test from "ava";
import { execFile, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { fileHashes } from "../support/files.js";
import { MCKO_BIN, clientsFor, mtls, rpc, startDaemonProcess, type Home } from "../support/daemon.js";
import { createSoftHsmToken } from "../support/softhsm.js";

const run = promisify(execFile);

/** Runs `mcko daemon` expecting it to refuse: resolves with its exit code and stderr. */
function refusedStart(configFile: string): Promise<{ code: number | null; stderr: string; stdout: string }> {
  const child = spawn(MCKO_BIN, ["daemon", "--config", configFile], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  let stdout = "";
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  return new Promise((res) => child.on("close", (code) => res({ code, stderr, stdout })));
}

test("mcko init --hsm pkcs11 through the CLI; the daemon refuses a wrong PIN, a missing token and a different master, touching nothing", async (t) => {
  t.timeout(300_000);
  const token = await createSoftHsmToken();
  const dir = mkdtempSync(join(tmpdir(), "mcko-hsm-start-"));
  t.teardown(async () => {
    rmSync(dir, { recursive: true, force: true });
    await token.cleanup();
  });
  const pinFile = join(dir, "pin");
  writeFileSync(pinFile, `${token.pin}\n`, { mode: 0o600 });
  const homeDir = join(dir, "home");
  // No SOFTHSM2_CONF in the CLI's environment: --hsm-env carries it, and the home's config keeps it.
  const env = { ...process.env };
  delete env.SOFTHSM2_CONF;
  delete env.MCKO_HSM_PIN;
  const init = await run(MCKO_BIN, ["init", homeDir, "--listen", "127.0.0.1:0", "--hsm", "pkcs11", "--hsm-token", token.tokenLabel, "--hsm-pin-file", pinFile, "--hsm-env", `SOFTHSM2_CONF=${token.conf}`], { env });
  const kcv = /master key:\s+KCV ([0-9a-f]{6}) \(pkcs11\)/.exec(init.stdout)?.[1];
  t.truthy(kcv, init.stdout);
  const configFile = join(homeDir, "config.json");
  const config = JSON.parse(readFileSync(configFile, "utf8")) as { hsm: Record<string, unknown> };
  t.like(config.hsm, { backend: "pkcs11", tokenLabel: token.tokenLabel, moduleEnv: { SOFTHSM2_CONF: token.conf } });
  t.false(readFileSync(configFile, "utf8").includes(token.pin + '"'), "the PIN is not in the config file");

  // The daemon runs on it: a key is made in the token-backed vault.
  const home: Home = {
    dir: homeDir,
    configFile,
    caPem: readFileSync(join(homeDir, "tls/ca.pem")),
    admin: { certPem: readFileSync(join(homeDir, "admin.pem")), keyPem: readFileSync(join(homeDir, "admin.key")) },
    dataDir: join(homeDir, "data"),
    journalFile: join(homeDir, "data/vault/audit.jsonl"),
    hsm: "pkcs11",
    cleanup: () => undefined,
  };
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  try {
    await rpc(c.vaults, c.vaults.createVault, { vaultId: "v", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
    const key = { name: "", algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256, state: 0, versions: [], primaryVersion: 0, labels: {}, etag: "", protectionLevel: "" };
    const created = await rpc(c.keys, c.keys.createKey, { parent: "vaults/v", keyId: "k", key, initialState: 0, requestId: "" });
    t.is(created.key!.protectionLevel, "pkcs11");
  } finally {
    c.close();
  }
  t.is(await daemon.stop(), 0);
  const before = fileHashes(home.dataDir);
  t.true(Object.keys(before).length >= 3, "the vault has files to protect");

  const withConfig = (patch: (hsm: Record<string, unknown>) => void): void => {
    const next = JSON.parse(JSON.stringify(config)) as typeof config;
    patch(next.hsm);
    writeFileSync(configFile, JSON.stringify(next, null, 2));
  };
  const refuses = async (why: string, message: RegExp): Promise<void> => {
    const r = await refusedStart(configFile);
    t.is(r.code, 1, `${why}: exit code`);
    t.regex(r.stderr, message, `${why}: stderr says which`);
    t.false(r.stdout.includes("mckod serving"), `${why}: never served`);
    t.deepEqual(fileHashes(home.dataDir), before, `${why}: the vault files are untouched`);
  };

  // A wrong PIN (the PIN itself never appears in the message).
  const wrongPin = join(dir, "wrong-pin");
  writeFileSync(wrongPin, "0000\n", { mode: 0o600 });
  withConfig((h) => (h.pinFile = wrongPin));
  await refuses("wrong PIN", /mcko: login to token "mcko-test" failed: wrong user PIN/);

  // A missing token.
  withConfig((h) => (h.tokenLabel = "no-such-token"));
  await refuses("missing token", /mcko: .*no initialised token labelled "no-such-token"/);

  // A token whose master key has another KCV (made by a second `mcko init` on another token).
  await token.addToken("mcko-other");
  const other = await run(MCKO_BIN, ["init", join(dir, "other"), "--listen", "127.0.0.1:0", "--hsm", "pkcs11", "--hsm-token", "mcko-other", "--hsm-pin-file", pinFile, "--hsm-env", `SOFTHSM2_CONF=${token.conf}`], { env });
  const otherKcv = /KCV ([0-9a-f]{6})/.exec(other.stdout)?.[1];
  t.truthy(otherKcv);
  t.not(otherKcv, kcv);
  withConfig((h) => (h.tokenLabel = "mcko-other"));
  await refuses("different master key", new RegExp(`mcko: .*KCV ${otherKcv}.*vault was made under master KCV ${kcv}`));

  // Back to the right configuration: the vault is intact and serves again.
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const again = await startDaemonProcess(home);
  const c2 = clientsFor(again.address, mtls(home));
  try {
    const got = await rpc(c2.keys, c2.keys.getKey, { name: "vaults/v/keys/k" });
    t.is(got.key!.versions.length, 1);
  } finally {
    c2.close();
  }
  t.is(await again.stop(), 0);
});
