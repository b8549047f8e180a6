/** IBM Key Protect keystore settings (BYOK.md §5.1): validation and the typed, defaulted form the connector uses. */
import type { ConnectorCredentials, ConnectorSettings, FieldProblem } from "../connector.js";
import { endpointProblem } from "../aws-kms/config.js";

/** `api_key` is exchanged at IAM for access tokens; `iam_token` is a ready access token (stored, or the caller's). */
export const KEY_PROTECT_CREDENTIAL_FIELDS = ["api_key", "iam_token"] as const;

export const DEFAULT_IAM_ENDPOINT = "https://iam.cloud.ibm.com";

export interface KeyProtectSettings {
  /** Service URL without /api/v2, e.g. https://us-south.kms.cloud.ibm.com. */
  readonly endpoint: string;
  readonly instanceId: string;
  readonly iamEndpoint: string;
  /** `x-kms-key-ring`; undefined = the instance's default ring. */
  readonly keyRing: string | undefined;
  readonly caCertPem: string | undefined;
}

const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const KEY_RING = /^[a-zA-Z0-9-]{2,100}$/;

export function validateKeyProtectSettings(s: ConnectorSettings, creds: ConnectorCredentials | undefined): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const endpoint = s.endpoint;
  if (typeof endpoint !== "string" || endpoint === "") problems.push({ field: "endpoint", description: "is required, e.g. https://us-south.kms.cloud.ibm.com" });
  else {
    const why = endpointProblem(endpoint);
    if (why) problems.push({ field: "endpoint", description: why });
  }
  const instance = s.instance_id;
  if (typeof instance !== "string" || instance === "") problems.push({ field: "instance_id", description: "is required: the Key Protect instance GUID (bluemix-instance header)" });
  else if (!GUID.test(instance)) problems.push({ field: "instance_id", description: `${JSON.stringify(instance.slice(0, 40))} is not an instance GUID (8-4-4-4-12 hex digits)` });
  if (s.iam_endpoint !== undefined && s.iam_endpoint !== "") {
    const why = endpointProblem(String(s.iam_endpoint));
    if (why) problems.push({ field: "iam_endpoint", description: why });
  }
  const ring = s.key_ring;
  if (ring !== undefined && ring !== "" && (typeof ring !== "string" || !KEY_RING.test(ring))) {
    problems.push({ field: "key_ring", description: "must be 2-100 letters, digits and hyphens" });
  }
  if (s.ca_cert_pem !== undefined && s.ca_cert_pem !== "" && (typeof s.ca_cert_pem !== "string" || !s.ca_cert_pem.includes("-----BEGIN CERTIFICATE-----"))) {
    problems.push({ field: "ca_cert_pem", description: "must be a PEM certificate" });
  }
  if (creds) {
    const apiKey = creds.api_key ?? "";
    const token = creds.iam_token ?? "";
    if (apiKey === "" && token === "") problems.push({ field: "api_key", description: "is required with stored credentials (or iam_token)" });
    if (apiKey !== "" && token !== "") problems.push({ field: "iam_token", description: "must not be set together with api_key: give one of them" });
    if (token !== "" && /^bearer\s/i.test(token)) problems.push({ field: "iam_token", description: "must be the access token itself, without the \"Bearer \" prefix" });
    if (token !== "" && /\s/.test(token.trim())) problems.push({ field: "iam_token", description: "must not contain whitespace" });
  }
  return problems;
}

export function compileKeyProtectSettings(s: ConnectorSettings): KeyProtectSettings {
  return {
    endpoint: String(s.endpoint).replace(/\/$/, ""),
    instanceId: String(s.instance_id),
    iamEndpoint: (typeof s.iam_endpoint === "string" && s.iam_endpoint ? s.iam_endpoint : DEFAULT_IAM_ENDPOINT).replace(/\/$/, ""),
    keyRing: typeof s.key_ring === "string" && s.key_ring ? s.key_ring : undefined,
    caCertPem: typeof s.ca_cert_pem === "string" && s.ca_cert_pem ? s.ca_cert_pem : undefined,
  };
}
