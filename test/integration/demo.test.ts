/** The README's first command (`npm run demo`) works: it exits 0 and ends with an intact audit chain. */
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO } from "../support/daemon.js";

test("npm run demo walks a key through its lifecycle and verifies the audit chain", async (t) => {
  t.timeout(300_000);
  const dir = mkdtempSync(join(tmpdir(), "mcko-demo-"));
  try {
    const r = await promisify(execFile)("bash", [join(REPO, "examples/demo/demo.sh")], { cwd: REPO, env: { ...process.env, MCKO_DEMO_HOME: join(dir, "home"), MCKO_DEMO_SKIP_SETUP: "1" }, maxBuffer: 16 * 1024 * 1024 });
    t.regex(r.stdout, /KEY_STATE_TRANSITION_NOT_ALLOWED/);
    t.regex(r.stdout, /audit chain intact: 9 records/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
