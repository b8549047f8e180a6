// Acceptance: drift. A key changed out of band through the API (suspended, relabelled) is seen by refresh, so
// `terraform plan -detailed-exitcode` exits 2 and shows the change that repairs it; apply repairs it at the daemon
// and the next plan exits 0. With the daemon unreachable, plan fails with a diagnostic naming the address.
import test from "ava";
import { Key, KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse, SetKeyStateRequest, SetKeyStateResponse, UpdateKeyRequest, UpdateKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc } from "./acc-harness.js";

const enabled = accEnabled("drift_detailedExitcode.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const NAME = "vaults/drift/keys/k";
const getKey = async () => (await daemonCall<{ name: string }, GetKeyResponse>(acc.clients.keys, acc.clients.keys.getKey, { name: NAME })).key!;
const config = (providerBlock = "") => `${PROVIDER_HEADER.replace(`provider "mcko" {}`, `provider "mcko" {${providerBlock}}`)}
resource "mcko_vault" "v" {
  name = "drift"
}
resource "mcko_key" "k" {
  vault     = mcko_vault.v.id
  name      = "k"
  algorithm = "AES_256"
  labels    = { env = "prod" }
}
`;

accTest("drift_detailedExitcode: out-of-band suspend and relabel → exit 2 with the repair; apply repairs; then exit 0", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config());
  await applyClean(t, ws, acc);

  await daemonCall<SetKeyStateRequest, SetKeyStateResponse>(acc.clients.keys, acc.clients.keys.setKeyState, { name: NAME, state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "out of band" });
  await daemonCall<UpdateKeyRequest, UpdateKeyResponse>(acc.clients.keys, acc.clients.keys.updateKey, {
    key: Key.fromPartial({ name: NAME, labels: { env: "test" } }),
    updateMask: ["labels"],
  });

  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /~ state\s+= "SUSPENDED" -> "ACTIVE"/);
  t.regex(plan.stdout, /~ "env" = "test" -> "prod"/);
  t.regex(plan.stdout, /0 to add, 1 to change, 0 to destroy/);

  await applyClean(t, ws, acc);
  const k = await getKey();
  t.is(k.state, KeyState.KEY_STATE_ACTIVE);
  t.deepEqual(k.labels, { env: "prod" });
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});

accTest("drift_detailedExitcode: the daemon unreachable → plan exits 1 with a diagnostic naming the address", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config());
  await applyClean(t, ws, acc);
  ws.writeConfig(config(`\n  address = "127.0.0.1:1"\n`));
  const plan = await planExit(t, ws, 1);
  const out = plan.stdout + plan.stderr;
  t.regex(out, /cannot reach the MCKO daemon at 127\.0\.0\.1:1/);
  t.notRegex(out, /\n\s+at .*\.(ts|js|mjs):\d+/);
  ws.writeConfig(config());
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});
