#!/usr/bin/env node
// Bundles the provider (provider/src/main.ts and everything it imports, npm packages included) into one CommonJS
// file, node_modules/.cache/mcko-provider/main.cjs, which provider/bin/terraform-provider-mcko runs. One pre-bundled
// file starts several times faster than tsx transpiling ~60 TypeScript modules and Node resolving ~100 package
// files, and Terraform starts the provider 3-4 times per command.
//
//   node provider/bin/build-provider.mjs              build now (`npm run build:provider`; .ci/setup.sh runs it)
//   node provider/bin/build-provider.mjs --if-stale   build only if the bundle is missing or older than a source
//
// terraform-provider-mcko makes the same staleness test (isStale) on every start and builds when needed, so a fresh
// checkout or an edited source never runs an old bundle. Output goes to stderr only (stdout belongs to the plugin
// handshake). On failure the bundle is removed.
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, realpathSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const ENTRY = join(ROOT, "provider/src/main.ts");
export const OUT_DIR = join(ROOT, "node_modules/.cache/mcko-provider");
export const BUNDLE = join(OUT_DIR, "main.cjs");

/**
 * True when the bundle is missing or older than anything it is made of: the provider's and the generated protos'
 * TypeScript, the installed packages (npm rewrites node_modules/.package-lock.json on every install), tsconfig.json
 * (esbuild reads it) and this file (its esbuild flags).
 */
export function isStale() {
  let built;
  try {
    built = statSync(BUNDLE).mtimeMs;
  } catch {
    return true;
  }
  const newer = (path) => {
    try {
      return statSync(path).mtimeMs > built;
    } catch {
      return false;
    }
  };
  const anyTsNewer = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory() ? anyTsNewer(p) : e.name.endsWith(".ts") && newer(p)) return true;
    }
    return false;
  };
  return newer(SELF) || newer(join(ROOT, "node_modules/.package-lock.json")) || newer(join(ROOT, "tsconfig.json")) || anyTsNewer(join(ROOT, "provider/src")) || anyTsNewer(join(ROOT, "protos/gen"));
}

/** Builds the bundle; true on success. esbuild's messages go to stderr. */
export function build() {
  mkdirSync(OUT_DIR, { recursive: true });
  const started = join(OUT_DIR, `.started.${process.pid}`);
  const tmp = join(OUT_DIR, `main.${process.pid}.cjs`);
  writeFileSync(started, "");
  try {
    // --external:@grpc/proto-loader: grpc-js requires it only when channelz or ORCA is used (never here); left out,
    // it keeps protobufjs (a quarter of the size) out of the file, and resolves from node_modules if ever needed.
    const r = spawnSync(
      join(ROOT, "node_modules/esbuild/bin/esbuild"),
      [ENTRY, "--bundle", "--platform=node", "--format=cjs", "--target=node20", "--external:@grpc/proto-loader", "--log-level=warning", `--outfile=${tmp}`],
      { stdio: ["ignore", 2, 2] },
    );
    if (r.status !== 0) {
      process.stderr.write(`build-provider: esbuild ${r.error ? `could not run (${r.error.message}; run npm ci)` : "failed"}\n`);
      rmSync(BUNDLE, { force: true });
      return false;
    }
    // The bundle is dated a second before the build started (file times are coarse), so a source saved while esbuild
    // ran is newer than it and the next start builds again.
    const t = new Date(statSync(started).mtimeMs - 1000);
    utimesSync(tmp, t, t);
    renameSync(tmp, BUNDLE);
    rmSync(join(OUT_DIR, "main.mjs"), { force: true }); // the ESM bundle earlier versions of the wrapper made
    return true;
  } finally {
    rmSync(started, { force: true });
    rmSync(tmp, { force: true });
  }
}

if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === SELF) {
  if (process.argv.includes("--if-stale") && !isStale()) process.exit(0);
  process.exit(build() ? 0 : 1);
}
