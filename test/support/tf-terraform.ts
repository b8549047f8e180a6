// Runs the real `terraform` binary against a provider through dev_overrides, in a temporary working directory with
// its own CLI config (TF_CLI_CONFIG_FILE: the machines' own points at a missing file), offline-safe.
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { REPO_ROOT, TSX_LOADER } from "./tf-plugin-launcher.js";

/** The terraform executable on PATH, or undefined. */
export function terraformOnPath(): string | undefined {
  try {
    return execFileSync("sh", ["-c", "command -v terraform"], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface TfResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface TfWorkspace {
  readonly dir: string;
  /** Writes main.tf. */
  writeConfig(hcl: string): void;
  run(...args: string[]): Promise<TfResult>;
  cleanup(): void;
}

export interface WorkspaceOptions {
  /** Fully qualified source address, e.g. example.com/mcko/tftest. */
  readonly source: string;
  /** Provider type, e.g. tftest (the executable is terraform-provider-<type>). */
  readonly type: string;
  /** A .ts entry point (run with node + tsx) or an executable to exec. */
  readonly entry: string;
  readonly env?: Readonly<Record<string, string>>;
}

/** A working directory with a dev_overrides CLI config pointing at a wrapper script for the provider. */
export function makeWorkspace(opts: WorkspaceOptions): TfWorkspace {
  const dir = mkdtempSync(join(tmpdir(), "tf-ws-"));
  const pluginDir = join(dir, "plugin");
  const work = join(dir, "work");
  execFileSync("mkdir", ["-p", pluginDir, work]);
  const exe = join(pluginDir, `terraform-provider-${opts.type}`);
  let target: string;
  if (!opts.entry.endsWith(".ts")) target = `exec ${sh(opts.entry)} "$@"`;
  else {
    // Terraform starts 3-4 provider processes per command; a bundle saves tsx's start-up in each (as the real wrapper does).
    const bundle = bundleEntry(opts.entry, join(pluginDir, "provider.mjs"));
    target = bundle
      ? `exec ${sh(process.execPath)} ${sh(bundle)} "$@"`
      : `exec ${sh(process.execPath)} --disable-warning=ExperimentalWarning --import ${sh(TSX_LOADER)} ${sh(opts.entry)} "$@"`;
  }
  writeFileSync(exe, `#!/bin/sh\n${target}\n`);
  chmodSync(exe, 0o755);
  const cliConfig = join(dir, "terraformrc");
  writeFileSync(
    cliConfig,
    `provider_installation {\n  dev_overrides {\n    ${JSON.stringify(opts.source)} = ${JSON.stringify(pluginDir)}\n  }\n  direct {}\n}\n`,
  );
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("TF_") || k === "NODE_OPTIONS") delete env[k];
  Object.assign(env, {
    TF_CLI_CONFIG_FILE: cliConfig,
    CHECKPOINT_DISABLE: "1",
    TF_IN_AUTOMATION: "1",
    TF_INPUT: "0",
    ...opts.env,
  });
  return {
    dir: work,
    writeConfig: (hcl) => writeFileSync(join(work, "main.tf"), hcl),
    run: (...args) =>
      new Promise((resolve, reject) => {
        const p = spawn("terraform", [...args], { cwd: work, env, stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        let stderr = "";
        p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
        p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
        p.on("error", reject);
        p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      }),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Bundles a .ts entry with the repository's esbuild (a tsx dependency) into one self-contained ESM file. */
export function bundleEntry(entry: string, outfile: string): string | undefined {
  const esbuild = join(REPO_ROOT, "node_modules/esbuild/bin/esbuild");
  if (!existsSync(esbuild)) return undefined;
  execFileSync(esbuild, [
    entry,
    "--bundle",
    "--platform=node",
    "--format=esm",
    "--target=node20",
    "--log-level=error",
    "--banner:js=import { createRequire as __tfCreateRequire } from 'node:module'; const require = __tfCreateRequire(import.meta.url);",
    `--outfile=${outfile}`,
  ]);
  return outfile;
}

function sh(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export { REPO_ROOT };
