// mcko_vault: a vault, MCKO's access boundary (DESIGN.md resource model). `name` forces a new vault; display_name
// and description change in place through UpdateVault with an update_mask of the changed attributes. Import by
// name: `terraform import mcko_vault.x vaults/prod` (a bare `prod` works too).
import type { DaemonClient } from "../client/daemon-client.js";
import { types } from "../plugin/cty.js";
import { DiagnosticError } from "../plugin/diagnostics.js";
import { defineResource, type MaybeUnknown } from "../plugin/resource.js";
import type { Schema } from "../plugin/schema.js";
import { Vault } from "../../../protos/gen/mcko/v1/vault.js";
import { formatVaultName, isValidVaultId, parseVaultName, VAULT_ID_RULE } from "./convert.js";
import { isNotFound } from "./daemon-errors.js";

export interface VaultModel {
  id: string | null;
  name: string | null;
  display_name: string | null;
  description: string | null;
}

export const vaultSchema: Schema = {
  version: 0,
  block: {
    description: "A vault: the access boundary that keys, keystores and role bindings belong to.",
    attributes: {
      id: { type: types.string, computed: true, description: "The vault's resource name, `vaults/{name}`. Use it as the `vault` of keys." },
      name: {
        type: types.string,
        required: true,
        requiresReplace: true,
        description: `The vault id: ${VAULT_ID_RULE}. Changing it replaces the vault.`,
      },
      display_name: { type: types.string, optional: true, description: "Human-readable name, at most 256 characters." },
      description: { type: types.string, optional: true, description: "Free text, at most 1024 characters." },
    },
  },
};

/** The daemon answers "" for an unset string; keep the user's null (and their "") so neither shows as a change. */
function optionalString(v: string, prior: string | null): string | null {
  return v === "" && prior !== "" ? null : v;
}

function toModel(v: Vault, prior: Partial<VaultModel>): VaultModel {
  return {
    id: v.name,
    name: parseVaultName(v.name) ?? null,
    display_name: optionalString(v.displayName, prior.display_name ?? null),
    description: optionalString(v.description, prior.description ?? null),
  };
}

const UPDATABLE = ["display_name", "description"] as const;

export const vaultResource = defineResource<VaultModel, DaemonClient>({
  typeName: "mcko_vault",
  schema: vaultSchema,

  validate: ({ config, diags }) => {
    if (typeof config.name === "string" && !isValidVaultId(config.name)) diags.error("Invalid vault name", `name must be ${VAULT_ID_RULE}; got ${JSON.stringify(config.name)}.`, "name");
  },

  plan: ({ prior, planned }) => {
    // The id follows the name; on replace (prior null) the default plan already marks it unknown.
    if (prior === null) return { planned };
    const out: { [K in keyof VaultModel]: MaybeUnknown<VaultModel[K]> } = { ...planned };
    if (typeof planned.name === "string") out.id = formatVaultName(planned.name);
    return { planned: out };
  },

  create: async ({ config, client, signal }) => {
    const r = await client.unary(
      client.vaults.createVault.bind(client.vaults),
      {
        vaultId: config.name ?? "",
        vault: Vault.fromPartial({ displayName: config.display_name ?? "", description: config.description ?? "" }),
        requestId: crypto.randomUUID(),
      },
      signal,
    );
    return toModel(r.vault!, config);
  },

  read: async ({ state, client, signal }) => {
    try {
      const r = await client.unary(client.vaults.getVault.bind(client.vaults), { name: state.id ?? formatVaultName(state.name ?? "") }, signal);
      return toModel(r.vault!, state);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  },

  update: async ({ prior, config, client, signal }) => {
    const mask = UPDATABLE.filter((k) => (prior[k] ?? "") !== (config[k] ?? ""));
    if (mask.length === 0) return { ...prior, display_name: config.display_name, description: config.description };
    const r = await client.unary(
      client.vaults.updateVault.bind(client.vaults),
      {
        vault: Vault.fromPartial({ name: prior.id ?? "", displayName: config.display_name ?? "", description: config.description ?? "" }),
        updateMask: [...mask],
      },
      signal,
    );
    return toModel(r.vault!, config);
  },

  delete: async ({ prior, client, signal }) => {
    try {
      await client.unary(client.vaults.deleteVault.bind(client.vaults), { name: prior.id ?? "", etag: "" }, signal);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  },

  importState: async ({ id }) => {
    const vault = parseVaultName(id) ?? (isValidVaultId(id) ? id : undefined);
    if (vault === undefined) {
      throw new DiagnosticError("Invalid import id", `Import a vault by its name, "vaults/{vault}" (or just "{vault}"), where {vault} is ${VAULT_ID_RULE}; got ${JSON.stringify(id)}.`);
    }
    return { id: formatVaultName(vault), name: vault, display_name: null, description: null };
  },
});
