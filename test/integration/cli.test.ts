/** The `mcko` CLI against a real daemon: cert issue with role grants, JSON output for scripts, exit codes. */
import anyTest, { type TestFn } from "ava";
import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { MCKO_BIN, makeHome, startDaemonProcess, type DaemonProcess, type Home } from "../support/daemon.js";

const run = promisify(execFile);
const test = anyTest as TestFn<{ home: Home; daemon: DaemonProcess; mcko: (args: string[], extraEnv?: Record<string, string>) => Promise<{ stdout: string; stderr: string; code: number }> }>;

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const mcko = (args: string[], extraEnv: Record<string, string> = {}) =>
    run(MCKO_BIN, args, { env: { ...process.env, MCKO_HOME: home.dir, MCKO_ADDR: daemon.address, ...extraEnv } }).then(
      (r) => ({ ...r, code: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
  t.context = { home, daemon, mcko };
});

test.after.always(async (t) => {
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

test.serial("vault and key commands with --output json give machine-readable results", async (t) => {
  const { mcko } = t.context;
  t.is((await mcko(["vault", "create", "cli"])).code, 0);
  const created = await mcko(["-o", "json", "key", "create", "cli/k1", "--algorithm", "HMAC_SHA256", "--label", "team=ops"]);
  t.is(created.code, 0, created.stderr);
  const key = JSON.parse(created.stdout) as { name: string; state: string; labels: Record<string, string> };
  t.deepEqual([key.name, key.state, key.labels], ["vaults/cli/keys/k1", "KEY_STATE_ACTIVE", { team: "ops" }]);
  const list = JSON.parse((await mcko(["-o", "json", "key", "list", "cli", "--filter", "labels.team = ops"])).stdout) as unknown[];
  t.is(list.length, 1);
  const rotated = JSON.parse((await mcko(["-o", "json", "key", "rotate", "cli/k1"])).stdout) as { primaryVersion: number };
  t.is(rotated.primaryVersion, 2);
  const destroyed = await mcko(["-o", "json", "key", "destroy", "cli/k1", "--delete"]);
  t.is(destroyed.code, 0, destroyed.stderr);
  const gone = await mcko(["key", "show", "cli/k1"]);
  t.is(gone.code, 1);
  t.regex(gone.stderr, /NOT_FOUND RESOURCE_NOT_FOUND: key vaults\/cli\/keys\/k1 not found/);
});

test.serial("bad input gets a message a person can act on, with the field, and exit code 1", async (t) => {
  const bad = await t.context.mcko(["key", "create", "cli/Bad", "--algorithm", "AES_256"]);
  t.is(bad.code, 1);
  t.regex(bad.stderr, /INVALID_ARGUMENT/);
  t.regex(bad.stderr, /- key_id: /);
  const alg = await t.context.mcko(["key", "create", "cli/x", "--algorithm", "DES"]);
  t.regex(alg.stderr, /unknown algorithm "DES"; use one of AES_128/);
  t.false(alg.stderr.includes("    at "), "no stack trace");
});

test.serial("cert issue makes a 0600 key and a certificate whose grants the daemon enforces", async (t) => {
  const { mcko, home } = t.context;
  const out = join(home.dir, "clients/viewer-v");
  const issued = await mcko(["cert", "issue", "--name", "val", "--role", "viewer", "--vault", "cli", "--out", out]);
  t.is(issued.code, 0, issued.stderr);
  t.true(existsSync(`${out}.pem`));
  t.is(statSync(`${out}.key`).mode & 0o777, 0o600);
  const asViewer = { MCKO_CLIENT_CERT: `${out}.pem`, MCKO_CLIENT_KEY: `${out}.key` };
  t.is((await mcko(["key", "list", "cli"], asViewer)).code, 0);
  const denied = await mcko(["key", "create", "cli/by-viewer", "--algorithm", "AES_256"], asViewer);
  t.is(denied.code, 1);
  t.regex(denied.stderr, /PERMISSION_DENIED PERMISSION_DENIED: CN=val may not keys.create on vault cli \(holds: viewer on cli\)/);
  const badRole = await mcko(["cert", "issue", "--name", "x", "--role", "root"]);
  t.regex(badRole.stderr, /bad grant "root:\*"/);
});

test.serial("no connection configured: the CLI says how to configure one", async (t) => {
  const r = await run(MCKO_BIN, ["key", "list", "v"], { env: { ...process.env, MCKO_HOME: join(t.context.home.dir, "nowhere") } }).then(
    () => undefined,
    (e: { stderr: string; code: number }) => e,
  );
  t.is(r?.code, 1);
  t.regex(r!.stderr, /no daemon connection configured: run `mcko init DIR`/);
});
