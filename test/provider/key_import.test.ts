// Acceptance: import of every resource type by its MCKO name. A vault and a key made through the API (not by
// Terraform) are adopted with `terraform import` (mcko_vault by `vaults/v`, mcko_key by `vaults/v/keys/k`), after
// which the matching configuration plans clean; a Terraform-made pair survives `state rm` + import the same way.
// A malformed import id is a diagnostic, not a crash.
import test from "ava";
import { Key, KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import { Vault } from "../../protos/gen/mcko/v1/vault.js";
import { type Acc, accEnabled, applyClean, checkState, daemonCall, planExit, PROVIDER_HEADER, show, startAcc, stateAttributes } from "./acc-harness.js";

const enabled = accEnabled("key_import.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

accTest("key_import: adopt a vault and keys made through the API; the matching config plans clean", async (t) => {
  await daemonCall(acc.clients.vaults, acc.clients.vaults.createVault, { vaultId: "adopt", vault: Vault.fromPartial({ displayName: "Adopted" }), requestId: "" });
  await daemonCall(acc.clients.keys, acc.clients.keys.createKey, {
    parent: "vaults/adopt",
    keyId: "signing",
    key: Key.fromPartial({ algorithm: KeyAlgorithm.KEY_ALGORITHM_EC_P384, labels: { env: "prod" }, rotationPeriod: { seconds: 7200n, nanos: 0 } }),
    initialState: KeyState.KEY_STATE_ACTIVE,
    requestId: "",
  });
  await daemonCall(acc.clients.keys, acc.clients.keys.setKeyState, { name: "vaults/adopt/keys/signing", state: KeyState.KEY_STATE_SUSPENDED, etag: "", reason: "" });

  const ws = acc.workspace();
  ws.writeConfig(`${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name         = "adopt"
  display_name = "Adopted"
}
resource "mcko_key" "k" {
  vault           = mcko_vault.v.id
  name            = "signing"
  algorithm       = "EC_P384"
  state           = "SUSPENDED"
  rotation_period = "2h"
  labels          = { env = "prod" }
}
`);
  const bad = await ws.run("import", "-no-color", "-input=false", "mcko_key.k", "signing");
  t.is(bad.code, 1, show(bad));
  t.regex(bad.stdout + bad.stderr, /Invalid import id[\s\S]*vaults\/\{vault\}\/keys\/\{key\}/);

  for (const [addr, id] of [["mcko_vault.v", "vaults/adopt"], ["mcko_key.k", "vaults/adopt/keys/signing"]] as const) {
    const imp = await ws.run("import", "-no-color", "-input=false", addr, id);
    t.is(imp.code, 0, show(imp));
    t.regex(imp.stdout, /Import successful/);
  }
  await planExit(t, ws, 0);
  checkState(t, ws, acc);
  const k = stateAttributes(ws, "mcko_key.k")!;
  t.is(k["state"], "SUSPENDED");
  t.is(k["rotation_period"], "2h");
  t.regex(String(k["kcv"]), /^[0-9a-f]{64}$/);

  // Terraform now owns them: an update applies, and the imported pair destroys cleanly.
  await applyClean(t, ws, acc);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  t.regex(destroy.stdout, /Resources: 2 destroyed/);
});

accTest("key_import: a Terraform-made vault and key survive state rm + import by name", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(`${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name        = "reimport"
  description = "round trip"
}
resource "mcko_key" "k" {
  vault             = mcko_vault.v.id
  name              = "k"
  algorithm         = "AES_192"
  activation_time   = "2026-01-01T00:00:00+00:00"
  deactivation_time = "2099-01-01T00:00:00Z"
}
`);
  await applyClean(t, ws, acc);
  for (const addr of ["mcko_key.k", "mcko_vault.v"]) {
    const rm = await ws.run("state", "rm", "-no-color", addr);
    t.is(rm.code, 0, show(rm));
  }
  for (const [addr, id] of [["mcko_vault.v", "reimport"], ["mcko_key.k", "vaults/reimport/keys/k"]] as const) {
    const imp = await ws.run("import", "-no-color", "-input=false", addr, id);
    t.is(imp.code, 0, show(imp));
  }
  // The daemon spells times its own way; the configured spelling is no change.
  await planExit(t, ws, 0);
  checkState(t, ws, acc);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});
