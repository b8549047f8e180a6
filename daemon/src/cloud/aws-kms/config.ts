/** AWS KMS keystore settings: validation and the typed, defaulted form the connector uses. */
import type { ConnectorCredentials, ConnectorSettings, FieldProblem } from "../connector.js";

export const AWS_WRAPPING_ALGORITHMS = ["RSA_AES_KEY_WRAP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"] as const;
export type AwsWrappingAlgorithm = (typeof AWS_WRAPPING_ALGORITHMS)[number];

export const AWS_CREDENTIAL_FIELDS = ["access_key_id", "secret_access_key", "session_token"] as const;

export interface AwsKmsSettings {
  readonly region: string;
  /** Endpoint override; undefined = the region's public endpoint. */
  readonly endpoint: string | undefined;
  readonly wrappingAlgorithm: AwsWrappingAlgorithm;
  /** 0 = material does not expire. */
  readonly materialValidDays: number;
  readonly aliasPrefix: string;
}

// Partition prefixes AWS uses (us, eu, ap, sa, ca, me, af, il, mx, cn, us-gov, us-iso…): two letters, words, a number.
const REGION = /^[a-z]{2}(?:-[a-z]+)+-\d{1,2}$/;
const ALIAS_PREFIX = /^[a-zA-Z0-9:/_-]{0,64}$/;
const ACCESS_KEY_ID = /^[A-Z0-9]{16,128}$/;

export function validateAwsSettings(s: ConnectorSettings, creds: ConnectorCredentials | undefined): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const region = s.region;
  if (typeof region !== "string" || region === "") problems.push({ field: "region", description: "is required, e.g. us-east-1" });
  else if (!REGION.test(region)) problems.push({ field: "region", description: `${JSON.stringify(region.slice(0, 40))} is not an AWS region name (like us-east-1 or eu-central-2)` });
  const endpoint = s.endpoint;
  if (endpoint !== undefined && endpoint !== "") {
    const why = endpointProblem(String(endpoint));
    if (why) problems.push({ field: "endpoint", description: why });
  }
  const wa = s.wrapping_algorithm;
  if (wa !== undefined && wa !== "" && !(AWS_WRAPPING_ALGORITHMS as readonly unknown[]).includes(wa)) {
    problems.push({ field: "wrapping_algorithm", description: `must be one of ${AWS_WRAPPING_ALGORITHMS.join(", ")}` });
  }
  const days = s.material_valid_days;
  if (days !== undefined && (typeof days !== "number" || !Number.isInteger(days) || days < 0 || days > 365)) {
    problems.push({ field: "material_valid_days", description: "must be 0 (does not expire) or 1-365 days" });
  }
  const prefix = s.alias_prefix;
  if (prefix !== undefined && (typeof prefix !== "string" || !ALIAS_PREFIX.test(prefix) || prefix.startsWith("aws/"))) {
    problems.push({ field: "alias_prefix", description: "must be at most 64 characters of [a-zA-Z0-9:/_-] and not start with aws/" });
  }
  if (creds) {
    const id = creds.access_key_id ?? "";
    if (id === "") problems.push({ field: "access_key_id", description: "is required with stored credentials" });
    else if (!ACCESS_KEY_ID.test(id)) problems.push({ field: "access_key_id", description: "is not an AWS access key id (16-128 upper-case letters and digits)" });
    if ((creds.secret_access_key ?? "") === "") problems.push({ field: "secret_access_key", description: "is required with stored credentials" });
  }
  return problems;
}

/** Why `raw` is not a usable endpoint URL, or undefined. Never echoes user info from the URL. */
export function endpointProblem(raw: string): string | undefined {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return "is not a URL: use https://host[:port] (or http:// for a local emulator)";
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return `must use https:// or http://, not ${url.protocol}`;
  if (url.username || url.password) return "must not contain user info (credentials go in the credential fields)";
  if (url.hostname === "") return "has no host";
  if ((url.pathname !== "/" && url.pathname !== "") || url.search || url.hash) return "must be just scheme://host[:port], without a path, query or fragment";
  return undefined;
}

export function compileAwsSettings(s: ConnectorSettings): AwsKmsSettings {
  return {
    region: String(s.region),
    endpoint: s.endpoint ? String(s.endpoint) : undefined,
    wrappingAlgorithm: (s.wrapping_algorithm as AwsWrappingAlgorithm | undefined) || "RSA_AES_KEY_WRAP_SHA_256",
    materialValidDays: typeof s.material_valid_days === "number" ? s.material_valid_days : 0,
    aliasPrefix: typeof s.alias_prefix === "string" ? s.alias_prefix : "",
  };
}
