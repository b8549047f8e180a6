// Plugin-level: plan-time validation of mcko_key's `state`, over the real gRPC socket after a real go-plugin
// handshake with the real provider binary (configured against a real daemon, which plan never calls). Requests are
// encoded, and answers read, with the independent test msgpack codec (test/support/tf-msgpack.ts).
import { join } from "node:path";
import test from "ava";
import type * as pb from "../../protos/gen/tfplugin6/tfplugin6.js";
import { type DaemonProcess, type Home, makeHome, startDaemonProcess } from "../support/daemon.js";
import { map, type Mp, pack, type Read, ReadExt, unpack } from "../support/tf-msgpack.js";
import { type LaunchedPlugin, launchPlugin, MCKO_PROVIDER_BIN } from "../support/tf-plugin-launcher.js";

const dv = (v: Mp): pb.DynamicValue => ({ msgpack: pack(v), json: Buffer.alloc(0) });
const read = (v: pb.DynamicValue | undefined): Read => (v && v.msgpack.length > 0 ? unpack(v.msgpack) : null);
const steps = (ap: pb.AttributePath | undefined): unknown[] => (ap?.steps ?? []).map((s) => s.selector?.value);

type KeyAttrs = Partial<Record<"id" | "vault" | "name" | "algorithm" | "state" | "activation_time" | "deactivation_time" | "rotation_period" | "labels" | "primary_version" | "kcv" | "versions", Mp>>;
/** An mcko_key object as Terraform sends it: every attribute present. */
const key = (o: KeyAttrs): Mp =>
  map({
    activation_time: null,
    algorithm: "AES_256",
    deactivation_time: null,
    id: null,
    kcv: null,
    labels: null,
    name: "k",
    primary_version: null,
    rotation_period: null,
    state: null,
    vault: "vaults/v",
    versions: null,
    ...o,
  });
/** A refreshed prior state in `state`. */
const prior = (state: string, o: KeyAttrs = {}): Mp =>
  key({ id: "vaults/v/keys/k", state, activation_time: "2026-01-01T00:00:00Z", primary_version: 1, kcv: "abcdef", versions: [map({ number: 1, kcv: "abcdef", kcv_method: "enc-zero", create_time: "2026-01-01T00:00:00Z" })], ...o });

let home: Home;
let daemon: DaemonProcess;
let p: LaunchedPlugin;
const rpc = <Req, Resp>(method: string, req: Req): Promise<Resp> => p.call<Req, Resp>(p.provider, method, req);
/** PlanResourceChange the way Terraform asks it on update: proposed = config merged with the prior's computed values. */
const plan = (priorState: Mp | null, config: Mp, proposed: Mp = config) =>
  rpc<pb.PlanResourceChange_Request, pb.PlanResourceChange_Response>("planResourceChange", {
    typeName: "mcko_key",
    priorState: dv(priorState),
    proposedNewState: dv(proposed),
    config: dv(config),
    priorPrivate: Buffer.alloc(0),
    plannedPrivate: Buffer.alloc(0),
  } as pb.PlanResourceChange_Request);

test.before(async () => {
  home = await makeHome();
  daemon = await startDaemonProcess(home);
  p = await launchPlugin({ command: MCKO_PROVIDER_BIN });
  const r = await rpc<pb.ConfigureProvider_Request, pb.ConfigureProvider_Response>("configureProvider", {
    terraformVersion: "1.11.4",
    config: dv(
      map({
        address: daemon.address,
        ca_cert: join(home.dir, "tls/ca.pem"),
        client_cert: join(home.dir, "admin.pem"),
        client_key: join(home.dir, "admin.key"),
        request_timeout: null,
      }),
    ),
  } as pb.ConfigureProvider_Request);
  if (r.diagnostics.length > 0) throw new Error(`configure failed: ${JSON.stringify(r.diagnostics)}`);
});
test.after.always(async () => {
  await p?.close();
  await daemon?.stop();
  home?.cleanup();
});

test("DESTROYED → ACTIVE: an error diagnostic on the state attribute path, naming the rule", async (t) => {
  const r = await plan(prior("DESTROYED"), key({ state: "ACTIVE" }), prior("DESTROYED", { state: "ACTIVE" }));
  t.is(r.diagnostics.length, 1);
  const d = r.diagnostics[0]!;
  t.is(d.severity, 1, "ERROR");
  t.is(d.summary, "Key state transition not allowed");
  t.deepEqual(steps(d.attribute), ["state"]);
  t.regex(d.detail, /from DESTROYED to ACTIVE \(KEY_STATE_TRANSITION_NOT_ALLOWED\)/);
});

test("every forbidden pair of the table is refused at plan; every allowed one plans cleanly", async (t) => {
  const forbidden: [string, string][] = [
    ["DEACTIVATED", "ACTIVE"],
    ["DEACTIVATED", "SUSPENDED"],
    ["COMPROMISED", "ACTIVE"],
    ["ACTIVE", "PRE_ACTIVATION"],
    ["DESTROYED_COMPROMISED", "COMPROMISED"],
    ["ACTIVE", "DESTROYED_COMPROMISED"],
  ];
  for (const [from, to] of forbidden) {
    const r = await plan(prior(from), key({ state: to }), prior(from, { state: to }));
    t.deepEqual(steps(r.diagnostics[0]?.attribute), ["state"], `${from} → ${to}`);
  }
  const allowed: [string, string][] = [
    ["ACTIVE", "SUSPENDED"],
    ["SUSPENDED", "ACTIVE"],
    ["ACTIVE", "COMPROMISED"],
    ["ACTIVE", "DESTROYED"],
    ["SUSPENDED", "DESTROYED"],
    ["DEACTIVATED", "DESTROYED"],
  ];
  for (const [from, to] of allowed) {
    const r = await plan(prior(from), key({ state: to }), prior(from, { state: to }));
    t.deepEqual(r.diagnostics, [], `${from} → ${to}`);
    t.is((read(r.plannedState) as Record<string, Read>)["state"], to);
  }
});

test("ACTIVE → DESTROYED (two steps) plans the KCVs unknown and stamps deactivation_time at apply", async (t) => {
  const r = await plan(prior("ACTIVE"), key({ state: "DESTROYED" }), prior("ACTIVE", { state: "DESTROYED" }));
  t.deepEqual(r.diagnostics, []);
  const planned = read(r.plannedState) as Record<string, Read>;
  t.true(planned["kcv"] instanceof ReadExt);
  t.true(planned["versions"] instanceof ReadExt);
  t.true(planned["deactivation_time"] instanceof ReadExt);
  t.deepEqual(r.requiresReplace, []);
});

test("state unset: ACTIVE by default, so a key suspended out of band plans back to ACTIVE", async (t) => {
  const r = await plan(prior("SUSPENDED"), key({}), prior("SUSPENDED"));
  t.deepEqual(r.diagnostics, []);
  t.is((read(r.plannedState) as Record<string, Read>)["state"], "ACTIVE");
  const same = await plan(prior("ACTIVE"), key({}), prior("ACTIVE"));
  t.deepEqual(read(same.plannedState), read(dv(prior("ACTIVE"))), "nothing to do: the plan is the prior state");
});

test("DESTROYED in config is satisfied by DESTROYED_COMPROMISED (no change planned)", async (t) => {
  const r = await plan(prior("DESTROYED_COMPROMISED"), key({ state: "DESTROYED" }), prior("DESTROYED_COMPROMISED", { state: "DESTROYED" }));
  t.deepEqual(r.diagnostics, []);
  t.is((read(r.plannedState) as Record<string, Read>)["state"], "DESTROYED_COMPROMISED");
});

test("create: a future activation_time with state ACTIVE is refused on state; unset state plans PRE_ACTIVATION", async (t) => {
  const future = new Date(Date.now() + 365 * 24 * 3600 * 1000).toISOString();
  const bad = await plan(null, key({ state: "ACTIVE", activation_time: future }));
  t.is(bad.diagnostics[0]?.summary, "Key cannot be activated before activation_time");
  t.deepEqual(steps(bad.diagnostics[0]?.attribute), ["state"]);
  const ok = await plan(null, key({ activation_time: future }));
  t.deepEqual(ok.diagnostics, []);
  t.is((read(ok.plannedState) as Record<string, Read>)["state"], "PRE_ACTIVATION");
});

test("ValidateResourceConfig: an unknown state name, a bad time, duration and label, each on its path", async (t) => {
  const r = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", {
    typeName: "mcko_key",
    config: dv(key({ state: "ENABLED", activation_time: "tomorrow", rotation_period: "30m", labels: map({ Env: "prod" }) })),
    clientCapabilities: { deferralAllowed: false, writeOnlyAttributesAllowed: true },
  } as pb.ValidateResourceConfig_Request);
  t.deepEqual(
    r.diagnostics.map((d) => steps(d.attribute)),
    [["state"], ["activation_time"], ["rotation_period"], ["labels", "Env"]],
  );
});
