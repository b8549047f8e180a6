// Acceptance: mcko_key in-place updates with the real terraform and the real daemon. Labels and rotation_period go
// through UpdateKey (only the changed fields in the update_mask), state through SetKeyState: ACTIVE → SUSPENDED →
// ACTIVE, PRE_ACTIVATION → ACTIVE (the daemon stamps activation_time), and ACTIVE → DESTROYED applied in order
// through DEACTIVATED. Every step is an update (never a replacement) followed by an empty `plan -detailed-exitcode`.
import test from "ava";
import { KeyState } from "../../protos/gen/mcko/v1/key.js";
import type { GetKeyResponse } from "../../protos/gen/mcko/v1/key_service.js";
import type { ListAuditEventsRequest, ListAuditEventsResponse } from "../../protos/gen/mcko/v1/audit_service.js";
import { type Acc, accEnabled, applyClean, daemonCall, planExit, PROVIDER_HEADER, show, startAcc, stateAttributes } from "./acc-harness.js";

const enabled = accEnabled("key_update.test.ts");
const accTest = enabled ? test.serial : test.skip;
let acc: Acc;
test.before(async () => {
  if (enabled) acc = await startAcc();
});
test.after.always(async () => {
  await acc?.close();
});

const getKey = async (name: string) => (await daemonCall<{ name: string }, GetKeyResponse>(acc.clients.keys, acc.clients.keys.getKey, { name })).key!;

const config = (extra: string) => `${PROVIDER_HEADER}
resource "mcko_vault" "v" {
  name = "upd"
}
resource "mcko_key" "k" {
  vault     = mcko_vault.v.id
  name      = "k1"
  algorithm = "AES_128"
  ${extra}
}
`;

// One key through three serial steps (kept apart so no single test runs long on a loaded machine).
let ws: ReturnType<Acc["workspace"]>;
let kcv: string | undefined;

accTest("key_update: labels and rotation_period change in place through UpdateKey", async (t) => {
  ws = acc.workspace();
  ws.writeConfig(config(`labels = { env = "dev" }`));
  await applyClean(t, ws, acc);
  const first = await getKey("vaults/upd/keys/k1");
  kcv = first.versions[0]?.kcv;

  ws.writeConfig(config(`labels = { env = "prod", tier = "1" }\n  rotation_period = "1440m"`));
  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /~ update in-place/);
  t.notRegex(plan.stdout, /must be replaced/);
  const upd = await applyClean(t, ws, acc);
  t.regex(upd.stdout, /0 added, 1 changed, 0 destroyed/);
  const k = await getKey("vaults/upd/keys/k1");
  t.deepEqual(k.labels, { env: "prod", tier: "1" });
  t.is(k.rotationPeriod?.seconds, 86400n);
  t.is(stateAttributes(ws, "mcko_key.k")?.["rotation_period"], "1440m", "the configured spelling is kept");
  t.is(k.versions[0]?.kcv, kcv, "same key, same material");

  // The same period spelled differently is no change.
  ws.writeConfig(config(`labels = { env = "prod", tier = "1" }\n  rotation_period = "24h"`));
  await planExit(t, ws, 0);
});

accTest("key_update: state ACTIVE → SUSPENDED → ACTIVE in place through SetKeyState", async (t) => {
  ws.writeConfig(config(`labels = { env = "prod", tier = "1" }\n  state = "SUSPENDED"`));
  await applyClean(t, ws, acc);
  const k = await getKey("vaults/upd/keys/k1");
  t.is(k.state, KeyState.KEY_STATE_SUSPENDED);
  t.is(k.rotationPeriod, undefined, "rotation_period removed from config: scheduled rotation off");

  ws.writeConfig(config(`labels = { env = "prod", tier = "1" }`));
  await applyClean(t, ws, acc);
  t.is((await getKey("vaults/upd/keys/k1")).state, KeyState.KEY_STATE_ACTIVE, "state unset means ACTIVE");
});

accTest("key_update: ACTIVE → DESTROYED is applied in NIST order through DEACTIVATED", async (t) => {
  // ACTIVE → DESTROYED is not one NIST step: applied as DEACTIVATED, then DESTROYED; the KCVs become empty.
  ws.writeConfig(config(`state = "DESTROYED"`));
  const destroyPlan = await planExit(t, ws, 2);
  t.regex(destroyPlan.stdout, /~ state\s+= "ACTIVE" -> "DESTROYED"/);
  await applyClean(t, ws, acc);
  const k = await getKey("vaults/upd/keys/k1");
  t.is(k.state, KeyState.KEY_STATE_DESTROYED);
  t.truthy(k.deactivationTime, "went through DEACTIVATED");
  t.is(stateAttributes(ws, "mcko_key.k")?.["kcv"], "");
  const events = await daemonCall<ListAuditEventsRequest, ListAuditEventsResponse>(acc.clients.audit, acc.clients.audit.listAuditEvents, {
    parent: "vaults/upd",
    pageSize: 1000,
    pageToken: "",
    filter: "",
  });
  const setState = events.auditEvents.filter((e) => e.method.endsWith("SetKeyState") && e.result === "OK").length;
  t.true(setState >= 4, `SUSPENDED, ACTIVE, DEACTIVATED, DESTROYED: one SetKeyState each (saw ${setState})`);

  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});

accTest("key_update: PRE_ACTIVATION → ACTIVE lets the daemon stamp activation_time", async (t) => {
  const ws = acc.workspace();
  ws.writeConfig(config(`state = "PRE_ACTIVATION"`).replace(`name = "upd"`, `name = "upd2"`));
  await applyClean(t, ws, acc);
  t.is(stateAttributes(ws, "mcko_key.k")?.["activation_time"], null);
  ws.writeConfig(config(`state = "ACTIVE"`).replace(`name = "upd"`, `name = "upd2"`));
  const plan = await planExit(t, ws, 2);
  t.regex(plan.stdout, /activation_time\s+= \(known after apply\)/);
  await applyClean(t, ws, acc);
  const k = await getKey("vaults/upd2/keys/k1");
  t.is(k.state, KeyState.KEY_STATE_ACTIVE);
  t.truthy(stateAttributes(ws, "mcko_key.k")?.["activation_time"]);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});

accTest("key_update: COMPROMISED, then DESTROYED — the daemon says DESTROYED_COMPROMISED and the plan stays empty", async (t) => {
  const ws = acc.workspace();
  const cfg = (state: string) => config(`state = "${state}"`).replace(`name = "upd"`, `name = "upd3"`);
  ws.writeConfig(cfg("COMPROMISED"));
  await applyClean(t, ws, acc);
  t.is((await getKey("vaults/upd3/keys/k1")).state, KeyState.KEY_STATE_COMPROMISED);
  ws.writeConfig(cfg("DESTROYED"));
  await applyClean(t, ws, acc);
  t.is((await getKey("vaults/upd3/keys/k1")).state, KeyState.KEY_STATE_DESTROYED_COMPROMISED);
  t.is(stateAttributes(ws, "mcko_key.k")?.["state"], "DESTROYED", "apply records the configured word");
  const refresh = await ws.run("apply", "-refresh-only", "-no-color", "-input=false", "-auto-approve");
  t.is(refresh.code, 0, show(refresh));
  t.is(stateAttributes(ws, "mcko_key.k")?.["state"], "DESTROYED_COMPROMISED", "refresh records what the daemon says");
  await planExit(t, ws, 0);
  const destroy = await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
  t.is(destroy.code, 0, show(destroy));
});
