// The one place provider resources and data sources translate between mcko.v1 messages and Terraform values:
// resource names, enum names without prefix, RFC 3339 times and Go-style durations ("720h"). Semantic equality
// helpers let plan and read keep the user's spelling of a value the daemon normalises ("2026-01-01T00:00:00Z" vs
// "...00.000Z", "1440m" vs "24h"), so a normalised value never shows up as a change.
import { KeyAlgorithm, KeyState, type Key } from "../../../protos/gen/mcko/v1/key.js";
import { isKeyStateName, KEY_STATES, type KeyStateName } from "./key-states.js";

// ------------------------------------------------------------------ names (DESIGN.md resource model)

const VAULT_ID = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const CHILD_ID = /^[a-z][a-z0-9_-]{0,62}$/;

export const VAULT_ID_RULE = "1-63 lower-case letters, digits and hyphens, starting with a letter and not ending with a hyphen";
export const CHILD_ID_RULE = "1-63 lower-case letters, digits, hyphens and underscores, starting with a letter";

export function isValidVaultId(s: string): boolean {
  return VAULT_ID.test(s);
}
export function isValidChildId(s: string): boolean {
  return CHILD_ID.test(s);
}

export function formatVaultName(vault: string): string {
  return `vaults/${vault}`;
}

/** `vaults/{vault}` → the vault id, or undefined. */
export function parseVaultName(name: string): string | undefined {
  const m = /^vaults\/([^/]+)$/.exec(name);
  return m && isValidVaultId(m[1]!) ? m[1] : undefined;
}

export function formatKeyName(vaultName: string, key: string): string {
  return `${vaultName}/keys/${key}`;
}

/** `vaults/{vault}/keys/{key}` → its parts (vaultName is `vaults/{vault}`), or undefined. */
export function parseKeyName(name: string): { vaultName: string; key: string } | undefined {
  const m = /^(vaults\/[^/]+)\/keys\/([^/]+)$/.exec(name);
  if (!m || parseVaultName(m[1]!) === undefined || !isValidChildId(m[2]!)) return undefined;
  return { vaultName: m[1]!, key: m[2]! };
}

// ------------------------------------------------------------------ enums

export const ALGORITHMS = Object.keys(KeyAlgorithm)
  .filter((k) => k.startsWith("KEY_ALGORITHM_") && k !== "KEY_ALGORITHM_UNSPECIFIED")
  .map((k) => k.slice("KEY_ALGORITHM_".length));

export function algorithmToProto(name: string): KeyAlgorithm | undefined {
  const v = (KeyAlgorithm as unknown as Record<string, number>)[`KEY_ALGORITHM_${name}`];
  return v === undefined || v <= 0 ? undefined : (v as KeyAlgorithm);
}

export function algorithmName(a: KeyAlgorithm): string {
  const n = KeyAlgorithm[a];
  return n?.startsWith("KEY_ALGORITHM_") ? n.slice("KEY_ALGORITHM_".length) : String(a);
}

export function stateToProto(s: KeyStateName): KeyState {
  return (KeyState as unknown as Record<string, number>)[`KEY_STATE_${s}`] as KeyState;
}

export function stateName(s: KeyState): KeyStateName {
  const n = KeyState[s]?.slice("KEY_STATE_".length) ?? "";
  if (!isKeyStateName(n)) throw new Error(`the daemon returned an unknown key state ${s}`);
  return n;
}

export { KEY_STATES };

// ------------------------------------------------------------------ times (RFC 3339)

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/** Parses an RFC 3339 timestamp; undefined when it is not one. */
export function parseTime(s: string): Date | undefined {
  if (!RFC3339.test(s)) return undefined;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? undefined : d;
}

/** RFC 3339 in UTC, without fractional seconds when they are zero: `2026-01-01T00:00:00Z`. */
export function formatTime(d: Date): string {
  return d.toISOString().replace(/\.000Z$/, "Z");
}

/** The daemon's time as state: the prior spelling when it names the same instant, else the canonical form. */
export function timeState(d: Date | undefined, prior: unknown): string | null {
  if (!d) return null;
  if (typeof prior === "string" && parseTime(prior)?.getTime() === d.getTime()) return prior;
  return formatTime(d);
}

// ------------------------------------------------------------------ durations (Go syntax, as Terraform users write them)

const UNIT_SECONDS: Readonly<Record<string, number>> = { h: 3600, m: 60, s: 1 };

/** Parses "720h", "1h30m", "90m", "3600s" into whole seconds; undefined when malformed or fractional. */
export function parseDurationSeconds(s: string): number | undefined {
  if (!/^(?:\d+[hms])+$/.test(s)) return undefined;
  let total = 0;
  for (const m of s.matchAll(/(\d+)([hms])/g)) total += Number(m[1]) * (UNIT_SECONDS[m[2]!] ?? 0);
  return Number.isSafeInteger(total) ? total : undefined;
}

/** Whole seconds as the shortest Go-style spelling: 2592000 → "720h", 5400 → "1h30m". */
export function formatDuration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const out = `${h ? `${h}h` : ""}${m ? `${m}m` : ""}${s ? `${s}s` : ""}`;
  return out || "0s";
}

export function durationState(seconds: number | undefined, prior: unknown): string | null {
  if (!seconds) return null;
  if (typeof prior === "string" && parseDurationSeconds(prior) === seconds) return prior;
  return formatDuration(seconds);
}

// ------------------------------------------------------------------ key → Terraform values

export interface KeyVersionValue {
  number: number;
  kcv: string;
  kcv_method: string;
  create_time: string | null;
}

/** The attributes every key view shares (resource, data sources), from a daemon Key. `prior` keeps spellings. */
export function keyValues(k: Key, prior: Readonly<Record<string, unknown>> = {}) {
  const name = parseKeyName(k.name);
  const primary = k.versions.find((v) => v.versionNumber === k.primaryVersion);
  const priorLabels = prior["labels"];
  const labels = Object.keys(k.labels).length > 0 ? { ...k.labels } : priorLabels && typeof priorLabels === "object" ? {} : null;
  return {
    id: k.name,
    vault: name?.vaultName ?? null,
    name: name?.key ?? null,
    algorithm: algorithmName(k.algorithm),
    state: stateName(k.state),
    activation_time: timeState(k.activationTime, prior["activation_time"]),
    deactivation_time: timeState(k.deactivationTime, prior["deactivation_time"]),
    rotation_period: durationState(k.rotationPeriod ? Number(k.rotationPeriod.seconds) : undefined, prior["rotation_period"]),
    labels: labels as Record<string, string> | null,
    primary_version: k.primaryVersion,
    kcv: primary?.kcv ?? "",
    versions: k.versions.map(
      (v): KeyVersionValue => ({
        number: v.versionNumber,
        kcv: v.kcv,
        kcv_method: v.kcvMethod,
        create_time: v.createTime ? formatTime(v.createTime) : null,
      }),
    ),
  };
}

export type KeyValues = ReturnType<typeof keyValues>;
