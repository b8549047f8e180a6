/**
 * Roles and permissions. Roles are granted per vault (or on `*`, every vault) by the client certificate (see
 * pki/certificates.ts); everything not granted is denied. Pure: no I/O.
 */

export const ROLES = ["admin", "key-custodian", "auditor", "viewer"] as const;
export type Role = (typeof ROLES)[number];

export function isRole(s: string): s is Role {
  return (ROLES as readonly string[]).includes(s);
}

export type Permission =
  | "vaults.create"
  | "vaults.update"
  | "vaults.delete"
  | "vaults.get"
  | "keys.get"
  | "keys.list"
  | "keys.create"
  | "keys.update"
  | "keys.delete"
  | "keys.setState"
  | "keys.rotate"
  | "audit.list"
  | "audit.verify"
  | "keystores.get"
  | "keystores.list"
  | "keystores.create"
  | "keystores.update"
  | "keystores.delete"
  | "keystores.test"
  | "distributions.get"
  | "distributions.list"
  | "distributions.create"
  | "distributions.delete"
  | "distributions.sync"
  | "masterKey.rotate"
  | "masterKey.get";

/** Keystores and distributions: read for every role, write for admin and key-custodian. */
const KEYSTORE_READ: readonly Permission[] = ["keystores.get", "keystores.list", "distributions.get", "distributions.list"];
const KEYSTORE_WRITE: readonly Permission[] = ["keystores.create", "keystores.update", "keystores.delete", "keystores.test", "distributions.create", "distributions.delete", "distributions.sync"];

const ROLE_PERMISSIONS: Readonly<Record<Role, ReadonlySet<Permission>>> = {
  admin: new Set<Permission>([
    "vaults.create", "vaults.update", "vaults.delete", "vaults.get",
    "keys.get", "keys.list", "keys.create", "keys.update", "keys.delete", "keys.setState", "keys.rotate",
    "audit.list", "audit.verify",
    ...KEYSTORE_WRITE, ...KEYSTORE_READ,
    "masterKey.rotate", "masterKey.get",
  ]),
  "key-custodian": new Set<Permission>(["vaults.get", "keys.get", "keys.list", "keys.create", "keys.update", "keys.delete", "keys.setState", "keys.rotate", ...KEYSTORE_WRITE, ...KEYSTORE_READ]),
  auditor: new Set<Permission>(["vaults.get", "keys.get", "keys.list", "audit.list", "audit.verify", ...KEYSTORE_READ]),
  viewer: new Set<Permission>(["vaults.get", "keys.get", "keys.list", ...KEYSTORE_READ]),
};

export interface RoleGrant {
  readonly role: Role;
  /** A vault id, or `*` for every vault. */
  readonly vault: string;
}

/** An authenticated caller. `subject` is what the audit log records (`CN=…`). */
export interface Principal {
  readonly subject: string;
  readonly grants: readonly RoleGrant[];
}

/** The daemon itself, for scheduled work (activation, deactivation, rotation). */
export const SYSTEM_PRINCIPAL: Principal = Object.freeze({ subject: "system", grants: Object.freeze([{ role: "admin" as const, vault: "*" }]) });

/**
 * Whether `principal` holds `permission` on `vault`. `vault` = `*` asks for a grant on every vault (daemon-wide
 * operations such as creating a vault or reading the whole audit log).
 */
export function isAllowed(principal: Principal, permission: Permission, vault: string): boolean {
  return principal.grants.some((g) => (g.vault === "*" || (vault !== "*" && g.vault === vault)) && ROLE_PERMISSIONS[g.role].has(permission));
}

/** Whether the principal holds any role on `vault` (used to filter ListVaults). */
export function hasAnyRole(principal: Principal, vault: string): boolean {
  return principal.grants.some((g) => g.vault === "*" || g.vault === vault);
}
