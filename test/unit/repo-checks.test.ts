/**
 * Repository invariants: buf lint passes, generated code is what the generator makes from the protos today,
 * the layer rules and import graph hold, and the whole tree type-checks.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import { REPO } from "../support/daemon.js";

const run = promisify(execFile);

function tree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

test("buf lint (STANDARD + COMMENTS) passes", async (t) => {
  const r = await run(join(REPO, "node_modules/.bin/buf"), ["lint"], { cwd: REPO });
  t.is(r.stdout.trim(), "");
});

test("regenerating protos/gen from the protos gives exactly the committed files", async (t) => {
  const base = mkdtempSync(join(tmpdir(), "mcko-gen-"));
  try {
    await run(process.execPath, [join(REPO, ".ci/gen-proto.mjs"), base], { cwd: REPO });
    const fresh = tree(join(base, "protos/gen"));
    const committed = tree(join(REPO, "protos/gen"));
    t.deepEqual([...fresh.keys()].sort(), [...committed.keys()].sort(), "the same files");
    const differing = [...fresh.keys()].filter((k) => !fresh.get(k)!.equals(committed.get(k) ?? Buffer.alloc(0)));
    t.deepEqual(differing, [], "run `npm run gen` and commit the result");
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("layer rules and import cycles (.ci/check-layers.mjs)", async (t) => {
  const r = await run(process.execPath, [join(REPO, ".ci/check-layers.mjs")], { cwd: REPO });
  t.regex(r.stdout, /layers ok/);
});

test("the whole tree type-checks (tsc --noEmit, strict)", async (t) => {
  t.timeout(180_000);
  const r = await run(process.execPath, [join(REPO, "node_modules/typescript/bin/tsc"), "-p", REPO, "--noEmit"], { cwd: REPO }).catch((e: { stdout: string }) => e);
  t.is(r.stdout.trim(), "");
});
