// The provider executable as a fresh checkout has it: provider/bin/terraform-provider-mcko in a copy of the repository
// layout (the provider's sources, the generated protos and the installed packages linked in, its own empty
// node_modules/.cache) builds its bundle on the first start and serves; a bundle older than its sources is built
// again; a process ended by Shutdown leaves the V8 code cache for the next start; and without esbuild (no bundle can
// be built) the provider still serves, from source through tsx. Every start is checked by a real mTLS
// GetProviderSchema call with Terraform's kind of client certificate.
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, utimesSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import test from "ava";
import type * as pb from "../../protos/gen/tfplugin6/tfplugin6.js";
import { launchPlugin, REPO_ROOT } from "../support/tf-plugin-launcher.js";

/** A checkout-shaped directory: bin scripts copied, sources and packages linked, no bundle. */
function checkout(opts: { esbuild: boolean }): { root: string; wrapper: string; bundle: string; cleanup(): void } {
  const root = mkdtempSync(join(tmpdir(), "mcko-checkout-"));
  mkdirSync(join(root, "provider/bin"), { recursive: true });
  mkdirSync(join(root, "protos"), { recursive: true });
  mkdirSync(join(root, "node_modules"), { recursive: true });
  const checkedOut = new Date(Date.now() - 60_000); // a minute ago (the build dates its bundle a second before it starts)
  for (const f of ["terraform-provider-mcko", "build-provider.mjs"]) {
    copyFileSync(join(REPO_ROOT, "provider/bin", f), join(root, "provider/bin", f));
    utimesSync(join(root, "provider/bin", f), checkedOut, checkedOut);
  }
  symlinkSync(join(REPO_ROOT, "provider/src"), join(root, "provider/src"));
  symlinkSync(join(REPO_ROOT, "protos/gen"), join(root, "protos/gen"));
  for (const f of ["package.json", "tsconfig.json"]) symlinkSync(join(REPO_ROOT, f), join(root, f));
  for (const e of readdirSync(join(REPO_ROOT, "node_modules"))) {
    if (e === ".cache" || (e === "esbuild" && !opts.esbuild)) continue;
    symlinkSync(join(REPO_ROOT, "node_modules", e), join(root, "node_modules", e));
  }
  if (!opts.esbuild) {
    // tsx still needs esbuild's library; only its command-line binary (what build-provider runs) is missing.
    mkdirSync(join(root, "node_modules/esbuild"));
    for (const e of readdirSync(join(REPO_ROOT, "node_modules/esbuild"))) {
      if (e !== "bin") symlinkSync(join(REPO_ROOT, "node_modules/esbuild", e), join(root, "node_modules/esbuild", e));
    }
  }
  return {
    root,
    wrapper: join(root, "provider/bin/terraform-provider-mcko"),
    bundle: join(root, "node_modules/.cache/mcko-provider/main.cjs"),
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/** Starts the executable like Terraform, asks for the schema over mTLS, then ends it with Shutdown. */
async function serveOnce(wrapper: string): Promise<{ resourceTypes: string[]; exitCode: number | string; stderr: string }> {
  const p = await launchPlugin({ command: wrapper, cwd: tmpdir() });
  try {
    const schema = await p.call<pb.GetProviderSchema_Request, pb.GetProviderSchema_Response>(p.provider, "getProviderSchema", {});
    await p.call(p.controller, "shutdown", {});
    return { resourceTypes: Object.keys(schema.resourceSchemas).sort(), exitCode: await p.exited, stderr: p.output.stderr };
  } finally {
    await p.close();
  }
}

const RESOURCES = ["mcko_key", "mcko_key_distribution", "mcko_keystore", "mcko_vault"];

test.serial("a fresh checkout builds the bundle on first start; a stale bundle is rebuilt; Shutdown leaves the code cache", async (t) => {
  const c = checkout({ esbuild: true });
  try {
    t.false(existsSync(c.bundle));
    const first = await serveOnce(c.wrapper);
    t.deepEqual(first.resourceTypes, RESOURCES);
    t.is(first.exitCode, 0);
    t.true(existsSync(c.bundle), "built on the first start");
    t.true(existsSync(`${c.bundle}.v8cache`), "the code cache is written when the process ends well");

    const old = new Date(Date.UTC(2001, 0, 1));
    utimesSync(c.bundle, old, old); // older than every source now
    const again = await serveOnce(c.wrapper);
    t.deepEqual(again.resourceTypes, RESOURCES);
    t.true(statSync(c.bundle).mtimeMs > old.getTime(), "rebuilt because a source was newer");

    const before = statSync(c.bundle).mtimeMs;
    t.deepEqual((await serveOnce(c.wrapper)).resourceTypes, RESOURCES);
    t.is(statSync(c.bundle).mtimeMs, before, "an up-to-date bundle is not rebuilt");
  } finally {
    c.cleanup();
  }
});

test.serial("without esbuild the provider serves from source through tsx, and says why on stderr", async (t) => {
  const c = checkout({ esbuild: false });
  try {
    const r = await serveOnce(c.wrapper);
    t.deepEqual(r.resourceTypes, RESOURCES);
    t.is(r.exitCode, 0);
    t.false(existsSync(c.bundle));
    t.regex(r.stderr, /build-provider: esbuild could not run/);
  } finally {
    c.cleanup();
  }
});
