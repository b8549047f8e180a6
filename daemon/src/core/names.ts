/**
 * Resource names (AIP-122): parse and format in one place, never by concatenation at call sites.
 * Vault ids: 1–63 of [a-z0-9-], starting with a letter, not ending with '-'.
 * Key and keystore ids: 1–63 of [a-z0-9_-], starting with a letter.
 */

const VAULT_ID = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const CHILD_ID = /^[a-z][a-z0-9_-]{0,62}$/;

export interface VaultName {
  readonly vault: string;
}
export interface KeyName {
  readonly vault: string;
  readonly key: string;
}

export function isValidVaultId(id: string): boolean {
  return VAULT_ID.test(id);
}
export function isValidChildId(id: string): boolean {
  return CHILD_ID.test(id);
}

export const VAULT_ID_RULE = "must be 1-63 characters of lower-case letters, digits and hyphens, start with a letter and not end with a hyphen";
export const CHILD_ID_RULE = "must be 1-63 characters of lower-case letters, digits, hyphens and underscores, starting with a letter";

export function formatVaultName(vault: string): string {
  return `vaults/${vault}`;
}
export function formatKeyName(vault: string, key: string): string {
  return `vaults/${vault}/keys/${key}`;
}
export function formatKeystoreName(vault: string, keystore: string): string {
  return `vaults/${vault}/keystores/${keystore}`;
}
export function formatDistributionName(vault: string, key: string, keystore: string): string {
  return `vaults/${vault}/keys/${key}/distributions/${keystore}`;
}
export function formatAuditEventName(vault: string | undefined, seq: number): string {
  return `vaults/${vault ?? "-"}/auditEvents/${seq}`;
}

/** Parses `vaults/{vault}`; undefined when the string is not one. */
export function parseVaultName(name: string): VaultName | undefined {
  const parts = name.split("/");
  if (parts.length !== 2 || parts[0] !== "vaults" || !isValidVaultId(parts[1]!)) return undefined;
  return { vault: parts[1]! };
}

/** Parses `vaults/{vault}/keys/{key}`; undefined when the string is not one. */
export function parseKeyName(name: string): KeyName | undefined {
  const parts = name.split("/");
  if (parts.length !== 4 || parts[0] !== "vaults" || parts[2] !== "keys") return undefined;
  if (!isValidVaultId(parts[1]!) || !isValidChildId(parts[3]!)) return undefined;
  return { vault: parts[1]!, key: parts[3]! };
}

export interface KeystoreName {
  readonly vault: string;
  readonly keystore: string;
}
export interface DistributionName {
  readonly vault: string;
  readonly key: string;
  readonly keystore: string;
}

/** Parses `vaults/{vault}/keystores/{keystore}`; undefined when the string is not one. */
export function parseKeystoreName(name: string): KeystoreName | undefined {
  const parts = name.split("/");
  if (parts.length !== 4 || parts[0] !== "vaults" || parts[2] !== "keystores") return undefined;
  if (!isValidVaultId(parts[1]!) || !isValidChildId(parts[3]!)) return undefined;
  return { vault: parts[1]!, keystore: parts[3]! };
}

/** Parses `vaults/{vault}/keys/{key}/distributions/{keystore}`; undefined when the string is not one. */
export function parseDistributionName(name: string): DistributionName | undefined {
  const parts = name.split("/");
  if (parts.length !== 6 || parts[0] !== "vaults" || parts[2] !== "keys" || parts[4] !== "distributions") return undefined;
  if (!isValidVaultId(parts[1]!) || !isValidChildId(parts[3]!) || !isValidChildId(parts[5]!)) return undefined;
  return { vault: parts[1]!, key: parts[3]!, keystore: parts[5]! };
}

/** The vault a resource name belongs to (`vaults/{v}/…`), or undefined. */
export function vaultOfResource(name: string): string | undefined {
  const m = /^vaults\/([^/]+)/.exec(name);
  return m && isValidVaultId(m[1]!) ? m[1] : undefined;
}

/** Store keys: one namespace per record type so prefix listing never mixes types. */
export const storeKeys = {
  vault: (vault: string) => `vault/${vault}`,
  vaultPrefix: () => "vault/",
  key: (vault: string, key: string) => `key/${vault}/${key}`,
  keyPrefix: (vault: string) => `key/${vault}/`,
  request: (requestId: string) => `request/${requestId}`,
  keystore: (vault: string, keystore: string) => `keystore/${vault}/${keystore}`,
  keystorePrefix: (vault: string) => `keystore/${vault}/`,
  distribution: (vault: string, key: string, keystore: string) => `dist/${vault}/${key}/${keystore}`,
  distributionKeyPrefix: (vault: string, key: string) => `dist/${vault}/${key}/`,
  distributionVaultPrefix: (vault: string) => `dist/${vault}/`,
} as const;
