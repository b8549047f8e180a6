// data "mcko_keys": the keys of a vault, optionally only those in one state and carrying given labels. The filter
// runs in the daemon (ListKeys `filter`), every page is read.
import type { DaemonClient } from "../client/daemon-client.js";
import { types } from "../plugin/cty.js";
import { defineDataSource } from "../plugin/resource.js";
import type { Schema } from "../plugin/schema.js";
import { keyValues, parseVaultName } from "../resources/convert.js";
import { isKeyStateName, KEY_STATES } from "../resources/key-states.js";
import { keyData, keyDataAttributes } from "./key.js";

export interface KeysModel {
  vault: string;
  state: string | null;
  labels: Record<string, string> | null;
  ids: string[] | null;
  keys: Record<string, unknown>[] | null;
}

export const keysDataSchema: Schema = {
  version: 0,
  block: {
    description: "Lists the keys of a vault, optionally filtered by state and labels.",
    attributes: {
      vault: { type: types.string, required: true, description: "The vault, `vaults/{vault}` (e.g. `mcko_vault.main.id`)." },
      state: { type: types.string, optional: true, description: `Only keys in this state: one of ${KEY_STATES.join(", ")}.` },
      labels: { type: types.map(types.string), optional: true, description: "Only keys carrying every one of these labels with these values." },
      ids: { type: types.list(types.string), computed: true, description: "Resource names of the matching keys, in name order." },
      keys: {
        computed: true,
        description: "The matching keys, in name order.",
        nested: {
          nesting: "list",
          attributes: { id: { type: types.string, computed: true, description: "The key's resource name, `vaults/{vault}/keys/{key}`." }, ...keyDataAttributes },
        },
      },
    },
  },
};

const PAGE_SIZE = 1000;

/** The ListKeys filter for a state and labels: `state = ACTIVE AND labels.env = "prod"`. */
export function keysFilter(state: string | null, labels: Record<string, string> | null): string {
  const terms: string[] = [];
  if (state) terms.push(`state = ${state}`);
  for (const [k, v] of Object.entries(labels ?? {}).sort(([a], [b]) => a.localeCompare(b))) terms.push(`labels.${k} = ${JSON.stringify(v)}`);
  return terms.join(" AND ");
}

export const keysDataSource = defineDataSource<KeysModel, DaemonClient>({
  typeName: "mcko_keys",
  schema: keysDataSchema,
  validate: ({ config, diags }) => {
    if (typeof config.vault === "string" && parseVaultName(config.vault) === undefined) {
      diags.error("Invalid vault", `vault must be a vault name "vaults/{vault}" such as mcko_vault.main.id; got ${JSON.stringify(config.vault)}.`, "vault");
    }
    if (typeof config.state === "string" && !isKeyStateName(config.state)) {
      diags.error("Invalid state", `state must be one of ${KEY_STATES.join(", ")}; got ${JSON.stringify(config.state)}.`, "state");
    }
  },
  read: async ({ config, client, signal }) => {
    const filter = keysFilter(config.state, config.labels);
    const keys: Record<string, unknown>[] = [];
    let pageToken = "";
    do {
      const r = await client.unary(client.keys.listKeys.bind(client.keys), { parent: config.vault, pageSize: PAGE_SIZE, pageToken, filter }, signal);
      for (const k of r.keys) keys.push(keyData(keyValues(k)));
      pageToken = r.nextPageToken;
    } while (pageToken !== "");
    return { ...config, ids: keys.map((k) => k["id"] as string), keys };
  },
});
