// Acceptance: changing a key's algorithm (or name) replaces it. The plan says "must be replaced" with "# forces
// replacement" on algorithm; the apply destroys the old key at the daemon (DESTROYED, then its metadata deleted) and
// creates the new one; the next plan is empty.
import test from "ava";
import { status } from "@grpc/grpc-js";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc } from "./acc-harness.js";

const enabled = accEnabled("key_forceNew_algorithm.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const getKey = (name: string) => daemonCall<{ name: string }, GetKeyResponse>(acc.clients.keys, acc.clients.keys.getKey, { name });
const config = (name: string, algorithm: string) => `${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "fn"
}
resource "mcko_key" "k" {
  vault     = mcko_vault.v.id
  name      = "${name}"
  algorithm = "${algorithm}"
  labels    = { purpose = "wrap" }
}
`;

accTest("key_forceNew_algorithm: AES_256 → AES_128 and a rename replace the key; the old one is gone at the daemon", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config("k", "AES_256"));
  await applyClean(t, ws, acc);

  ws.writeConfig(config("k-new", "AES_128"));
  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /# mcko_key\.k must be replaced/);
  t.regex(plan.stdout, /~ algorithm\s+= "AES_256" -> "AES_128" # forces replacement/);
  t.regex(plan.stdout, /1 to add, 0 to change, 1 to destroy/);
  await applyClean(t, ws, acc);
  const old = await getKey("vaults/fn/keys/k").catch((e: { code: number }) => e);
  t.is((old as { code: number }).code, status.NOT_FOUND, "the replaced key was destroyed and deleted");
  t.is((await getKey("vaults/fn/keys/k-new")).key?.algorithm, KeyAlgorithm.KEY_ALGORITHM_AES_128);

  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});
