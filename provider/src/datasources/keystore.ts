// data "mcko_keystore": one keystore by its resource name, `vaults/{vault}/keystores/{keystore}`. Settings of its
// connection block are read from the daemon; credentials never leave the daemon, so the data source has none.
import type { DaemonClient } from "../client/daemon-client.js";
import { types } from "../plugin/cty.js";
import { defineDataSource } from "../plugin/resource.js";
import type { Schema } from "../plugin/schema.js";
import { KeystoreType } from "../../../protos/gen/mcko/v1/keystore.js";
import { KeystoreServiceClient } from "../../../protos/gen/mcko/v1/keystore_service.js";
import { CHILD_ID_RULE } from "../resources/convert.js";
import { KEYSTORE_BLOCKS, keystoreToModel, parseKeystoreName } from "../resources/keystore.js";

export interface KeystoreDataModel {
  id: string;
  vault: string | null;
  name: string | null;
  type: string | null;
  description: string | null;
  settings: Record<string, string> | null;
  status: string | null;
  has_credentials: boolean | null;
  distribution_count: number | null;
}

const TYPES = KEYSTORE_BLOCKS.map((b) => b.block.toUpperCase());

export const keystoreDataSchema: Schema = {
  version: 0,
  block: {
    description: "Reads one keystore of a vault: its type, connection settings and status (never credentials).",
    attributes: {
      id: { type: types.string, required: true, description: "The keystore's resource name, `vaults/{vault}/keystores/{keystore}`." },
      vault: { type: types.string, computed: true, description: "The vault holding the keystore, `vaults/{vault}`." },
      name: { type: types.string, computed: true, description: "The keystore id within the vault." },
      type: { type: types.string, computed: true, description: `Keystore type: one of ${TYPES.join(", ")}.` },
      description: { type: types.string, computed: true, description: "Free text (empty when unset)." },
      settings: {
        type: types.map(types.string),
        computed: true,
        description: "The connection settings the daemon holds, by the argument names of the resource's connection block (e.g. `region`, `endpoint`); unset ones are left out. Credentials are never returned.",
      },
      status: { type: types.string, computed: true, description: "Result of the daemon's last connection test: `OK` or the cloud's refusal (empty when never tested)." },
      has_credentials: { type: types.bool, computed: true, description: "Whether the daemon holds stored credentials for this keystore." },
      distribution_count: { type: types.number, computed: true, description: "Number of key distributions to this keystore." },
    },
  },
};

export const keystoreDataSource = defineDataSource<KeystoreDataModel, DaemonClient>({
  typeName: "mcko_keystore",
  schema: keystoreDataSchema,
  validate: ({ config, diags }) => {
    if (typeof config.id === "string" && !parseKeystoreName(config.id)) {
      diags.error("Invalid keystore id", `id must be a keystore name "vaults/{vault}/keystores/{keystore}" where {keystore} is ${CHILD_ID_RULE}; got ${JSON.stringify(config.id)}.`, "id");
    }
  },
  read: async ({ config, client, signal }) => {
    const svc = client.service(KeystoreServiceClient);
    const k = (await client.unary(svc.getKeystore.bind(svc), { name: config.id }, signal)).keystore!;
    const m = keystoreToModel(k, {});
    const settings: Record<string, string> = {};
    for (const b of KEYSTORE_BLOCKS) {
      const row = m[b.block][0];
      if (!row) continue;
      for (const [key, v] of Object.entries(row)) if (v !== null && v !== undefined) settings[key] = String(v);
    }
    const typeName = KeystoreType[k.type] ?? "";
    return {
      id: config.id,
      vault: m.vault,
      name: m.name,
      type: typeName.startsWith("KEYSTORE_TYPE_") ? typeName.slice("KEYSTORE_TYPE_".length) : typeName,
      description: k.description,
      settings,
      status: k.lastTestResult,
      has_credentials: k.hasCredentials,
      distribution_count: Number(k.distributionCount),
    };
  },
});
