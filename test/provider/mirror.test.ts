/**
 * Packaging: provider/bin/make-mirror lays out a filesystem mirror from which the real `terraform init` installs
 * the MCKO provider (with a lock file, offline), and `terraform validate` then runs it.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { REPO } from "../support/daemon.js";
import { terraformOnPath } from "../support/tf-terraform.js";

const run = promisify(execFile);
const terraform = terraformOnPath();
if (!terraform) console.log("SKIPPED: terraform not on PATH — the filesystem-mirror install test of the provider did not run");
const tfTest = terraform ? test.serial : test.skip;

tfTest("terraform init installs the provider from the mirror; validate runs it and reports bad input with its path", async (t) => {
  t.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), "mcko-mirror-"));
  try {
    const made = await run(join(REPO, "provider/bin/make-mirror"), [join(dir, "mirror")]);
    t.regex(made.stdout, /registry\.terraform\.io\/mcko\/mcko\/\d+\.\d+\.\d+\/linux_amd64\/terraform-provider-mcko_v/);
    writeFileSync(
      join(dir, "cli.tfrc"),
      `provider_installation {\n  filesystem_mirror {\n    path    = "${join(dir, "mirror")}"\n    include = ["registry.terraform.io/mcko/*"]\n  }\n  direct {\n    exclude = ["registry.terraform.io/mcko/*"]\n  }\n}\n`,
    );
    const work = join(dir, "work");
    const env = { ...process.env, TF_CLI_CONFIG_FILE: join(dir, "cli.tfrc"), CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" };
    const tf = (cwd: string, ...args: string[]) =>
      run(terraform!, args, { cwd, env }).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
    const { mkdirSync } = await import("node:fs");
    mkdirSync(work);
    writeFileSync(
      join(work, "main.tf"),
      `terraform {\n  required_providers {\n    mcko = { source = "registry.terraform.io/mcko/mcko" }\n  }\n}\nprovider "mcko" {}\nresource "mcko_vault" "v" {\n  name = "mirror-test"\n}\n`,
    );
    const init = await tf(work, "init", "-input=false", "-no-color");
    t.is(init.code, 0, init.out);
    t.regex(init.out, /Installed mcko\/mcko v\d+\.\d+\.\d+ \(unauthenticated\)/);
    t.true(existsSync(join(work, ".terraform.lock.hcl")));
    t.regex(readFileSync(join(work, ".terraform.lock.hcl"), "utf8"), /provider "registry\.terraform\.io\/mcko\/mcko"/);
    const ok = await tf(work, "validate", "-no-color");
    t.is(ok.code, 0, ok.out);
    writeFileSync(join(work, "main.tf"), readFileSync(join(work, "main.tf"), "utf8").replace('name = "mirror-test"', 'name = "Not A Valid Name"'));
    const bad = await tf(work, "validate", "-no-color");
    t.not(bad.code, 0);
    t.regex(bad.out, /name/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
