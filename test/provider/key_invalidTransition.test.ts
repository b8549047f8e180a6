// Acceptance: a state change NIST SP 800-57 forbids fails at PLAN time, with the diagnostic on the `state` attribute
// (Terraform quotes the `state = ...` line of the configuration), and nothing at the daemon changes.
import test from "ava";
import { KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc } from "./acc-harness.js";

const enabled = accEnabled("key_invalidTransition.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const getKey = async (name: string) => (await daemonCall<{ name: string }, GetKeyResponse>(acc.clients.keys, acc.clients.keys.getKey, { name })).key!;
const config = (state: string) => `${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "nist"
}
resource "mcko_key" "k" {
  vault     = mcko_vault.v.id
  name      = "k"
  algorithm = "RSA_2048"
  state     = "${state}"
}
`;

accTest("key_invalidTransition: DESTROYED → ACTIVE is a plan-time error on state; the key stays DESTROYED", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config("DESTROYED"));
  await applyClean(t, ws, acc);
  const before = await getKey("vaults/nist/keys/k");
  t.is(before.state, KeyState.KEY_STATE_DESTROYED);

  ws.writeConfig(config("ACTIVE"));
  const plan = await planExit(t, ws, 1);
  const out = plan.stdout + plan.stderr;
  const flat = out.replace(/\s+/g, " "); // Terraform wraps diagnostic text
  t.regex(out, /Error: Key state transition not allowed/);
  t.regex(out, /with mcko_key\.k,/);
  t.regex(out, /state\s+= "ACTIVE"/, "Terraform points at the state attribute in the configuration");
  t.regex(flat, /from DESTROYED to ACTIVE \(KEY_STATE_TRANSITION_NOT_ALLOWED\)/);
  t.notRegex(out, /\n\s+at .*\.(ts|js|mjs):\d+/, "no stack trace");

  const apply = await ws.run("apply", "-no-color", "-input=false", "-auto-approve");
  t.is(apply.code, 1, show(apply));
  const after = await getKey("vaults/nist/keys/k");
  t.is(after.state, KeyState.KEY_STATE_DESTROYED);
  t.is(after.etag, before.etag, "nothing stored changed");

  // Going back to the configuration that matches is clean; destroy deletes the metadata of the DESTROYED key.
  ws.writeConfig(config("DESTROYED"));
  await planExit(t, ws, 0);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});

accTest("key_invalidTransition: DEACTIVATED → SUSPENDED and an unknown state name fail at plan with the path on state", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config("DEACTIVATED").replace(`name = "nist"`, `name = "nist2"`));
  await applyClean(t, ws, acc);
  ws.writeConfig(config("SUSPENDED").replace(`name = "nist"`, `name = "nist2"`));
  const plan = await planExit(t, ws, 1);
  t.regex((plan.stdout + plan.stderr).replace(/\s+/g, " "), /From DEACTIVATED the key can go to: COMPROMISED, DESTROYED/);
  ws.writeConfig(config("ENABLED").replace(`name = "nist"`, `name = "nist2"`));
  const bad = await planExit(t, ws, 1);
  t.regex(bad.stdout + bad.stderr, /Error: Invalid state[\s\S]*state\s+= "ENABLED"/);
  t.is((await getKey("vaults/nist2/keys/k")).state, KeyState.KEY_STATE_DEACTIVATED);
  ws.writeConfig(config("DEACTIVATED").replace(`name = "nist"`, `name = "nist2"`));
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});
