// mcko_key: a key in a vault (DESIGN.md "Terraform provider"). vault, name and algorithm force a new key. `state`
// walks the NIST SP 800-57 state machine: a change NIST forbids (DESTROYED → ACTIVE) is a plan-time error on the
// `state` attribute path; an allowed change that needs several SetKeyState calls (ACTIVE → DESTROYED goes through
// DEACTIVATED) is applied step by step. Metadata changes go through UpdateKey with an update_mask of the changed
// attributes, before any state change (activation_time may only change while PRE_ACTIVATION). Destroying moves the
// key through DEACTIVATED to DESTROYED (material erased) and deletes its metadata; what the daemon refuses there is
// a warning, and the key leaves the state (like the Google provider's CryptoKey). Refresh reads the daemon, so a
// key changed out of band (suspended, relabelled) shows up as a plan that repairs it.
import { describeDaemonError } from "../client/errors.js";
import type { DaemonClient } from "../client/daemon-client.js";
import { readKey } from "../client/key-reads.js";
import { isUnknown, types, UNKNOWN } from "../plugin/cty.js";
import { type AttributePath, DiagnosticError, type Diagnostics } from "../plugin/diagnostics.js";
import { defineResource, type MaybeUnknown } from "../plugin/resource.js";
import type { Attribute, Schema } from "../plugin/schema.js";
import { Key, type KeyState } from "../../../protos/gen/mcko/v1/key.js";
import {
  ALGORITHMS,
  algorithmToProto,
  CHILD_ID_RULE,
  formatKeyName,
  isValidChildId,
  keyValues,
  type KeyVersionValue,
  parseDurationSeconds,
  parseKeyName,
  parseTime,
  parseVaultName,
  stateToProto,
} from "./convert.js";
import { errorReason, isNotFound, isRefusal } from "./daemon-errors.js";
import { directTargets, isKeyStateName, KEY_STATES, type KeyStateName, satisfies, transitionPath } from "./key-states.js";

export interface KeyModel {
  id: string | null;
  vault: string | null;
  name: string | null;
  algorithm: string | null;
  state: string | null;
  activation_time: string | null;
  deactivation_time: string | null;
  rotation_period: string | null;
  labels: Record<string, string> | null;
  primary_version: number | null;
  kcv: string | null;
  versions: KeyVersionValue[] | null;
}

type Planned = { [K in keyof KeyModel]: MaybeUnknown<KeyModel[K]> };

export const MIN_ROTATION_SECONDS = 3600;
export const MAX_ROTATION_SECONDS = 100 * 365 * 24 * 3600;

/** The `versions` element: computed, public facts only (never material). Shared with the data sources. */
export const versionsAttribute: Attribute = {
  computed: true,
  description: "Every version of the key, oldest first. Public facts only: the material never leaves the vault.",
  nested: {
    nesting: "list",
    attributes: {
      number: { type: types.number, computed: true, description: "Version number: 1 for the first, one more per rotation." },
      kcv: { type: types.string, computed: true, description: "Key check value of this version, lower-case hex; empty once the material is destroyed." },
      kcv_method: {
        type: types.string,
        computed: true,
        description: "How `kcv` was computed: `enc-zero` (AES), `hmac-empty` (HMAC) or `spki-sha256` (RSA and EC: SHA-256 of the public key).",
      },
      create_time: { type: types.string, computed: true, description: "When this version was generated (RFC 3339)." },
    },
  },
};

const STATE_DOC =
  `Lifecycle state (NIST SP 800-57): one of ${KEY_STATES.join(", ")}. Default: ACTIVE, or PRE_ACTIVATION while ` +
  "activation_time is in the future, or DEACTIVATED once deactivation_time has passed. Transitions NIST forbids " +
  "(e.g. DESTROYED to ACTIVE) fail at plan time; allowed changes needing several steps are applied in order.";

export const keySchema: Schema = {
  version: 0,
  block: {
    description: "A key generated in the vault's HSM and kept wrapped under its master key; Terraform drives its NIST lifecycle.",
    attributes: {
      id: { type: types.string, computed: true, description: "The key's resource name, `vaults/{vault}/keys/{name}`." },
      vault: {
        type: types.string,
        required: true,
        requiresReplace: true,
        description: "The vault holding the key, `vaults/{vault}` (e.g. `mcko_vault.main.id`). Changing it replaces the key.",
      },
      name: { type: types.string, required: true, requiresReplace: true, description: `The key id within the vault: ${CHILD_ID_RULE}. Changing it replaces the key.` },
      algorithm: {
        type: types.string,
        required: true,
        requiresReplace: true,
        description: `Key algorithm: one of ${ALGORITHMS.join(", ")}. Changing it replaces the key.`,
      },
      state: { type: types.string, optional: true, computed: true, description: STATE_DOC },
      activation_time: {
        type: types.string,
        optional: true,
        computed: true,
        description: "When the key becomes ACTIVE (RFC 3339). While in the future the key waits in PRE_ACTIVATION. Can only change while the key is PRE_ACTIVATION. Set by the daemon on activation when not given.",
      },
      deactivation_time: {
        type: types.string,
        optional: true,
        computed: true,
        description: "When an ACTIVE or SUSPENDED key becomes DEACTIVATED (RFC 3339); must be after activation_time. Set by the daemon on deactivation when not given.",
      },
      rotation_period: {
        type: types.string,
        optional: true,
        description: 'Rotate automatically this long after the last rotation, as a duration in hours, minutes and seconds (e.g. "720h"); at least 1h, at most 100 years. Unset: no scheduled rotation.',
      },
      labels: { type: types.map(types.string), optional: true, description: "Labels: at most 64; keys 1-63 characters `[a-z][a-z0-9_-]*`, values at most 63 characters `[a-z0-9_-]*`." },
      primary_version: { type: types.number, computed: true, description: "Number of the version used for new operations and pushed to keystores." },
      kcv: { type: types.string, computed: true, description: "Key check value of the primary version (empty once destroyed)." },
      versions: versionsAttribute,
    },
  },
};

const LABEL_KEY = /^[a-z][a-z0-9_-]{0,62}$/;
const LABEL_VALUE = /^[a-z0-9_-]{0,63}$/;

/** Config checks shared by validate (they need no daemon). */
function validateKeyConfig(c: Planned, diags: Diagnostics): void {
  if (typeof c.vault === "string" && parseVaultName(c.vault) === undefined) {
    diags.error("Invalid vault", `vault must be a vault name "vaults/{vault}" such as mcko_vault.main.id; got ${JSON.stringify(c.vault)}.`, "vault");
  }
  if (typeof c.name === "string" && !isValidChildId(c.name)) diags.error("Invalid key name", `name must be ${CHILD_ID_RULE}; got ${JSON.stringify(c.name)}.`, "name");
  if (typeof c.algorithm === "string" && algorithmToProto(c.algorithm) === undefined) {
    diags.error("Invalid algorithm", `algorithm must be one of ${ALGORITHMS.join(", ")}; got ${JSON.stringify(c.algorithm)}.`, "algorithm");
  }
  if (typeof c.state === "string" && !isKeyStateName(c.state)) {
    diags.error("Invalid state", `state must be one of ${KEY_STATES.join(", ")}; got ${JSON.stringify(c.state)}.`, "state");
  }
  const times: Partial<Record<"activation_time" | "deactivation_time", Date>> = {};
  for (const k of ["activation_time", "deactivation_time"] as const) {
    const v = c[k];
    if (typeof v !== "string") continue;
    const d = parseTime(v);
    if (d) times[k] = d;
    else diags.error(`Invalid ${k}`, `${k} must be an RFC 3339 timestamp such as "2026-01-01T00:00:00Z"; got ${JSON.stringify(v)}.`, k);
  }
  if (times.activation_time && times.deactivation_time && times.deactivation_time <= times.activation_time) {
    diags.error("Invalid deactivation_time", "deactivation_time must be after activation_time.", "deactivation_time");
  }
  if (typeof c.rotation_period === "string") {
    const s = parseDurationSeconds(c.rotation_period);
    if (s === undefined || s < MIN_ROTATION_SECONDS || s > MAX_ROTATION_SECONDS) {
      diags.error(
        "Invalid rotation_period",
        `rotation_period must be a duration such as "720h" or "1h30m" (units h, m, s), from 1h to 100 years; got ${JSON.stringify(c.rotation_period)}. Leave it unset for no scheduled rotation.`,
        "rotation_period",
      );
    }
  }
  const labels = c.labels;
  if (labels !== null && !isUnknown(labels)) {
    const entries = Object.entries(labels);
    if (entries.length > 64) diags.error("Too many labels", `at most 64 labels; got ${entries.length}.`, "labels");
    for (const [k, v] of entries) {
      const path: AttributePath = [{ attribute: "labels" }, { key: k }];
      if (!LABEL_KEY.test(k)) diags.error("Invalid label key", `label keys must be 1-63 characters [a-z0-9_-] starting with a letter; got ${JSON.stringify(k)}.`, path);
      if (typeof v === "string" && !LABEL_VALUE.test(v)) diags.error("Invalid label value", `label values must be at most 63 characters [a-z0-9_-]; got ${JSON.stringify(v)}.`, path);
    }
  }
}

/** The state a key gets when the configuration does not say: follows the schedule (see STATE_DOC). */
export function defaultState(activation: Date | undefined, deactivation: Date | undefined, now: Date): KeyStateName {
  if (deactivation && deactivation <= now) return "DEACTIVATED";
  if (activation && activation > now) return "PRE_ACTIVATION";
  return "ACTIVE";
}

/** Where CreateKey starts: PRE_ACTIVATION when asked for or while activation_time is in the future, else ACTIVE. */
function initialState(wanted: KeyStateName, activation: Date | undefined, now: Date): "PRE_ACTIVATION" | "ACTIVE" {
  return wanted === "PRE_ACTIVATION" || (activation !== undefined && activation > now) ? "PRE_ACTIVATION" : "ACTIVE";
}

const transitionDetail = (from: KeyStateName, to: KeyStateName): string => {
  const next = directTargets(from);
  return (
    `NIST SP 800-57 does not allow a key to go from ${from} to ${to} (KEY_STATE_TRANSITION_NOT_ALLOWED). ` +
    (next.length > 0 ? `From ${from} the key can go to: ${next.join(", ")}.` : `${from} is final: set state = "${from}" or replace the key.`)
  );
};

/** A time attribute: the prior spelling when config names the same instant (so a reformatted time is no change). */
function sameInstant(a: MaybeUnknown<string | null>, b: string | null | undefined): boolean {
  if (typeof a !== "string" || typeof b !== "string" || a === b) return a === b;
  return parseTime(a)?.getTime() === parseTime(b)?.getTime();
}

const sameLabels = (a: Record<string, string> | null, b: Record<string, string> | null): boolean => {
  const x = a ?? {};
  const y = b ?? {};
  return Object.keys(x).length === Object.keys(y).length && Object.entries(x).every(([k, v]) => y[k] === v);
};

const sameDuration = (a: string | null, b: string | null): boolean => (a === null || b === null ? a === b : parseDurationSeconds(a) === parseDurationSeconds(b));

const COMPROMISE_REASON = "state = COMPROMISED set in the Terraform configuration (mcko_key)";

/**
 * Moves the key to a state satisfying `target` with SetKeyState calls in NIST order, and returns it. The daemon may
 * move the key itself meanwhile (scheduled activation or deactivation): when a step is refused as a transition, the
 * key is read again and the path recomputed from where it really is (a few times at most).
 */
async function walk(client: DaemonClient, key: Key, target: KeyStateName, signal: AbortSignal): Promise<Key> {
  let k = key;
  for (let rereads = 0; ; ) {
    const from = keyState(k);
    const path = transitionPath(from, target);
    if (path === undefined) throw new DiagnosticError("Key state transition not allowed", transitionDetail(from, target), "state");
    const step = path[0];
    if (step === undefined) return k;
    try {
      const r = await client.unary(
        client.keys.setKeyState.bind(client.keys),
        { name: k.name, state: stateToProto(step.request), etag: "", reason: step.request === "COMPROMISED" ? COMPROMISE_REASON : "" },
        signal,
      );
      k = r.key!;
    } catch (err) {
      if (errorReason(err) !== "KEY_STATE_TRANSITION_NOT_ALLOWED" || ++rereads > 3) throw err;
      k = (await client.unary(client.keys.getKey.bind(client.keys), { name: k.name }, signal)).key!;
    }
  }
}

/** State values for a daemon key; `planned` keeps the configuration's spellings and its DESTROYED for DESTROYED_COMPROMISED. */
function toModel(k: Key, prior: Partial<Record<keyof KeyModel, unknown>>): KeyModel {
  const v = keyValues(k, prior);
  const wanted = prior.state;
  const state = typeof wanted === "string" && isKeyStateName(wanted) && satisfies(v.state, wanted) ? wanted : v.state;
  return { ...v, state };
}

const keyState = (k: Key): KeyStateName => toModel(k, {}).state as KeyStateName;

export const keyResource = defineResource<KeyModel, DaemonClient>({
  typeName: "mcko_key",
  schema: keySchema,

  validate: ({ config, diags }) => validateKeyConfig(config as Planned, diags),

  plan: ({ prior, config, planned, diags }) => {
    const out: Planned = { ...planned };
    const now = new Date();
    // Keep the prior spelling of values the daemon normalises, so they never show as a change.
    if (prior !== null) {
      for (const k of ["activation_time", "deactivation_time"] as const) if (sameInstant(out[k], prior[k])) out[k] = prior[k];
      if (typeof out.rotation_period === "string" && sameDuration(out.rotation_period, prior.rotation_period)) out.rotation_period = prior.rotation_period;
    }
    // The schedule as it will be: configured times, else the ones the key already has.
    const timeOf = (k: "activation_time" | "deactivation_time"): Date | undefined | "unknown" => {
      const c = config[k];
      if (isUnknown(c)) return "unknown";
      if (typeof c === "string") return parseTime(c);
      const p = prior?.[k];
      return typeof p === "string" ? parseTime(p) : undefined;
    };
    const activation = timeOf("activation_time");
    const deactivation = timeOf("deactivation_time");
    if (activation === "unknown" || deactivation === "unknown" || isUnknown(config.state)) return { planned: out };
    let wanted: KeyStateName;
    if (typeof config.state === "string") {
      if (!isKeyStateName(config.state)) return { planned: out }; // validate reported it
      wanted = config.state;
    } else wanted = defaultState(activation, deactivation, now);

    const priorState = prior?.state;
    const from: KeyStateName = typeof priorState === "string" && isKeyStateName(priorState) ? priorState : initialState(wanted, activation, now);
    const path = transitionPath(from, wanted);
    if (path === undefined) {
      diags.error("Key state transition not allowed", transitionDetail(from, wanted), "state");
      return { planned: out };
    }
    const end = path.length > 0 ? path[path.length - 1]!.result : from;
    // DESTROYED in config is satisfied by DESTROYED_COMPROMISED: plan the configured word unless already there.
    out.state = path.length === 0 && prior !== null ? from : end === "DESTROYED_COMPROMISED" && wanted === "DESTROYED" ? wanted : end;

    // activation_time may only change while PRE_ACTIVATION (the daemon says KEY_ALREADY_ACTIVATED otherwise).
    if (prior !== null && prior.state !== "PRE_ACTIVATION" && typeof out.activation_time === "string" && !sameInstant(out.activation_time, prior.activation_time)) {
      diags.error(
        "activation_time cannot change",
        `The key is ${prior.state}: activation_time can only change while the key is PRE_ACTIVATION. Remove activation_time from the configuration (the key keeps ${prior.activation_time ?? "none"}) or set it to that value.`,
        "activation_time",
      );
    }
    // Stepping into ACTIVE or DEACTIVATED stamps the time unless one has passed: configured future times would be overwritten.
    let at = from;
    for (const step of path) {
      if (step.result === "ACTIVE" && at === "PRE_ACTIVATION" && (activation === undefined || activation > now)) {
        if (typeof config.activation_time === "string") {
          diags.error(
            "Key cannot be activated before activation_time",
            `state = "${wanted}" needs the key activated now, but activation_time ${config.activation_time} is in the future. Leave state unset (the key activates at that time) or set state = "PRE_ACTIVATION".`,
            "state",
          );
        } else out.activation_time = UNKNOWN;
      }
      if (step.result === "DEACTIVATED" && (deactivation === undefined || deactivation > now)) {
        if (typeof config.deactivation_time === "string") {
          diags.error(
            "Key cannot be deactivated before deactivation_time",
            `state = "${wanted}" deactivates the key now, but deactivation_time ${config.deactivation_time} is in the future. Remove deactivation_time or set it to a time that has passed.`,
            "state",
          );
        } else out.deactivation_time = UNKNOWN;
      }
      at = step.result;
    }
    // Destroying erases the material: every KCV becomes empty.
    if (prior !== null && path.some((s) => s.result === "DESTROYED" || s.result === "DESTROYED_COMPROMISED")) {
      out.kcv = UNKNOWN;
      out.versions = UNKNOWN;
    }
    return { planned: out };
  },

  create: async ({ config, planned, client, signal, diags }) => {
    const vaultName = config.vault ?? "";
    const now = new Date();
    const activation = config.activation_time ? parseTime(config.activation_time) : undefined;
    const deactivation = config.deactivation_time ? parseTime(config.deactivation_time) : undefined;
    const wanted = (typeof planned.state === "string" && isKeyStateName(planned.state) ? planned.state : defaultState(activation, deactivation, now)) as KeyStateName;
    const start = initialState(wanted, activation, now);
    const rotation = config.rotation_period ? parseDurationSeconds(config.rotation_period) : undefined;
    const created = await client.unary(
      client.keys.createKey.bind(client.keys),
      {
        parent: vaultName,
        keyId: config.name ?? "",
        key: Key.fromPartial({
          algorithm: algorithmToProto(config.algorithm ?? ""),
          ...(activation ? { activationTime: activation } : {}),
          ...(deactivation ? { deactivationTime: deactivation } : {}),
          ...(rotation ? { rotationPeriod: { seconds: BigInt(rotation), nanos: 0 } } : {}),
          labels: config.labels ?? {},
        }),
        initialState: stateToProto(start),
        requestId: crypto.randomUUID(),
      },
      signal,
    );
    let key = created.key!;
    try {
      key = await walk(client, key, wanted, signal);
    } catch (err) {
      // The key exists: record it (Terraform marks it tainted) rather than lose track of it.
      diags.add(...describeDaemonError(err, client.address));
    }
    return toModel(key, planned as Partial<KeyModel>);
  },

  // Served from one listing of the vault per plan when many keys of a vault are refreshed (client/key-reads.ts).
  read: async ({ state, client, signal }) => {
    const key = await readKey(client, state.id ?? "", signal);
    return key === null ? null : toModel(key, { ...state, state: null });
  },

  update: async ({ prior, config, planned, client, signal }) => {
    const name = prior.id ?? "";
    const mask: string[] = [];
    if (!sameInstant(config.activation_time ?? prior.activation_time, prior.activation_time)) mask.push("activation_time");
    if (!sameInstant(config.deactivation_time ?? prior.deactivation_time, prior.deactivation_time)) mask.push("deactivation_time");
    if (!sameDuration(config.rotation_period, prior.rotation_period)) mask.push("rotation_period");
    if (!sameLabels(config.labels, prior.labels)) mask.push("labels");
    let key: Key;
    if (mask.length > 0) {
      const activation = config.activation_time ? parseTime(config.activation_time) : undefined;
      const deactivation = config.deactivation_time ? parseTime(config.deactivation_time) : undefined;
      const rotation = config.rotation_period ? parseDurationSeconds(config.rotation_period) : undefined;
      const r = await client.unary(
        client.keys.updateKey.bind(client.keys),
        {
          key: Key.fromPartial({
            name,
            ...(activation ? { activationTime: activation } : {}),
            ...(deactivation ? { deactivationTime: deactivation } : {}),
            ...(rotation ? { rotationPeriod: { seconds: BigInt(rotation), nanos: 0 } } : {}),
            labels: config.labels ?? {},
          }),
          updateMask: mask,
        },
        signal,
      );
      key = r.key!;
    } else {
      key = (await client.unary(client.keys.getKey.bind(client.keys), { name }, signal)).key!;
    }
    const wanted = planned.state;
    if (typeof wanted === "string" && isKeyStateName(wanted)) {
      key = await walk(client, key, wanted, signal);
    }
    return toModel(key, planned as Partial<KeyModel>);
  },

  delete: async ({ prior, client, signal, diags }) => {
    const name = prior.id ?? "";
    let key: Key;
    try {
      key = (await client.unary(client.keys.getKey.bind(client.keys), { name }, signal)).key!;
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const refused = (what: string, err: unknown): void => {
      const why = describeDaemonError(err, client.address)[0];
      diags.warning(
        `The MCKO daemon refused to ${what} ${name}`,
        `${why?.summary ?? "refused"}: ${why?.detail ?? ""}\nThe key was removed from the Terraform state; it is still in the vault in state ${keyState(key)}.`,
      );
    };
    try {
      key = await walk(client, key, "DESTROYED", signal);
    } catch (err) {
      if (isNotFound(err)) return;
      if (!isRefusal(err)) throw err;
      return refused("destroy", err);
    }
    try {
      await client.unary(client.keys.deleteKey.bind(client.keys), { name, etag: "" }, signal);
    } catch (err) {
      if (isNotFound(err)) return;
      if (!isRefusal(err)) throw err;
      refused("delete the metadata of", err);
    }
  },

  importState: async ({ id }) => {
    const n = parseKeyName(id);
    if (!n) {
      throw new DiagnosticError(
        "Invalid import id",
        `Import a key by its name, "vaults/{vault}/keys/{key}", where {key} is ${CHILD_ID_RULE}; got ${JSON.stringify(id)}.`,
      );
    }
    return {
      id: formatKeyName(n.vaultName, n.key),
      vault: n.vaultName,
      name: n.key,
      algorithm: null,
      state: null,
      activation_time: null,
      deactivation_time: null,
      rotation_period: null,
      labels: null,
      primary_version: null,
      kcv: null,
      versions: null,
    };
  },
});

export type { KeyState };
