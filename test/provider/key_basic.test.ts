// Acceptance: mcko_key basics with the real terraform and the real daemon. examples/terraform applies as written (a
// vault, two keys, both data sources), a second plan is empty, the daemon holds what the configuration says, and
// destroy leaves nothing behind at the daemon (keys destroyed and deleted, vault deleted).
import { cpSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import { status } from "@grpc/grpc-js";
import { KeyAlgorithm, KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse, ListKeysRequest, ListKeysResponse } from "../../protos/gen/mcko/v1/key_service.js";
import { type Acc, accEnabled, applyClean, checkState, daemonCall, EXAMPLES_DIR, PROVIDER_HEADER, show, startAcc, stateAttributes } from "./acc-harness.js";

const enabled = accEnabled("key_basic.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const getKey = (name: string) => daemonCall<{ name: string }, GetKeyResponse>(acc.clients.keys, acc.clients.keys.getKey, { name });
const codeOf = (p: Promise<unknown>) => p.then(() => 0, (e: { code: number }) => e.code);

accTest("key_basic: examples/terraform applies, plans clean, matches the daemon, and destroys cleanly", async (t) => {
  const ws = acc.workspace();
  cpSync(join(EXAMPLES_DIR, "main.tf"), join(ws.dir, "main.tf"));
  const apply = await applyClean(t, ws, acc);
  t.regex(apply.stdout, /Resources: 3 added, 0 changed, 0 destroyed/);
  t.regex(apply.stdout, /data_key_id = "vaults\/payments\/keys\/data-key"/);
  t.regex(apply.stdout, /data_key_kcv = "[0-9a-f]{6}"/);
  t.regex(apply.stdout, /prod_active_keys = tolist\(\[\s*"vaults\/payments\/keys\/data-key",\s*\]\)/);

  const data = (await getKey("vaults/payments/keys/data-key")).key!;
  t.is(data.algorithm, KeyAlgorithm.KEY_ALGORITHM_AES_256);
  t.is(data.state, KeyState.KEY_STATE_ACTIVE);
  t.deepEqual(data.labels, { env: "prod", team: "payments" });
  t.is(data.rotationPeriod?.seconds, 2592000n);
  const legacy = (await getKey("vaults/payments/keys/legacy-signing")).key!;
  t.is(legacy.state, KeyState.KEY_STATE_DEACTIVATED, "created ACTIVE, then moved to the configured state");

  const attrs = stateAttributes(ws, "mcko_key.legacy_signing")!;
  t.is(attrs["state"], "DEACTIVATED");
  t.regex(String(attrs["kcv"]), /^[0-9a-f]{64}$/, "EC keys: SHA-256 of the public key");
  t.is((attrs["versions"] as { number: number }[])[0]?.number, 1);
  t.is(attrs["rotation_period"], null);

  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  t.regex(destroy.stdout, /Resources: 3 destroyed/);
  t.is(await codeOf(getKey("vaults/payments/keys/data-key")), status.NOT_FOUND);
  t.is(await codeOf(getKey("vaults/payments/keys/legacy-signing")), status.NOT_FOUND);
  const left = await daemonCall<ListKeysRequest, ListKeysResponse>(acc.clients.keys, acc.clients.keys.listKeys, { parent: "vaults/payments", pageSize: 0, pageToken: "", filter: "" }).catch(
    (e: { code: number }) => e,
  );
  t.is((left as { code: number }).code, status.NOT_FOUND, "the vault is gone too");
  checkState(t, ws, acc);
});

accTest("key_basic: scheduled activation — a future activation_time plans PRE_ACTIVATION, no state written", async (t) => {
  const ws = acc.workspace();
  const future = new Date(Date.now() + 30 * 24 * 3600 * 1000).toISOString().replace(/\.\d+Z$/, "Z");
  ws.writeConfig(`${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "sched"
}
resource "mcko_key" "k" {
  vault           = mcko_vault.v.id
  name            = "later"
  algorithm       = "HMAC_SHA256"
  activation_time = "${future}"
}
`);
  await applyClean(t, ws, acc);
  const k = (await getKey("vaults/sched/keys/later")).key!;
  t.is(k.state, KeyState.KEY_STATE_PRE_ACTIVATION);
  t.is(stateAttributes(ws, "mcko_key.k")?.["state"], "PRE_ACTIVATION");
  t.is(stateAttributes(ws, "mcko_key.k")?.["activation_time"], future);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
  t.is(await codeOf(getKey("vaults/sched/keys/later")), status.NOT_FOUND, "PRE_ACTIVATION → DESTROYED, then deleted");
});
