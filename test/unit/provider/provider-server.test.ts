// Servicer-level tests: ProviderServer methods called directly (no socket), for the planning defaults on nested
// blocks and the error mapping hook.
import test from "ava";
import { defaultPlan, ProviderServer } from "../../../provider/src/plugin/provider-server.js";
import { decodeMsgpack, encodeMsgpack } from "../../../provider/src/plugin/codec.js";
import { isUnknown, type ObjectValue, types, UNKNOWN } from "../../../provider/src/plugin/cty.js";
import type { ProviderDefinition, ResourceType } from "../../../provider/src/plugin/resource.js";
import { type Block, impliedType } from "../../../provider/src/plugin/schema.js";

const block: Block = {
  attributes: {
    id: { type: types.string, computed: true, description: "" },
    name: { type: types.string, required: true, description: "" },
    mode: { type: types.string, optional: true, computed: true, description: "" },
  },
  blocks: {
    aws_kms: {
      nesting: "single",
      block: {
        attributes: {
          region: { type: types.string, required: true, description: "" },
          arn: { type: types.string, computed: true, description: "" },
          secret_wo: { type: types.string, optional: true, writeOnly: true, description: "" },
        },
      },
    },
  },
};

test("defaultPlan: computed (and optional+computed) null in config become unknown on create, also inside single blocks", (t) => {
  const cfg: ObjectValue = { id: null, name: "k", mode: null, aws_kms: { region: "eu", arn: null, secret_wo: "x" } };
  const p = defaultPlan(block, null, cfg, cfg);
  t.true(isUnknown(p["id"]));
  t.true(isUnknown(p["mode"]));
  const kms = p["aws_kms"] as ObjectValue;
  t.true(isUnknown(kms["arn"]));
  t.is(kms["secret_wo"], null);
  t.is(kms["region"], "eu");
});

test("defaultPlan: on update the proposal's prior computed values stay", (t) => {
  const prior: ObjectValue = { id: "k1", name: "k", mode: "auto", aws_kms: { region: "eu", arn: "arn:1", secret_wo: null } };
  const proposed: ObjectValue = { ...prior, name: "k" };
  const cfg: ObjectValue = { id: null, name: "k", mode: null, aws_kms: { region: "eu", arn: null, secret_wo: null } };
  t.deepEqual(defaultPlan(block, prior, proposed, cfg), prior);
});

const res = (create: ResourceType["create"]): ResourceType => ({
  typeName: "x_thing",
  schema: { version: 0, block },
  create,
  read: async ({ state }) => state,
  update: async ({ prior }) => prior,
  delete: async () => {},
});
const provider = (r: ResourceType, describeError?: ProviderDefinition["describeError"]): ProviderDefinition => ({
  typeName: "x",
  version: "0",
  schema: { version: 0, block: { attributes: {} } },
  configure: async () => ({}),
  resources: [r],
  dataSources: [],
  ...(describeError ? { describeError } : {}),
});
const ty = impliedType(block);
const dv = (v: ObjectValue | null) => ({ msgpack: Buffer.from(encodeMsgpack(ty, v)), json: Buffer.alloc(0) });

async function applyCreate(p: ProviderDefinition) {
  const s = new ProviderServer(p);
  await s.configureProvider({ terraformVersion: "1.11.4", config: { msgpack: Buffer.from([0x80]), json: Buffer.alloc(0) }, clientCapabilities: undefined });
  const planned: ObjectValue = { id: UNKNOWN, name: "k", mode: UNKNOWN, aws_kms: null };
  return s.applyResourceChange({
    typeName: "x_thing",
    priorState: dv(null),
    plannedState: dv(planned),
    config: dv({ id: null, name: "k", mode: null, aws_kms: null }),
    plannedPrivate: Buffer.alloc(0),
    providerMeta: undefined,
    plannedIdentity: undefined,
  });
}

test("a thrown TypeError is one error diagnostic with its message, not a gRPC failure", async (t) => {
  const r = await applyCreate(provider(res(async () => { throw new TypeError("x is not a function"); })));
  t.deepEqual(r.diagnostics.map((d) => [d.severity, d.summary, d.detail]), [[1, "Failed to apply x_thing", "x is not a function"]]);
  t.is(decodeMsgpack(ty, r.newState?.msgpack ?? Buffer.alloc(0)), null);
});

test("the provider's describeError hook translates errors it knows", async (t) => {
  class DaemonDown extends Error {}
  const r = await applyCreate(
    provider(res(async () => { throw new DaemonDown("gone"); }), (e) =>
      e instanceof DaemonDown ? [{ severity: "error", summary: "cannot reach the daemon at X", path: [{ attribute: "name" }] }] : undefined,
    ),
  );
  t.is(r.diagnostics[0]?.summary, "cannot reach the daemon at X");
  t.deepEqual(r.diagnostics[0]?.attribute?.steps, [{ selector: { $case: "attributeName", value: "name" } }]);
});

test("unknowns left in the new state are a provider bug", async (t) => {
  const r = await applyCreate(provider(res(async ({ planned }) => planned as ObjectValue)));
  t.is(r.diagnostics[0]?.summary, "Provider returned invalid result object");
});
