// Acceptance: mcko_vault with the real terraform and the real daemon — create, update in place (UpdateVault), import
// by name, force-new on a rename, destroy; a clean `plan -detailed-exitcode` after every apply; the daemon checked
// directly after destroy.
import test from "ava";
import { status } from "@grpc/grpc-js";
import type { GetVaultResponse } from "../../protos/gen/mcko/v1/vault_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc, stateAttributes } from "./acc-harness.js";

const enabled = accEnabled("vault_basic.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const getVault = (name: string) => daemonCall<{ name: string }, GetVaultResponse>(acc.clients.vaults, acc.clients.vaults.getVault, { name });
const config = (name: string, display: string | null) => `${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "${name}"
  ${display === null ? "" : `display_name = "${display}"`}
  description = "acceptance"
}
`;

// One vault through two serial steps (kept apart so no single test runs long on a loaded machine).
let ws: ReturnType<Acc["workspace"]>;

accTest("vault_basic: create, update in place, clear an optional field, import by name", async (t) => {
  ws = acc.workspace();
  ws.writeConfig(config("acc-basic", "First"));
  const created = await applyClean(t, ws, acc);
  t.regex(created.stdout, /1 added, 0 changed, 0 destroyed/);
  t.is(stateAttributes(ws, "mcko_vault.v")?.["id"], "vaults/acc-basic");
  t.is((await getVault("vaults/acc-basic")).vault?.displayName, "First");

  ws.writeConfig(config("acc-basic", "Second"));
  const updated = await applyClean(t, ws, acc);
  t.regex(updated.stdout, /0 added, 1 changed, 0 destroyed/);
  t.is((await getVault("vaults/acc-basic")).vault?.displayName, "Second");

  // Removing display_name clears it at the daemon; the state keeps null (no perpetual diff against "").
  ws.writeConfig(config("acc-basic", null));
  await applyClean(t, ws, acc);
  t.is((await getVault("vaults/acc-basic")).vault?.displayName, "");

  const rm = await ws.run("state", "rm", "-no-color", "mcko_vault.v");
  t.is(rm.code, 0, show(rm));
  const imp = await ws.run("import", "-no-color", "-input=false", "mcko_vault.v", "vaults/acc-basic");
  t.is(imp.code, 0, show(imp));
  await planExit(t, ws, 0);
});

accTest("vault_basic: a rename replaces the vault; destroy cleans up at the daemon", async (t) => {
  ws.writeConfig(config("acc-renamed", null));
  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /must be replaced/);
  t.regex(plan.stdout, /# forces replacement/);
  const replaced = await applyClean(t, ws, acc);
  t.regex(replaced.stdout, /1 added, 0 changed, 1 destroyed/);
  const gone = await getVault("vaults/acc-basic").catch((e: { code: number }) => e);
  t.is((gone as { code: number }).code, status.NOT_FOUND);

  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  const after = await getVault("vaults/acc-renamed").catch((e: { code: number }) => e);
  t.is((after as { code: number }).code, status.NOT_FOUND, "destroy removed the vault at the daemon");
});
