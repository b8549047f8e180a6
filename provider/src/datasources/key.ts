// data "mcko_key": one key by its resource name, `vaults/{vault}/keys/{key}`. Everything else is read from the daemon.
import type { DaemonClient } from "../client/daemon-client.js";
import { types } from "../plugin/cty.js";
import { defineDataSource } from "../plugin/resource.js";
import type { Attribute, Schema } from "../plugin/schema.js";
import { ALGORITHMS, CHILD_ID_RULE, keyValues, type KeyValues, parseKeyName } from "../resources/convert.js";
import { versionsAttribute } from "../resources/key.js";
import { KEY_STATES } from "../resources/key-states.js";

/** The computed attributes of a key as data sources show it (also the element of `mcko_keys.keys`). */
export const keyDataAttributes: Readonly<Record<string, Attribute>> = {
  vault: { type: types.string, computed: true, description: "The vault holding the key, `vaults/{vault}`." },
  name: { type: types.string, computed: true, description: "The key id within the vault." },
  algorithm: { type: types.string, computed: true, description: `Key algorithm: one of ${ALGORITHMS.join(", ")}.` },
  state: { type: types.string, computed: true, description: `Lifecycle state: one of ${KEY_STATES.join(", ")}.` },
  activation_time: { type: types.string, computed: true, description: "When the key became or becomes ACTIVE (RFC 3339), if set." },
  deactivation_time: { type: types.string, computed: true, description: "When the key became or becomes DEACTIVATED (RFC 3339), if set." },
  rotation_period: { type: types.string, computed: true, description: 'Scheduled rotation period (e.g. "720h"), if set.' },
  labels: { type: types.map(types.string), computed: true, description: "The key's labels." },
  primary_version: { type: types.number, computed: true, description: "Number of the primary version." },
  kcv: { type: types.string, computed: true, description: "Key check value of the primary version (empty once destroyed)." },
  versions: versionsAttribute,
};

export const keyDataSchema: Schema = {
  version: 0,
  block: {
    description: "Reads one key of a vault: metadata, state and versions (never material).",
    attributes: {
      id: { type: types.string, required: true, description: "The key's resource name, `vaults/{vault}/keys/{key}`." },
      ...keyDataAttributes,
    },
  },
};

/** Data-source values: labels always a map (never null) so `length(x.labels)` works. */
export function keyData(v: KeyValues): KeyValues {
  return { ...v, labels: v.labels ?? {} };
}

export const keyDataSource = defineDataSource<KeyValues, DaemonClient>({
  typeName: "mcko_key",
  schema: keyDataSchema,
  validate: ({ config, diags }) => {
    if (typeof config.id === "string" && !parseKeyName(config.id)) {
      diags.error("Invalid key id", `id must be a key name "vaults/{vault}/keys/{key}" where {key} is ${CHILD_ID_RULE}; got ${JSON.stringify(config.id)}.`, "id");
    }
  },
  read: async ({ config, client, signal }) => {
    const r = await client.unary(client.keys.getKey.bind(client.keys), { name: config.id }, signal);
    return keyData(keyValues(r.key!));
  },
});
