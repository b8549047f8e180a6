/**
 * The daemon integration suite on the pkcs11 backend (SoftHSM2): runs the daemon test files again in a child ava
 * with MCKO_TEST_HSM=pkcs11, so `makeHome` (test/support/daemon.ts) gives each home a fresh SoftHSM2 token, the
 * PIN in a 0600 file and SOFTHSM2_CONF in hsm.moduleEnv. The test code is the same; only the backend differs.
 * (The 20-kill crash test stays on the software backend; the pkcs11 crash path is covered by
 * master-key-rotation.test.ts.)
 */
import test from "ava";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { REPO } from "../support/daemon.js";

const FILES = ["daemon-lifecycle", "daemon-auth", "daemon-audit", "daemon-bad-input", "daemon-canary"].map((f) => `test/integration/${f}.test.ts`);

test("the daemon suite passes with --hsm pkcs11 on SoftHSM2", async (t) => {
  t.timeout(900_000);
  const child = spawn(process.execPath, [join(REPO, "node_modules/ava/entrypoints/cli.mjs"), "--tap", "--concurrency", "1", ...FILES], {
    cwd: REPO,
    env: { ...process.env, MCKO_TEST_HSM: "pkcs11" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((res) => child.on("exit", (c) => res(c)));
  const passed = out.split("\n").filter((l) => /^ok \d+/.test(l)).length;
  const failed = out.split("\n").filter((l) => /^not ok \d+/.test(l));
  if (code !== 0 || failed.length > 0) t.log(out.slice(-20_000));
  t.deepEqual(failed, [], "no test failed on pkcs11");
  t.is(code, 0);
  t.true(passed >= 25, `the child ran the suite (${passed} tests passed)`);
});
