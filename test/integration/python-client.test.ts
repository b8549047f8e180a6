/**
 * Another language's client: Debian's python3-grpcio calls the daemon over mutual TLS with the home's admin
 * certificate (examples/python-client), creates and reads a key, and gets a structured error back.
 */
import anyTest, { type TestFn } from "ava";
import { execFile } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO, clientsFor, makeHome, mtls, rpc, startDaemonProcess, type DaemonProcess, type Home } from "../support/daemon.js";

const run = promisify(execFile);
const test = anyTest as TestFn<{ home: Home; daemon: DaemonProcess; py: (...args: string[]) => Promise<{ stdout: string; stderr: string; code: number }> }>;

test.before(async (t) => {
  const home = await makeHome();
  const daemon = await startDaemonProcess(home);
  const c = clientsFor(daemon.address, mtls(home));
  await rpc(c.vaults, c.vaults.createVault, { vaultId: "py", vault: { name: "", displayName: "", description: "", etag: "", keyCount: 0n }, requestId: "" });
  c.close();
  const py = (...args: string[]) =>
    run("/usr/bin/python3", [join(REPO, "examples/python-client/mcko_client.py"), "--addr", daemon.address, "--ca", join(home.dir, "tls/ca.pem"), "--cert", join(home.dir, "admin.pem"), "--key", join(home.dir, "admin.key"), ...args]).then(
      (r) => ({ ...r, code: 0 }),
      (e: { stdout: string; stderr: string; code: number }) => e,
    );
  t.context = { home, daemon, py };
});

test.after.always(async (t) => {
  await t.context.daemon?.stop();
  t.context.home?.cleanup();
});

test("the Python client creates, reads and lists a key over mTLS", async (t) => {
  const created = await t.context.py("create-key", "py", "from-python", "AES_256");
  t.is(created.code, 0, created.stderr);
  const key = JSON.parse(created.stdout) as { name: string; state: string; versions: Array<{ kcv: string }> };
  t.is(key.name, "vaults/py/keys/from-python");
  t.is(key.state, "KEY_STATE_ACTIVE");
  t.regex(key.versions[0]!.kcv, /^[0-9a-f]{6}$/);
  const got = await t.context.py("get-key", "vaults/py/keys/from-python");
  t.is(got.code, 0, got.stderr);
  t.is((JSON.parse(got.stdout) as { versions: Array<{ kcv: string }> }).versions[0]!.kcv, key.versions[0]!.kcv);
  const list = await t.context.py("list-keys", "py");
  t.is(list.stdout.trim(), "vaults/py/keys/from-python");
});

test("the Python client sees the status code, ErrorInfo reason and field violations", async (t) => {
  const bad = await t.context.py("set-state", "vaults/py/keys/from-python-missing", "ACTIVE");
  t.is(bad.code, 1);
  t.regex(bad.stderr, /NOT_FOUND RESOURCE_NOT_FOUND/);
  const invalid = await t.context.py("create-key", "py", "Bad Id", "AES_256");
  t.regex(invalid.stderr, /INVALID_ARGUMENT INVALID_ARGUMENT: .*fields: key_id/);
});
