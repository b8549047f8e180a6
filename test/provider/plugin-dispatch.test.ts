// The plugin layer's dispatch over the real gRPC socket, with the fixture provider (test/support/tf-test-provider.ts):
// create/update/delete from null prior/planned state, requires-replace, write-only handling, invariants, thrown errors
// as diagnostics, StopProvider cancelling an in-flight apply, UpgradeResourceState from JSON, import, data sources.
// Requests are encoded, and responses read, with the independent test msgpack codec.
import test from "ava";
import type * as pb from "../../protos/gen/tfplugin6/tfplugin6.js";
import { bin, ext, type Mp, map, mapOf, pack, ReadExt, type Read, unpack, UNKNOWN_MP } from "../support/tf-msgpack.js";
import { type LaunchedPlugin, launchPlugin, TEST_PROVIDER_MAIN } from "../support/tf-plugin-launcher.js";

const dv = (v: Mp): pb.DynamicValue => ({ msgpack: pack(v), json: Buffer.alloc(0) });
const read = (v: pb.DynamicValue | undefined): Read => (v && v.msgpack.length > 0 ? unpack(v.msgpack) : null);
const NO_DV: pb.DynamicValue = { msgpack: Buffer.alloc(0), json: Buffer.alloc(0) };

/** A tftest_thing object as Terraform sends it: every attribute and block present. */
const thing = (o: Partial<Record<"id" | "name" | "size" | "tags" | "anything" | "password_wo" | "saw_password" | "rule", Mp>>): Mp =>
  map({ anything: null, id: null, name: null, password_wo: null, rule: [], saw_password: null, size: null, tags: null, ...o });

let p: LaunchedPlugin;
const rpc = <Req, Resp>(method: string, req: Req): Promise<Resp> => p.call<Req, Resp>(p.provider, method, req);
const plan = (req: Partial<pb.PlanResourceChange_Request>) =>
  rpc<pb.PlanResourceChange_Request, pb.PlanResourceChange_Response>("planResourceChange", {
    typeName: "tftest_thing",
    priorPrivate: Buffer.alloc(0),
    plannedPrivate: Buffer.alloc(0),
    ...req,
  });
const apply = (req: Partial<pb.ApplyResourceChange_Request>) =>
  rpc<pb.ApplyResourceChange_Request, pb.ApplyResourceChange_Response>("applyResourceChange", {
    typeName: "tftest_thing",
    plannedPrivate: Buffer.alloc(0),
    ...req,
  });
const readResource = (state: Mp) =>
  rpc<pb.ReadResource_Request, pb.ReadResource_Response>("readResource", { typeName: "tftest_thing", currentState: dv(state), private: Buffer.alloc(0) });
const stepNames = (ap: pb.AttributePath | undefined): unknown[] => (ap?.steps ?? []).map((s) => s.selector?.value);
const noStack = (d: pb.Diagnostic): boolean => !/\n\s+at |\.ts:\d+/.test(d.summary + d.detail);

test.before(async () => {
  p = await launchPlugin({ command: TEST_PROVIDER_MAIN });
});
test.after.always(async () => {
  await p?.close();
});

test.serial("before ConfigureProvider, resource calls answer 'Provider not configured' (a diagnostic, not a gRPC error)", async (t) => {
  const r = await readResource(thing({ id: "thing-x", name: "x" }));
  t.is(r.diagnostics[0]?.summary, "Provider not configured");
  t.deepEqual(read(r.newState), { anything: null, id: "thing-x", name: "x", password_wo: null, rule: [], saw_password: null, size: null, tags: null });
});

test.serial("schema carries write_only, sensitive, nested list block and the schema version", async (t) => {
  const s = await rpc<pb.GetProviderSchema_Request, pb.GetProviderSchema_Response>("getProviderSchema", {});
  const th = s.resourceSchemas["tftest_thing"];
  t.is(th?.version, 1n);
  const pw = th?.block?.attributes.find((a) => a.name === "password_wo");
  t.true(pw?.writeOnly && pw.sensitive);
  t.is(th?.block?.blockTypes[0]?.typeName, "rule");
  t.is(th?.block?.blockTypes[0]?.nesting, 2);
  t.truthy(s.dataSourceSchemas["tftest_echo"]);
  const md = await rpc<pb.GetMetadata_Request, pb.GetMetadata_Response>("getMetadata", {});
  t.deepEqual(md.resources.map((r) => r.typeName), ["tftest_thing"]);
});

test.serial("ValidateResourceConfig: paths into nested blocks; unknown and refined-unknown configs are fine", async (t) => {
  const bad = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", {
    typeName: "tftest_thing",
    config: dv(thing({ name: "v", size: -1, rule: [map({ port: 80 }), map({ port: 70000 })] })),
  });
  t.is(bad.diagnostics.length, 2);
  t.deepEqual(stepNames(bad.diagnostics[0]?.attribute), ["size"]);
  t.deepEqual(stepNames(bad.diagnostics[1]?.attribute), ["rule", 1n, "port"]);
  const unknown = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", {
    typeName: "tftest_thing",
    config: dv(UNKNOWN_MP),
  });
  t.deepEqual(unknown.diagnostics, []);
  const refined = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", {
    typeName: "tftest_thing",
    config: dv(thing({ name: ext(12, pack(mapOf([[1, false], [2, "dep-"]]))), size: UNKNOWN_MP })),
  });
  t.deepEqual(refined.diagnostics, []);
  const wo = thing({ name: "w", password_wo: "s3cret" });
  const old = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", { typeName: "tftest_thing", config: dv(wo) });
  t.is(old.diagnostics[0]?.summary, "Write-only attribute not allowed", "a client without write-only support is refused");
  t.deepEqual(stepNames(old.diagnostics[0]?.attribute), ["password_wo"]);
  const modern = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", {
    typeName: "tftest_thing",
    config: dv(wo),
    clientCapabilities: { deferralAllowed: false, writeOnlyAttributesAllowed: true, storePlannedPrivate: false, computedBlocksAllowed: false },
  });
  t.deepEqual(modern.diagnostics, []);
  const nope = await rpc<pb.ValidateResourceConfig_Request, pb.ValidateResourceConfig_Response>("validateResourceConfig", { typeName: "tftest_nope", config: NO_DV });
  t.is(nope.diagnostics[0]?.summary, "Unknown resource type");
});

test.serial("ConfigureProvider", async (t) => {
  const r = await rpc<pb.ConfigureProvider_Request, pb.ConfigureProvider_Response>("configureProvider", {
    terraformVersion: "1.11.4",
    config: dv(map({ fail_configure: null, store_path: null })),
  });
  t.deepEqual(r.diagnostics, []);
});

test.serial("create: computed attributes planned unknown, write-only null; apply fills them; private flows through", async (t) => {
  const config = thing({ name: "a", size: 1, password_wo: "s3cret", anything: [bin('["tuple",["number","string"]]'), [1, "x"]] });
  const pl = await plan({ priorState: dv(null), proposedNewState: dv(config), config: dv(config) });
  t.deepEqual(pl.diagnostics, []);
  const planned = read(pl.plannedState) as Record<string, Read>;
  t.true(planned["id"] instanceof ReadExt && planned["id"].ext === 0, "id unknown (d4 00 00)");
  t.true(planned["saw_password"] instanceof ReadExt);
  t.is(planned["password_wo"], null, "write-only is null in the plan");
  t.is(planned["name"], "a");
  t.deepEqual(pl.requiresReplace, [], "no replace paths on create");
  t.is(pl.plannedPrivate.toString(), "planned-private");

  const ap = await apply({ priorState: dv(null), plannedState: pl.plannedState, config: dv(config), plannedPrivate: pl.plannedPrivate });
  t.deepEqual(ap.diagnostics, []);
  const st = read(ap.newState) as Record<string, Read>;
  t.is(st["id"], "thing-a");
  t.is(st["saw_password"], true, "create saw the write-only value in config");
  t.is(st["password_wo"], null, "never stored");
  t.is(st["size"], 1);
  t.deepEqual(Object.keys(st).sort(), ["anything", "id", "name", "password_wo", "rule", "saw_password", "size", "tags"]);
  const any = st["anything"] as [Uint8Array, Read];
  t.is(new TextDecoder().decode(any[0]), '["tuple",["number","string"]]');
  t.deepEqual(any[1], [1, "x"]);
  t.is(ap.private.toString(), "planned-private+created");

  const rd = await readResource(thing({ id: "thing-a", name: "a" }));
  t.deepEqual(rd.diagnostics, []);
  t.is((read(rd.newState) as Record<string, Read>)["size"], 1);
});

const stateA = (size: number): Mp =>
  thing({ id: "thing-a", name: "a", size, saw_password: true, anything: [bin('["tuple",["number","string"]]'), [1, "x"]] });

test.serial("update: requires_replace for schema-marked name and for plan-returned size shrink; in-place otherwise", async (t) => {
  const renamed = thing({ id: "thing-a", name: "b", size: 1, saw_password: true });
  const r1 = await plan({ priorState: dv(stateA(1)), proposedNewState: dv(renamed), config: dv(thing({ name: "b", size: 1 })) });
  t.deepEqual(r1.requiresReplace.map(stepNames), [["name"]]);
  const r2 = await plan({ priorState: dv(stateA(5)), proposedNewState: dv(stateA(2)), config: dv(thing({ name: "a", size: 2 })) });
  t.deepEqual(r2.requiresReplace.map(stepNames), [["size"]]);
  const grow = stateA(7);
  const r3 = await plan({ priorState: dv(stateA(1)), proposedNewState: dv(grow), config: dv(thing({ name: "a", size: 7 })) });
  t.deepEqual(r3.requiresReplace, []);
  t.is((read(r3.plannedState) as Record<string, Read>)["id"], "thing-a", "computed keeps its prior value on update");
  const ap = await apply({ priorState: dv(stateA(1)), plannedState: r3.plannedState, config: dv(thing({ name: "a", size: 7 })) });
  t.deepEqual(ap.diagnostics, []);
  t.is((read(ap.newState) as Record<string, Read>)["size"], 7);
});

test.serial("delete: planned null → delete, new_state null; the object is gone on refresh", async (t) => {
  const ap = await apply({ priorState: dv(stateA(7)), plannedState: dv(null), config: dv(null) });
  t.deepEqual(ap.diagnostics, []);
  t.is(ap.newState?.msgpack.toString("hex"), "c0");
  const rd = await readResource(stateA(7));
  t.deepEqual(rd.diagnostics, []);
  t.is(read(rd.newState), null);
});

test.serial("errors: thrown error → summary + message, no stack; missing state; inconsistent result with path", async (t) => {
  const create = (name: string, size: Mp = null) =>
    apply({ priorState: dv(null), plannedState: dv(thing({ name, size, id: UNKNOWN_MP, saw_password: UNKNOWN_MP })), config: dv(thing({ name, size })) });
  const fail = await create("fail-1");
  t.is(fail.diagnostics.length, 1);
  t.is(fail.diagnostics[0]?.summary, "Failed to apply tftest_thing");
  t.is(fail.diagnostics[0]?.detail, "boom at the backend");
  t.true(noStack(fail.diagnostics[0] as pb.Diagnostic));
  t.is(read(fail.newState), null, "nothing was created");
  const nostate = await create("nostate-1");
  t.is(nostate.diagnostics[0]?.summary, "Missing Resource State After Create");
  const drift = await create("drift-1", 3);
  t.is(drift.diagnostics[0]?.summary, "Provider produced inconsistent result after apply");
  t.deepEqual(stepNames(drift.diagnostics[0]?.attribute), ["size"]);
  t.is((read(drift.newState) as Record<string, Read>)["size"], 4, "state is still returned so Terraform tracks the object");
});

test.serial("StopProvider cancels an in-flight apply and the provider keeps serving", async (t) => {
  let settled = false;
  const pending = apply({
    priorState: dv(null),
    plannedState: dv(thing({ name: "slow-1", id: UNKNOWN_MP, saw_password: UNKNOWN_MP })),
    config: dv(thing({ name: "slow-1" })),
  }).finally(() => (settled = true));
  // The apply waits for its AbortSignal; keep asking to stop until it has been reached and cancelled.
  let stops = 0;
  while (!settled) {
    const s = await rpc<pb.StopProvider_Request, pb.StopProvider_Response>("stopProvider", {});
    t.is(s.Error, "");
    stops++;
    await new Promise((r) => setImmediate(r));
  }
  const r = await pending;
  t.true(stops >= 1);
  t.regex(r.diagnostics[0]?.summary ?? "", /^Cancelled/);
  t.true(noStack(r.diagnostics[0] as pb.Diagnostic));
  const again = await rpc<pb.GetProviderSchema_Request, pb.GetProviderSchema_Response>("getProviderSchema", {});
  t.truthy(again.provider);
});

test.serial("UpgradeResourceState: old JSON state re-encoded per the current schema (renamed, dropped, dynamic)", async (t) => {
  const raw = { title: "old", size: 3, gone: true, anything: { value: [1, "x"], type: ["tuple", ["number", "string"]] }, rule: [{ port: 22 }] };
  const r = await rpc<pb.UpgradeResourceState_Request, pb.UpgradeResourceState_Response>("upgradeResourceState", {
    typeName: "tftest_thing",
    version: 0n,
    rawState: { json: Buffer.from(JSON.stringify(raw)), flatmap: {} },
  });
  t.deepEqual(r.diagnostics, []);
  const st = read(r.upgradedState) as Record<string, Read>;
  t.deepEqual(Object.keys(st).sort(), ["anything", "id", "name", "password_wo", "rule", "saw_password", "size", "tags"]);
  t.is(st["name"], "old");
  t.is(st["id"], null);
  t.deepEqual(st["rule"], [{ port: 22 }]);
  const any = st["anything"] as [Uint8Array, Read];
  t.true(any[0] instanceof Uint8Array);
  t.deepEqual(any[1], [1, "x"]);
  const newer = await rpc<pb.UpgradeResourceState_Request, pb.UpgradeResourceState_Response>("upgradeResourceState", {
    typeName: "tftest_thing",
    version: 2n,
    rawState: { json: Buffer.from("{}"), flatmap: {} },
  });
  t.is(newer.diagnostics[0]?.summary, "Resource state is newer than the provider");
});

test.serial("ImportResourceState: full state by id; an unknown id is a diagnostic", async (t) => {
  const cfg = thing({ name: "imp", size: 2 });
  await apply({ priorState: dv(null), plannedState: dv(thing({ name: "imp", size: 2, id: UNKNOWN_MP, saw_password: UNKNOWN_MP })), config: dv(cfg) });
  const ok = await rpc<pb.ImportResourceState_Request, pb.ImportResourceState_Response>("importResourceState", { typeName: "tftest_thing", id: "thing-imp" });
  t.deepEqual(ok.diagnostics, []);
  t.is(ok.importedResources[0]?.typeName, "tftest_thing");
  t.is((read(ok.importedResources[0]?.state) as Record<string, Read>)["size"], 2);
  const missing = await rpc<pb.ImportResourceState_Request, pb.ImportResourceState_Response>("importResourceState", { typeName: "tftest_thing", id: "nope" });
  t.is(missing.importedResources.length, 0);
  t.is(missing.diagnostics[0]?.summary, "Cannot import non-existent thing");
});

test.serial("ReadDataSource, functions and unsupported RPCs answer with diagnostics", async (t) => {
  const ds = await rpc<pb.ReadDataSource_Request, pb.ReadDataSource_Response>("readDataSource", {
    typeName: "tftest_echo",
    config: dv(map({ input: "hello", output: null })),
  });
  t.deepEqual(ds.diagnostics, []);
  t.deepEqual(read(ds.state), { input: "hello", output: "HELLO" });
  const fns = await rpc<pb.GetFunctions_Request, pb.GetFunctions_Response>("getFunctions", {});
  t.deepEqual(fns.functions, {});
  const call = await rpc<pb.CallFunction_Request, pb.CallFunction_Response>("callFunction", { name: "nope", arguments: [] });
  t.regex(call.error?.text ?? "", /nope/);
  const mv = await rpc<pb.MoveResourceState_Request, pb.MoveResourceState_Response>("moveResourceState", {
    sourceProviderAddress: "x",
    sourceTypeName: "a",
    sourceSchemaVersion: 0n,
    targetTypeName: "tftest_thing",
    sourcePrivate: Buffer.alloc(0),
    sourceIdentitySchemaVersion: 0n,
  });
  t.is(mv.diagnostics[0]?.severity, 1);
  const ids = await rpc<pb.GetResourceIdentitySchemas_Request, pb.GetResourceIdentitySchemas_Response>("getResourceIdentitySchemas", {});
  t.deepEqual(ids.identitySchemas, {});
});

test.serial("Shutdown ends the process with 0", async (t) => {
  await p.call(p.controller, "shutdown", {});
  t.is(await p.exited, 0);
  t.is(p.output.stdout, p.handshakeLine);
});
