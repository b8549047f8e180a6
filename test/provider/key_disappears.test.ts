// Acceptance: a key deleted out of band (destroyed and deleted through the API) leaves the state on refresh
// (NOT_FOUND on read), so the plan wants to create it again (exit 2); apply does. A key whose vault vanished the
// same way is recreated with it. Destroy after an out-of-band delete succeeds (NOT_FOUND on delete is success).
import test from "ava";
import { KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc } from "./acc-harness.js";

const enabled = accEnabled("key_disappears.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const NAME = "vaults/gone/keys/k";
const call = <Res>(fn: (req: never, cb: (e: Error | null, r: Res) => void) => unknown, req: object) => daemonCall<object, Res>(acc.clients.keys, fn as never, req);
const destroyOutOfBand = async (): Promise<void> => {
  for (const s of [KeyState.KEY_STATE_DEACTIVATED, KeyState.KEY_STATE_DESTROYED]) await call(acc.clients.keys.setKeyState, { name: NAME, state: s, etag: "", reason: "" });
  await call(acc.clients.keys.deleteKey, { name: NAME, etag: "" });
};

accTest("key_disappears: deleted out of band → plan exit 2 (create), apply recreates, destroy after another delete succeeds", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(`${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "gone"
}
resource "mcko_key" "k" {
  vault     = mcko_vault.v.id
  name      = "k"
  algorithm = "HMAC_SHA512"
}
`);
  await applyClean(t, ws, acc);
  const first = await call<GetKeyResponse>(acc.clients.keys.getKey, { name: NAME });
  await destroyOutOfBand();

  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /# mcko_key\.k will be created/);
  t.regex(plan.stdout, /1 to add, 0 to change, 0 to destroy/);
  await applyClean(t, ws, acc);
  const again = await call<GetKeyResponse>(acc.clients.keys.getKey, { name: NAME });
  t.is(again.key?.state, KeyState.KEY_STATE_ACTIVE);
  t.not(again.key?.versions[0]?.kcv, first.key?.versions[0]?.kcv, "a new key, new material");

  await destroyOutOfBand();
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  t.regex(destroy.stdout, /Resources: [12] destroyed/);
});
