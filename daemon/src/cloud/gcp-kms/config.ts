/** Google Cloud KMS keystore settings: validation and the typed, defaulted form the connector uses. */
import { createPrivateKey } from "node:crypto";
import type { ConnectorCredentials, ConnectorSettings, FieldProblem } from "../connector.js";
import { endpointProblem } from "../aws-kms/config.js";

export const GCP_IMPORT_METHODS = [
  "RSA_OAEP_3072_SHA256_AES_256",
  "RSA_OAEP_4096_SHA256_AES_256",
  "RSA_OAEP_3072_SHA1_AES_256",
  "RSA_OAEP_4096_SHA1_AES_256",
  "RSA_OAEP_3072_SHA256",
  "RSA_OAEP_4096_SHA256",
] as const;
export type GcpImportMethod = (typeof GCP_IMPORT_METHODS)[number];

export const GCP_PROTECTION_LEVELS = ["HSM", "SOFTWARE"] as const;
export type GcpProtectionLevel = (typeof GCP_PROTECTION_LEVELS)[number];

export const GCP_CREDENTIAL_FIELDS = ["credentials_json"] as const;

export interface GcpKmsSettings {
  readonly project: string;
  readonly location: string;
  readonly keyRing: string;
  /** Where the client connects; undefined = cloudkms.googleapis.com:443 over TLS. */
  readonly endpoint: { readonly host: string; readonly port: number; readonly plaintext: boolean } | undefined;
  readonly importMethod: GcpImportMethod;
  readonly protectionLevel: GcpProtectionLevel;
}

/** The credential JSON kinds google-auth-library's `fromJSON` takes that MCKO accepts. */
export type GcpCredentialsJson =
  | { readonly type: "service_account"; readonly client_email: string; readonly private_key: string; readonly project_id?: string }
  | { readonly type: "authorized_user"; readonly client_id: string; readonly client_secret: string; readonly refresh_token: string };

// Project ids: 6-30 lower-case letters, digits and hyphens (optionally domain-scoped, `example.com:my-project`).
const PROJECT = /^(?:[a-z0-9.-]{1,63}:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$/;
const LOCATION = /^[a-z][a-z0-9-]{0,62}$/;
const RESOURCE_ID = /^[a-zA-Z0-9_-]{1,63}$/;

export function validateGcpSettings(s: ConnectorSettings, creds: ConnectorCredentials | undefined): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const project = s.project;
  if (typeof project !== "string" || project === "") problems.push({ field: "project", description: "is required: the Google Cloud project id, e.g. my-project" });
  else if (!PROJECT.test(project)) problems.push({ field: "project", description: `${JSON.stringify(project.slice(0, 40))} is not a project id (6-30 lower-case letters, digits and hyphens, starting with a letter)` });
  const location = s.location;
  if (typeof location !== "string" || location === "") problems.push({ field: "location", description: "is required, e.g. europe-west1 or global" });
  else if (!LOCATION.test(location)) problems.push({ field: "location", description: `${JSON.stringify(location.slice(0, 40))} is not a Cloud KMS location (like europe-west1, us or global)` });
  const ring = s.key_ring;
  if (typeof ring !== "string" || ring === "") problems.push({ field: "key_ring", description: "is required: the key ring id (created on the first push when missing)" });
  else if (!RESOURCE_ID.test(ring)) problems.push({ field: "key_ring", description: "must be 1-63 characters of letters, digits, underscores and hyphens" });
  let plaintext = false;
  if (s.endpoint !== undefined && s.endpoint !== "") {
    const parsed = parseEndpoint(String(s.endpoint));
    if (typeof parsed === "string") problems.push({ field: "endpoint", description: parsed });
    else plaintext = parsed.plaintext;
  }
  const method = s.import_method;
  if (method !== undefined && method !== "" && !(GCP_IMPORT_METHODS as readonly unknown[]).includes(method)) {
    problems.push({ field: "import_method", description: `must be one of ${GCP_IMPORT_METHODS.join(", ")}` });
  }
  const level = s.protection_level;
  if (level !== undefined && level !== "" && !(GCP_PROTECTION_LEVELS as readonly unknown[]).includes(level)) {
    problems.push({ field: "protection_level", description: `must be one of ${GCP_PROTECTION_LEVELS.join(", ")}` });
  }
  const json = creds?.credentials_json ?? "";
  if (json !== "") {
    const parsed = parseCredentialsJson(json);
    if (typeof parsed === "string") problems.push({ field: "credentials_json", description: parsed });
    else if (plaintext) problems.push({ field: "credentials_json", description: "cannot be used with a plaintext http:// endpoint (they would not be sent); use https:// or store no credentials" });
  }
  return problems;
}

/**
 * `https://host[:port]`, `host[:port]` (TLS) or `http://host:port` (plaintext gRPC, for emulators), or why not.
 * Never echoes user info from the URL.
 */
export function parseEndpoint(raw: string): { host: string; port: number; plaintext: boolean } | string {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(raw) ? raw : `https://${raw}`;
  const why = endpointProblem(withScheme);
  if (why) return why.replace("https://host[:port] (or http:// for a local emulator)", "https://host[:port], host[:port] or http://host:port (a local emulator)");
  const url = new URL(withScheme);
  const plaintext = url.protocol === "http:";
  if (plaintext && url.port === "") return "an http:// (plaintext) endpoint needs an explicit port";
  return { host: url.hostname.replace(/^\[(.*)\]$/, "$1"), port: url.port ? Number(url.port) : 443, plaintext };
}

/** The parsed credentials JSON, or why it is not usable (never echoing its content). */
export function parseCredentialsJson(json: string): GcpCredentialsJson | string {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return "is not JSON: expected the service account key file Google Cloud issued (type service_account)";
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) return "must be a JSON object (a service account key file)";
  const o = v as Record<string, unknown>;
  const str = (k: string) => (typeof o[k] === "string" && o[k] !== "" ? (o[k] as string) : undefined);
  if (o.type === "service_account") {
    const email = str("client_email");
    const key = str("private_key");
    if (!email || !key) return "is a service account key without client_email or private_key";
    try {
      createPrivateKey(key);
    } catch {
      return "is a service account key whose private_key is not a PEM private key";
    }
    return { type: "service_account", client_email: email, private_key: key, ...(str("project_id") ? { project_id: str("project_id")! } : {}) };
  }
  if (o.type === "authorized_user") {
    const id = str("client_id");
    const secret = str("client_secret");
    const refresh = str("refresh_token");
    if (!id || !secret || !refresh) return "is an authorized_user JSON without client_id, client_secret or refresh_token";
    return { type: "authorized_user", client_id: id, client_secret: secret, refresh_token: refresh };
  }
  return `has type ${JSON.stringify(typeof o.type === "string" ? o.type.slice(0, 40) : null)}; expected service_account (or authorized_user)`;
}

export function compileGcpSettings(s: ConnectorSettings): GcpKmsSettings {
  const ep = s.endpoint ? parseEndpoint(String(s.endpoint)) : undefined;
  return {
    project: String(s.project),
    location: String(s.location),
    keyRing: String(s.key_ring),
    endpoint: ep && typeof ep !== "string" ? ep : undefined,
    importMethod: (s.import_method as GcpImportMethod | undefined) || "RSA_OAEP_3072_SHA256_AES_256",
    protectionLevel: (s.protection_level as GcpProtectionLevel | undefined) || "HSM",
  };
}
