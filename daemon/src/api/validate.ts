/**
 * Declarative request checks for the API layer. Each check records a field violation with the proto field path
 * instead of throwing, so one response lists every problem.
 */
import { Violations } from "../core/errors.js";
import { CHILD_ID_RULE, VAULT_ID_RULE, isValidChildId, isValidVaultId, parseKeyName, parseVaultName, type KeyName } from "../core/names.js";

export const MAX_STRING = 1024;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[1-8][0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/i;

export class Checks extends Violations {
  required(field: string, value: string | undefined): value is string {
    if (value === undefined || value === "") {
      this.add(field, "is required");
      return false;
    }
    return true;
  }

  maxLength(field: string, value: string, max = MAX_STRING): void {
    if (value.length > max) this.add(field, `must be at most ${max} characters (got ${value.length})`);
  }

  vaultName(field: string, value: string): string | undefined {
    if (!this.required(field, value)) return undefined;
    const n = parseVaultName(value);
    if (!n) this.add(field, `must be a vault name "vaults/{vault}" where {vault} ${VAULT_ID_RULE}; got ${quote(value)}`);
    return n?.vault;
  }

  keyName(field: string, value: string): KeyName | undefined {
    if (!this.required(field, value)) return undefined;
    const n = parseKeyName(value);
    if (!n) this.add(field, `must be a key name "vaults/{vault}/keys/{key}" where {key} ${CHILD_ID_RULE}; got ${quote(value)}`);
    return n;
  }

  vaultId(field: string, value: string): void {
    if (this.required(field, value) && !isValidVaultId(value)) this.add(field, `${VAULT_ID_RULE}; got ${quote(value)}`);
  }

  childId(field: string, value: string): void {
    if (this.required(field, value) && !isValidChildId(value)) this.add(field, `${CHILD_ID_RULE}; got ${quote(value)}`);
  }

  requestId(field: string, value: string): void {
    if (value !== "" && !UUID.test(value)) this.add(field, `must be a UUID (e.g. from uuidgen); got ${quote(value)}`);
  }

  pageSize(field: string, value: number): void {
    if (value < 0) this.add(field, "must not be negative");
  }

  labels(field: string, labels: Record<string, string>): void {
    const entries = Object.entries(labels);
    if (entries.length > 64) this.add(field, `at most 64 labels (got ${entries.length})`);
    for (const [k, v] of entries.slice(0, 100)) {
      if (!/^[a-z][a-z0-9_-]{0,62}$/.test(k)) this.add(`${field}[${quote(k)}]`, "label keys must be 1-63 characters [a-z0-9_-] starting with a letter");
      if (!/^[a-z0-9_-]{0,63}$/.test(v)) this.add(`${field}[${quote(k)}]`, "label values must be at most 63 characters [a-z0-9_-]");
    }
  }
}

function quote(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

/** Clamps a page size: 0 → default, above the maximum → maximum (AIP-158). */
export function pageSizeOf(requested: number, def: number, max = 1000): number {
  if (requested <= 0) return def;
  return Math.min(requested, max);
}
