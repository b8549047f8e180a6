// mcko_key_distribution: a vault key placed in one keystore (DESIGN.md "Terraform schema"). key and keystore force
// a new distribution, and so does cloud_name (the daemon fixes it at creation). There is no `enabled` argument: the
// API has none, a distribution follows its key's state (ACTIVE → enabled, SUSPENDED/DEACTIVATED/COMPROMISED →
// disabled, DESTROYED → deletion scheduled); drive it through mcko_key.state.
//
// Drift: refresh calls GetDistribution with read_live, so the state holds what the cloud holds now (`cloud_state`)
// next to what the vault wants (`desired_state`). When they differ, or the daemon found drift (foreign material,
// missing alias, …), the plan sets `cloud_state` to the desired state and marks `sync_state`, `drift` and (for a
// cloud key that is gone) `cloud_key_id` as known after apply: `terraform plan -detailed-exitcode` exits 2, and apply
// calls SyncDistribution, which repairs the cloud copy from the vault. Import by name
// `vaults/{vault}/keys/{key}/distributions/{keystore}`.
import { describeDaemonError } from "../client/errors.js";
import type { DaemonClient } from "../client/daemon-client.js";
import { types, UNKNOWN } from "../plugin/cty.js";
import { DiagnosticError, type Diagnostics } from "../plugin/diagnostics.js";
import { defineResource, type MaybeUnknown } from "../plugin/resource.js";
import type { Schema } from "../plugin/schema.js";
import { CloudKeyState, Distribution, SyncState } from "../../../protos/gen/mcko/v1/distribution.js";
import { DistributionServiceClient } from "../../../protos/gen/mcko/v1/distribution_service.js";
import { CHILD_ID_RULE, isValidChildId, parseKeyName } from "./convert.js";
import { isNotFound } from "./daemon-errors.js";
import { formatKeystoreName, parseKeystoreName } from "./keystore.js";

export interface KeyDistributionModel {
  id: string | null;
  key: string | null;
  keystore: string | null;
  cloud_name: string | null;
  cloud_key_id: string | null;
  cloud_key_uri: string | null;
  cloud_state: string | null;
  desired_state: string | null;
  sync_state: string | null;
  drift: string[] | null;
}

type Planned = { [K in keyof KeyDistributionModel]: MaybeUnknown<KeyDistributionModel[K]> };

const enumNames = (e: Record<string, string | number>, prefix: string): string[] =>
  Object.keys(e)
    .filter((k) => k.startsWith(prefix) && !k.endsWith("_UNSPECIFIED"))
    .map((k) => k.slice(prefix.length));

export const CLOUD_STATES = enumNames(CloudKeyState as unknown as Record<string, number>, "CLOUD_KEY_STATE_");
export const SYNC_STATES = enumNames(SyncState as unknown as Record<string, number>, "SYNC_STATE_");

const cloudStateName = (s: CloudKeyState): string => (CloudKeyState[s] ?? "").replace(/^CLOUD_KEY_STATE_/, "") || "UNSPECIFIED";
const syncStateName = (s: SyncState): string => (SyncState[s] ?? "").replace(/^SYNC_STATE_/, "") || "UNSPECIFIED";

/** `vaults/{v}/keys/{k}/distributions/{ks}` → key and keystore names, or undefined. */
export function parseDistributionName(name: string): { key: string; keystore: string } | undefined {
  const m = /^(vaults\/[^/]+\/keys\/[^/]+)\/distributions\/([^/]+)$/.exec(name);
  if (!m) return undefined;
  const k = parseKeyName(m[1]!);
  if (!k || !isValidChildId(m[2]!)) return undefined;
  return { key: m[1]!, keystore: formatKeystoreName(k.vaultName, m[2]!) };
}

export function distributionName(key: string, keystore: string): string | undefined {
  const k = parseKeyName(key);
  const ks = parseKeystoreName(keystore);
  if (!k || !ks || k.vaultName !== ks.vaultName) return undefined;
  return `${key}/distributions/${ks.keystore}`;
}

export const keyDistributionSchema: Schema = {
  version: 0,
  block: {
    description:
      "A vault key distributed to one keystore (pushed BYOK). Its cloud copy follows the key's state; refresh reads the cloud live, so drift (disabled, deleted or replaced out of band) shows in the plan and apply repairs it.",
    attributes: {
      id: { type: types.string, computed: true, description: "The distribution's resource name, `vaults/{vault}/keys/{key}/distributions/{keystore}`." },
      key: { type: types.string, required: true, requiresReplace: true, description: "The key, `vaults/{vault}/keys/{key}` (e.g. `mcko_key.k.id`). Changing it replaces the distribution." },
      keystore: {
        type: types.string,
        required: true,
        requiresReplace: true,
        description: "The keystore, `vaults/{vault}/keystores/{keystore}` in the key's vault (e.g. `mcko_keystore.aws.id`). Changing it replaces the distribution.",
      },
      cloud_name: {
        type: types.string,
        optional: true,
        computed: true,
        requiresReplace: true,
        description: "Name of the key in the cloud (AWS alias without `alias/`, Azure key name). Default: the vault key id. Changing it forces a new resource (the daemon fixes it at creation).",
      },
      cloud_key_id: { type: types.string, computed: true, description: "The cloud key carrying the primary version (AWS key id, Azure key name). Known after apply when the cloud copy must be re-created." },
      cloud_key_uri: { type: types.string, computed: true, description: "Full identifier of the cloud key (AWS ARN, Azure key URI)." },
      cloud_state: {
        type: types.string,
        computed: true,
        description: `What the cloud holds, read live on refresh: one of ${CLOUD_STATES.join(", ")}. A plan sets it to desired_state when they differ, and apply repairs the cloud copy.`,
      },
      desired_state: { type: types.string, computed: true, description: `What the vault wants the cloud copy to be, following the key's state: one of ${CLOUD_STATES.join(", ")}.` },
      sync_state: { type: types.string, computed: true, description: `Sync state: one of ${SYNC_STATES.join(", ")}. DRIFTED or FAILED makes the plan repair the distribution.` },
      drift: { type: types.list(types.string), computed: true, description: "Differences the daemon found between the vault and the cloud (e.g. `cloud key disabled out of band`); empty when in sync." },
    },
  },
};

function toModel(d: Distribution, prior: Partial<KeyDistributionModel>): KeyDistributionModel {
  const n = parseDistributionName(d.name);
  return {
    id: d.name,
    key: n?.key ?? prior.key ?? null,
    keystore: d.keystore || n?.keystore || prior.keystore || null,
    cloud_name: d.cloudName !== "" ? d.cloudName : (prior.cloud_name ?? null),
    cloud_key_id: d.cloudKeyId,
    cloud_key_uri: d.cloudKeyUri,
    cloud_state: cloudStateName(d.observedState),
    desired_state: cloudStateName(d.desiredState),
    sync_state: syncStateName(d.syncState),
    drift: d.drift.map(shortenDigests),
  };
}

/** Drift messages name material by digest (AWS KeyMaterialId): keep a 12-digit prefix, so no long digest of key material reaches the state. */
export function shortenDigests(s: string): string {
  return s.replace(/\b[0-9a-f]{32,}\b/g, (h) => `${h.slice(0, 12)}…`);
}

function validateDistributionConfig(c: Planned, diags: Diagnostics): void {
  if (typeof c.key === "string" && !parseKeyName(c.key)) diags.error("Invalid key", `key must be a key name "vaults/{vault}/keys/{key}" such as mcko_key.k.id; got ${JSON.stringify(c.key)}.`, "key");
  if (typeof c.keystore === "string" && !parseKeystoreName(c.keystore)) {
    diags.error("Invalid keystore", `keystore must be a keystore name "vaults/{vault}/keystores/{keystore}" such as mcko_keystore.aws.id; got ${JSON.stringify(c.keystore)}.`, "keystore");
  }
  if (typeof c.key === "string" && typeof c.keystore === "string") {
    const k = parseKeyName(c.key);
    const ks = parseKeystoreName(c.keystore);
    if (k && ks && k.vaultName !== ks.vaultName) diags.error("Keystore in another vault", `The keystore ${c.keystore} is not in the key's vault ${k.vaultName}.`, "keystore");
  }
}

/** True when the refreshed state shows the cloud copy differs from what the vault wants. */
export function needsRepair(s: Pick<KeyDistributionModel, "cloud_state" | "desired_state" | "sync_state" | "drift">): boolean {
  return s.sync_state === "DRIFTED" || s.sync_state === "FAILED" || (s.drift ?? []).length > 0 || (s.desired_state !== null && s.cloud_state !== s.desired_state);
}

const distributions = (client: DaemonClient): DistributionServiceClient => client.service(DistributionServiceClient);

export const keyDistributionResource = defineResource<KeyDistributionModel, DaemonClient>({
  typeName: "mcko_key_distribution",
  schema: keyDistributionSchema,

  validate: ({ config, diags }) => validateDistributionConfig(config as Planned, diags),

  plan: ({ prior, planned }) => {
    if (prior === null) return { planned };
    const out: Planned = { ...planned };
    if (typeof planned.key === "string" && typeof planned.keystore === "string" && (planned.key !== prior.key || planned.keystore !== prior.keystore)) return { planned: out };
    if (needsRepair(prior)) {
      // Show the repair: the cloud copy is to become what the vault wants; the rest is known after SyncDistribution.
      out.cloud_state = prior.desired_state;
      out.sync_state = UNKNOWN;
      out.drift = UNKNOWN;
      // Gone, or present in the wanted state but different (foreign material, alias): re-created or re-imported from
      // the vault. A key that is only disabled or enabled out of band keeps its cloud key.
      const gone = prior.cloud_state === "ABSENT" || prior.cloud_state === "DELETION_SCHEDULED";
      if (gone || (prior.cloud_state === prior.desired_state && (prior.drift ?? []).length > 0)) {
        out.cloud_key_id = UNKNOWN;
        out.cloud_key_uri = UNKNOWN;
      }
    }
    return { planned: out };
  },

  create: async ({ config, client, signal }) => {
    const svc = distributions(client);
    const r = await client.unary(
      svc.createDistribution.bind(svc),
      {
        parent: config.key ?? "",
        keystore: config.keystore ?? "",
        distribution: Distribution.fromPartial({ cloudName: config.cloud_name ?? "" }),
        requestId: crypto.randomUUID(),
      },
      signal,
    );
    return toModel(r.distribution!, config);
  },

  read: async ({ state, client, signal, diags }) => {
    const svc = distributions(client);
    const name = state.id ?? distributionName(state.key ?? "", state.keystore ?? "") ?? "";
    try {
      const r = await client.unary(svc.getDistribution.bind(svc), { name, readLive: true }, signal);
      return toModel(r.distribution!, state);
    } catch (err) {
      if (isNotFound(err)) return null;
      // The cloud may be unreachable: fall back to the daemon's last view, and say so.
      let r;
      try {
        r = await client.unary(svc.getDistribution.bind(svc), { name, readLive: false }, signal);
      } catch (err2) {
        if (isNotFound(err2)) return null;
        throw err2;
      }
      const why = describeDaemonError(err, client.address)[0];
      diags.warning(`Could not read ${name} from the cloud`, `${why?.summary ?? "error"}: ${why?.detail ?? ""}\nThe daemon's last recorded view is shown instead; drift may be missed.`);
      return toModel(r.distribution!, state);
    }
  },

  update: async ({ prior, client, signal, diags }) => {
    const svc = distributions(client);
    const r = await client.unary(svc.syncDistribution.bind(svc), { name: prior.id ?? "" }, signal);
    let d = r.distribution!;
    // Check the repair at the cloud itself, so an apply never claims a repair the next refresh would undo.
    if (d.syncState !== SyncState.SYNC_STATE_PENDING) {
      try {
        d = (await client.unary(svc.getDistribution.bind(svc), { name: prior.id ?? "", readLive: true }, signal)).distribution!;
      } catch {
        // the sync's own answer stands; the next refresh reads the cloud again
      }
    }
    const m = toModel(d, prior);
    if (m.sync_state !== "PENDING" && (m.cloud_state !== m.desired_state || needsRepair(m))) {
      // Recorded with the error, so the next plan shows the drift again instead of an "inconsistent result".
      diags.error(
        "Distribution not repaired",
        `SyncDistribution left ${m.id} with the cloud copy ${m.cloud_state} (wanted ${m.desired_state}), sync state ${m.sync_state}` +
          `${m.drift && m.drift.length > 0 ? `; drift: ${m.drift.join("; ")}` : ""}${d.lastError ? `; last error: ${d.lastError}` : ""}.`,
      );
    }
    return m;
  },

  delete: async ({ prior, client, signal }) => {
    const svc = distributions(client);
    try {
      await client.unary(svc.deleteDistribution.bind(svc), { name: prior.id ?? "" }, signal);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  },

  importState: async ({ id }) => {
    const n = parseDistributionName(id);
    if (!n) {
      throw new DiagnosticError(
        "Invalid import id",
        `Import a distribution by its name, "vaults/{vault}/keys/{key}/distributions/{keystore}", where {key} and {keystore} are ${CHILD_ID_RULE}; got ${JSON.stringify(id)}.`,
      );
    }
    return { id, key: n.key, keystore: n.keystore, cloud_name: null, cloud_key_id: null, cloud_key_uri: null, cloud_state: null, desired_state: null, sync_state: null, drift: null };
  },
});
