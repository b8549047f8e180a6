// Smoke test of the plugin layer with the real terraform binary (1.11.4 on these machines): apply, state rm + import,
// a clean `plan -detailed-exitcode`, drift after an out-of-band change (exit 2), destroy — through the fixture provider over
// dev_overrides. Plus the MCKO provider itself with its daemon down. Skipped loudly when terraform is missing.
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { REPO_ROOT, TEST_PROVIDER_MAIN, terraformClientCert } from "../support/tf-plugin-launcher.js";
import { makeWorkspace, type TfResult, terraformOnPath } from "../support/tf-terraform.js";

const terraform = terraformOnPath();
if (!terraform) console.log("SKIPPED: terraform not on PATH — the real-Terraform smoke tests of the provider plugin layer did not run");
const tfTest = terraform ? test.serial : test.skip;

const show = (r: TfResult): string => `exit ${r.code}\n${r.stdout}\n${r.stderr}`;

tfTest("terraform apply / import / plan -detailed-exitcode / drift / destroy with the fixture provider", async (t) => {
  const ws = makeWorkspace({ source: "example.com/mcko/tftest", type: "tftest", entry: TEST_PROVIDER_MAIN });
  t.teardown(() => ws.cleanup());
  const store = join(ws.dir, "store.json");
  ws.writeConfig(`
terraform {
  required_providers {
    tftest = { source = "example.com/mcko/tftest" }
  }
}
provider "tftest" {
  store_path = ${JSON.stringify(store)}
}
resource "tftest_thing" "a" {
  name        = "alpha"
  size        = 2
  tags        = { env = "test" }
  anything    = { x = 1, y = ["z"] }
  password_wo = "s3cret"
  rule {
    port = 443
  }
}
data "tftest_echo" "e" {
  input = tftest_thing.a.id
}
output "id" {
  value = tftest_thing.a.id
}
output "echo" {
  value = data.tftest_echo.e.output
}
output "saw_password" {
  value = tftest_thing.a.saw_password
}
`);
  const apply = await ws.run("apply", "-no-color", "-input=false", "-auto-approve");
  t.is(apply.code, 0, show(apply));
  t.regex(apply.stdout, /Plan: 1 to add, 0 to change, 0 to destroy/);
  t.regex(apply.stdout, /Apply complete! Resources: 1 added/);
  t.regex(apply.stdout, /echo = "THING-ALPHA"/);
  t.regex(apply.stdout, /saw_password = true/);
  const stateText = readFileSync(join(ws.dir, "terraform.tfstate"), "utf8");
  t.false(stateText.includes("s3cret"), "write-only value never reaches the state");

  // Forget it, import it back by id (ImportResourceState then ReadResource), and the plan is clean again.
  const rm = await ws.run("state", "rm", "-no-color", "tftest_thing.a");
  t.is(rm.code, 0, show(rm));
  const imp = await ws.run("import", "-no-color", "-input=false", "tftest_thing.a", "thing-alpha");
  t.is(imp.code, 0, show(imp));
  t.regex(imp.stdout, /Import successful/);

  const clean = await ws.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
  t.is(clean.code, 0, show(clean));

  // Changed out of band: refresh reads the new size, the plan wants it back (exit code 2).
  const kept = JSON.parse(readFileSync(store, "utf8")) as Record<string, { size: number }>;
  (kept["thing-alpha"] as { size: number }).size = 1;
  writeFileSync(store, JSON.stringify(kept));
  const drift = await ws.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
  t.is(drift.code, 2, show(drift));
  t.regex(drift.stdout, /0 to add, 1 to change, 0 to destroy/);

  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  t.regex(destroy.stdout, /Destroy complete! Resources: 1 destroyed/);
  t.deepEqual(JSON.parse(readFileSync(store, "utf8")), {});
});

tfTest("terraform with the MCKO provider and its daemon down: an error naming the address, no stack trace", async (t) => {
  const ws = makeWorkspace({ source: "example.com/mcko/mcko", type: "mcko", entry: join(REPO_ROOT, "test/support/tf-mcko-provider-main.ts") });
  t.teardown(() => ws.cleanup());
  const c = terraformClientCert();
  ws.writeConfig(`
terraform {
  required_providers {
    mcko = { source = "example.com/mcko/mcko" }
  }
}
provider "mcko" {
  address     = "127.0.0.1:1"
  ca_cert     = ${JSON.stringify(c.certPem)}
  client_cert = ${JSON.stringify(c.certPem)}
  client_key  = ${JSON.stringify(c.keyPem)}
}
data "mcko_probe" "p" {}
`);
  const r = await ws.run("plan", "-no-color", "-input=false");
  const all = r.stdout + r.stderr;
  t.is(r.code, 1, show(r));
  t.regex(all, /cannot reach the MCKO daemon at 127\.0\.0\.1:1/);
  t.notRegex(all, /\n\s+at .*\.(ts|js):\d+/);
});
