// A small provider for plugin-level and real-Terraform tests of the plugin layer: resource `tftest_thing` and data
// source `tftest_echo`, kept in memory or in a JSON file (`store_path`, so that Terraform's separate plan and apply
// processes share it). Special names trigger failure paths: "slow*" waits for StopProvider, "fail*" throws,
// "nostate*" returns no state, "drift*" returns a value other than planned.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { decodeJson, encodeJson } from "../../provider/src/plugin/codec.js";
import { type ObjectValue, isUnknown, types } from "../../provider/src/plugin/cty.js";
import { DiagnosticError } from "../../provider/src/plugin/diagnostics.js";
import { type DataSourceType, type ProviderDefinition, type ResourceType, defineDataSource, defineResource, withPrivate } from "../../provider/src/plugin/resource.js";
import { impliedType, type Schema } from "../../provider/src/plugin/schema.js";

export const thingSchema: Schema = {
  version: 1,
  block: {
    description: "A thing kept by the test provider.",
    attributes: {
      id: { type: types.string, computed: true, description: "thing-<name>" },
      name: { type: types.string, required: true, requiresReplace: true, description: "Name; changing it replaces the thing." },
      size: { type: types.number, optional: true, description: "Size; shrinking it replaces the thing." },
      tags: { type: types.map(types.string), optional: true, description: "Tags." },
      anything: { type: types.dynamic, optional: true, description: "Any value." },
      password_wo: { type: types.string, optional: true, writeOnly: true, sensitive: true, description: "Write-only secret." },
      saw_password: { type: types.bool, computed: true, description: "Whether create received password_wo." },
    },
    blocks: {
      rule: {
        nesting: "list",
        block: { attributes: { port: { type: types.number, required: true, description: "Port." } } },
      },
    },
  },
};

export interface Thing {
  id: string | null;
  name: string;
  size: number | null;
  tags: Record<string, string> | null;
  anything: unknown;
  password_wo: string | null;
  saw_password: boolean | null;
  rule: { port: number }[];
}

/** The fixture's backing store: in memory, or a JSON file read and written on every call. */
export class ThingStore {
  private mem = new Map<string, ObjectValue>();
  private readonly type = impliedType(thingSchema.block);
  constructor(private readonly path?: string) {}
  private load(): Map<string, ObjectValue> {
    if (!this.path) return this.mem;
    if (!existsSync(this.path)) return new Map();
    const raw = JSON.parse(readFileSync(this.path, "utf8")) as Record<string, unknown>;
    return new Map(Object.entries(raw).map(([k, v]) => [k, decodeJson(this.type, v) as ObjectValue]));
  }
  private save(m: Map<string, ObjectValue>): void {
    if (!this.path) return void (this.mem = m);
    writeFileSync(this.path, JSON.stringify(Object.fromEntries([...m].map(([k, v]) => [k, JSON.parse(encodeJson(this.type, v))]))));
  }
  get(id: string): ObjectValue | undefined {
    return this.load().get(id);
  }
  put(id: string, v: ObjectValue): void {
    const m = this.load();
    m.set(id, v);
    this.save(m);
  }
  delete(id: string): void {
    const m = this.load();
    m.delete(id);
    this.save(m);
  }
}

const waitForAbort = (signal: AbortSignal): Promise<never> =>
  new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });

export const thing: ResourceType<ObjectValue, ThingStore> = defineResource<Thing, ThingStore>({
  typeName: "tftest_thing",
  schema: thingSchema,
  validate: ({ config, diags }) => {
    const size = config.size;
    if (typeof size === "number" && size < 0) diags.error("Invalid size", "size must not be negative", "size");
    const rules = config.rule;
    if (Array.isArray(rules)) {
      rules.forEach((r, i) => {
        if (!isUnknown(r) && typeof r.port === "number" && r.port > 65535) diags.error("Invalid port", "ports end at 65535", `rule[${i}].port`);
      });
    }
  },
  plan: ({ prior, planned }) => {
    const paths = [];
    if (prior && typeof planned.size === "number" && typeof prior.size === "number" && planned.size < prior.size) paths.push([{ attribute: "size" }]);
    return { planned, requiresReplace: paths, private: Buffer.from("planned-private") };
  },
  create: async ({ config, planned, client, signal, private: priv }) => {
    const name = config.name;
    if (name.startsWith("slow")) await waitForAbort(signal);
    if (name.startsWith("fail")) throw new Error("boom at the backend");
    if (name.startsWith("nostate")) return null as unknown as Thing;
    const state: Thing = {
      ...(planned as Thing),
      id: `thing-${name}`,
      saw_password: config.password_wo !== null,
      password_wo: null,
    };
    if (name.startsWith("drift")) state.size = (state.size ?? 0) + 1;
    client.put(state.id as string, state as unknown as ObjectValue);
    return withPrivate(state, Buffer.concat([Buffer.from(priv), Buffer.from("+created")]));
  },
  read: async ({ state, client }) => {
    const cur = client.get(state.id as string);
    return cur ? (cur as unknown as Thing) : null;
  },
  update: async ({ planned, prior, client }) => {
    const state = { ...(planned as Thing), id: prior.id, saw_password: prior.saw_password };
    client.put(state.id as string, state as unknown as ObjectValue);
    return state;
  },
  delete: async ({ prior, client }) => {
    client.delete(prior.id as string);
  },
  importState: async ({ id, client }) => {
    const cur = client.get(id);
    if (!cur) throw new DiagnosticError("Cannot import non-existent thing", `No thing with id "${id}".`);
    return cur as unknown as Thing;
  },
  upgradeState: ({ version, rawState }) => {
    // version 0 called the name "title"
    if (version === 0 && "title" in rawState) {
      const { title, ...rest } = rawState;
      return { ...rest, name: title };
    }
    return rawState;
  },
});

export const echo: DataSourceType<ObjectValue, ThingStore> = defineDataSource<{ input: string; output: string | null }, ThingStore>({
  typeName: "tftest_echo",
  schema: {
    version: 0,
    block: {
      attributes: {
        input: { type: types.string, required: true, description: "Input." },
        output: { type: types.string, computed: true, description: "The input in upper case." },
      },
    },
  },
  read: async ({ config }) => ({ input: config.input, output: config.input.toUpperCase() }),
});

export function testProvider(): ProviderDefinition<ThingStore> {
  return {
    typeName: "tftest",
    version: "0.0.1",
    schema: {
      version: 0,
      block: {
        attributes: {
          store_path: { type: types.string, optional: true, description: "JSON file keeping the things (memory if unset)." },
          fail_configure: { type: types.bool, optional: true, description: "Make ConfigureProvider fail." },
        },
      },
    },
    configure: async ({ config, diags }) => {
      if (config["fail_configure"] === true) {
        diags.error("Configure failed on request", undefined, "fail_configure");
        return undefined;
      }
      const p = config["store_path"];
      return new ThingStore(typeof p === "string" ? p : undefined);
    },
    resources: [thing],
    dataSources: [echo],
  };
}
