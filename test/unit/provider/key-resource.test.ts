// mcko_key's apply logic against a fake daemon at MCKO's own seam (the DaemonClient interface): the update_mask holds
// only changed attributes and comes before SetKeyState; state steps run in NIST order; NOT_FOUND on read leaves the
// state and on delete is success; a refusal while destroying is a WARNING and the key leaves the state, while a
// transport failure stays an error. The acceptance tests (test/provider/key_*.test.ts) run the same paths for real.
import test from "ava";
import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { ErrorInfo } from "../../../protos/gen/google/rpc/error_details.js";
import { Status } from "../../../protos/gen/google/rpc/status.js";
import { Key, KeyAlgorithm, KeyState } from "../../../protos/gen/mcko/v1/key.js";
import type { DaemonClient } from "../../../provider/src/client/daemon-client.js";
import { Diagnostics } from "../../../provider/src/plugin/diagnostics.js";
import { keyResource, type KeyModel } from "../../../provider/src/resources/key.js";
import { stateName, stateToProto } from "../../../provider/src/resources/convert.js";
import type { KeyStateName } from "../../../provider/src/resources/key-states.js";
import { isKeyStateName } from "../../../provider/src/resources/key-states.js";

function serviceError(code: status, reason?: string): ServiceError {
  const md = new Metadata();
  if (reason) {
    const info = ErrorInfo.encode({ reason, domain: "mcko.v1", metadata: {} }).finish();
    md.set("grpc-status-details-bin", Buffer.from(Status.encode({ code, message: reason.toLowerCase(), details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }] }).finish()));
  }
  return Object.assign(new Error(`${code}`), { code, details: reason ?? "failed", metadata: md });
}

interface Call {
  readonly method: string;
  readonly req: Record<string, unknown>;
}

/** A fake daemon holding one key; `fail` makes the named method throw. */
function fakeDaemon(initial: KeyStateName | null, fail: Partial<Record<string, ServiceError>> = {}) {
  const calls: Call[] = [];
  let key: Key | null =
    initial === null
      ? null
      : Key.fromPartial({
          name: "vaults/v/keys/k",
          algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
          state: stateToProto(initial),
          primaryVersion: 1,
          versions: [{ versionNumber: 1, kcv: "abcdef", kcvMethod: "enc-zero", createTime: new Date("2026-01-01T00:00:00Z") }],
          activationTime: new Date("2026-01-01T00:00:00Z"),
          labels: { env: "dev" },
        });
  const handlers: Record<string, (req: Record<string, unknown>) => unknown> = {
    getKey: () => {
      if (!key) throw serviceError(status.NOT_FOUND);
      return { key };
    },
    updateKey: (req) => {
      const k = req["key"] as Key;
      key = { ...key!, labels: (req["updateMask"] as string[]).includes("labels") ? k.labels : key!.labels, rotationPeriod: k.rotationPeriod };
      return { key };
    },
    setKeyState: (req) => {
      const to = stateName(req["state"] as KeyState);
      key = { ...key!, state: stateToProto(to), ...(to === "DEACTIVATED" ? { deactivationTime: new Date() } : {}) };
      return { key };
    },
    deleteKey: () => {
      key = null;
      return {};
    },
  };
  const client = {
    address: "fake:1",
    requestTimeoutMs: 1000,
    keys: Object.fromEntries(Object.keys(handlers).map((m) => [m, { [m]: () => undefined }[m]])),
    unary: async (method: { name: string }, req: Record<string, unknown>) => {
      const m = method.name.replace(/^bound /, "");
      calls.push({ method: m, req });
      const f = fail[m];
      if (f) throw f;
      return handlers[m]!(req);
    },
  } as unknown as DaemonClient;
  return { client, calls, current: () => key };
}

const signal = new AbortController().signal;
const model = (o: Partial<KeyModel>): KeyModel => ({
  id: "vaults/v/keys/k",
  vault: "vaults/v",
  name: "k",
  algorithm: "AES_256",
  state: "ACTIVE",
  activation_time: "2026-01-01T00:00:00Z",
  deactivation_time: null,
  rotation_period: null,
  labels: { env: "dev" },
  primary_version: 1,
  kcv: "abcdef",
  versions: [{ number: 1, kcv: "abcdef", kcv_method: "enc-zero", create_time: "2026-01-01T00:00:00Z" }],
  ...o,
});
const typed = keyResource as unknown as {
  update(r: object): Promise<KeyModel>;
  read(r: object): Promise<KeyModel | null>;
  delete(r: object): Promise<void>;
};

test("update: update_mask names only the changed attributes, before the state steps, which run in NIST order", async (t) => {
  const d = fakeDaemon("ACTIVE");
  const prior = model({});
  const planned = model({ labels: { env: "prod" }, state: "DESTROYED" });
  const diags = new Diagnostics();
  const out = await typed.update({ prior, config: { ...planned, kcv: null, versions: null }, planned, client: d.client, signal, diags });
  t.deepEqual(
    d.calls.map((c) => c.method),
    ["updateKey", "setKeyState", "setKeyState"],
  );
  t.deepEqual(d.calls[0]?.req["updateMask"], ["labels"]);
  t.deepEqual(
    d.calls.slice(1).map((c) => stateName(c.req["state"] as KeyState)),
    ["DEACTIVATED", "DESTROYED"],
  );
  t.is(out.state, "DESTROYED");
  t.deepEqual(diags.items, []);
});

test("update: nothing but state changes → no UpdateKey at all", async (t) => {
  const d = fakeDaemon("SUSPENDED");
  const prior = model({ state: "SUSPENDED" });
  const planned = model({});
  await typed.update({ prior, config: planned, planned, client: d.client, signal, diags: new Diagnostics() });
  t.deepEqual(
    d.calls.map((c) => c.method),
    ["getKey", "setKeyState"],
  );
});

test("read: NOT_FOUND removes the key from state (null)", async (t) => {
  const d = fakeDaemon(null);
  t.is(await typed.read({ state: model({}), client: d.client, signal, diags: new Diagnostics() }), null);
});

test("delete: through DEACTIVATED to DESTROYED, then DeleteKey; NOT_FOUND is success", async (t) => {
  const d = fakeDaemon("SUSPENDED");
  const diags = new Diagnostics();
  await typed.delete({ prior: model({}), client: d.client, signal, diags });
  t.deepEqual(
    d.calls.map((c) => (c.method === "setKeyState" ? `setKeyState:${stateName(c.req["state"] as KeyState)}` : c.method)),
    ["getKey", "setKeyState:DEACTIVATED", "setKeyState:DESTROYED", "deleteKey"],
  );
  t.is(d.current(), null);
  t.deepEqual(diags.items, []);
  const gone = fakeDaemon(null);
  await typed.delete({ prior: model({}), client: gone.client, signal, diags });
  t.deepEqual(diags.items, []);
});

test("delete: a refusal is a warning naming the reason and the state the key is left in; a transport error stays an error", async (t) => {
  const d = fakeDaemon("ACTIVE", { deleteKey: serviceError(status.FAILED_PRECONDITION, "KEY_HAS_DISTRIBUTIONS") });
  const diags = new Diagnostics();
  await typed.delete({ prior: model({}), client: d.client, signal, diags });
  t.is(diags.items.length, 1);
  t.is(diags.items[0]?.severity, "warning");
  t.regex(diags.items[0]?.summary ?? "", /refused to delete the metadata of vaults\/v\/keys\/k/);
  t.regex(diags.items[0]?.detail ?? "", /KEY_HAS_DISTRIBUTIONS/);
  t.is(stateName(d.current()!.state), "DESTROYED", "the material is destroyed even though the metadata stays");

  const down = fakeDaemon("ACTIVE", { setKeyState: serviceError(status.UNAVAILABLE) });
  await t.throwsAsync(typed.delete({ prior: model({}), client: down.client, signal, diags: new Diagnostics() }));
  t.true(isKeyStateName(stateName(down.current()!.state)));
});

test("a state step refused because the daemon's scheduler moved the key meanwhile: re-read and continue from there", async (t) => {
  const d = fakeDaemon("ACTIVE");
  let first = true;
  const client = {
    ...d.client,
    unary: async (method: { name: string }, req: Record<string, unknown>) => {
      if (method.name.endsWith("setKeyState") && first) {
        first = false;
        // The scheduler deactivated the key between plan and apply.
        await d.client.unary(method as never, { name: "vaults/v/keys/k", state: stateToProto("DEACTIVATED") } as never);
        throw serviceError(status.FAILED_PRECONDITION, "KEY_STATE_TRANSITION_NOT_ALLOWED");
      }
      return d.client.unary(method as never, req as never);
    },
  } as DaemonClient;
  const diags = new Diagnostics();
  await typed.delete({ prior: model({}), client, signal, diags });
  t.deepEqual(diags.items, []);
  t.is(d.current(), null, "destroyed from DEACTIVATED and deleted");
});
