/** Azure Key Vault keystore settings: validation and the typed form the connector uses. */
import type { ConnectorCredentials, ConnectorSettings, FieldProblem } from "../connector.js";
import { endpointProblem } from "../aws-kms/config.js";

export const AZURE_CREDENTIAL_FIELDS = ["client_secret", "bearer_token"] as const;

export interface AzureKeyVaultSettings {
  readonly vaultUrl: string;
  readonly tenantId: string;
  readonly clientId: string;
  readonly kekName: string;
  readonly purgeOnDelete: boolean;
  readonly caCertPem: string | undefined;
  readonly authorityHost: string | undefined;
}

const KEY_NAME = /^[0-9a-zA-Z-]{1,127}$/;
const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export function validateAzureSettings(s: ConnectorSettings, creds: ConnectorCredentials | undefined): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const url = s.vault_url;
  if (typeof url !== "string" || url === "") problems.push({ field: "vault_url", description: "is required, e.g. https://myvault.vault.azure.net" });
  else {
    const why = endpointProblem(url);
    if (why) problems.push({ field: "vault_url", description: why });
    else if (!url.startsWith("https://")) problems.push({ field: "vault_url", description: "must use https://" });
  }
  if (s.hsm === false || s.hsm === undefined) {
    // The plain JWK import would need the key's plaintext in the daemon; only the HSM (BYOK) path keeps it in the HSM.
    problems.push({ field: "hsm", description: "must be true: MCKO imports through the .byok transfer blob (HSM-protected keys); the JWK import path is not offered" });
  }
  const kek = s.kek_name;
  if (kek !== undefined && (typeof kek !== "string" || !KEY_NAME.test(kek))) problems.push({ field: "kek_name", description: "must be 1-127 characters of letters, digits and hyphens" });
  if (s.ca_cert_pem !== undefined && (typeof s.ca_cert_pem !== "string" || !s.ca_cert_pem.includes("-----BEGIN CERTIFICATE-----"))) problems.push({ field: "ca_cert_pem", description: "must be a PEM certificate" });
  if (s.authority_host !== undefined && s.authority_host !== "") {
    const why = endpointProblem(String(s.authority_host));
    if (why) problems.push({ field: "authority_host", description: why });
  }
  if (creds) {
    const token = creds.bearer_token ?? "";
    const secret = creds.client_secret ?? "";
    if (token === "" && secret === "") problems.push({ field: "client_secret", description: "is required with stored credentials (or bearer_token)" });
    if (secret !== "") {
      if (typeof s.tenant_id !== "string" || !GUID.test(s.tenant_id)) problems.push({ field: "tenant_id", description: "must be the Entra ID tenant GUID when client_secret is used" });
      if (typeof s.client_id !== "string" || !GUID.test(s.client_id)) problems.push({ field: "client_id", description: "must be the application (client) GUID when client_secret is used" });
    }
  }
  return problems;
}

export function compileAzureSettings(s: ConnectorSettings): AzureKeyVaultSettings {
  return {
    vaultUrl: String(s.vault_url),
    tenantId: typeof s.tenant_id === "string" ? s.tenant_id : "",
    clientId: typeof s.client_id === "string" ? s.client_id : "",
    kekName: typeof s.kek_name === "string" && s.kek_name ? s.kek_name : "mcko-kek",
    purgeOnDelete: s.purge_on_delete === true,
    caCertPem: typeof s.ca_cert_pem === "string" && s.ca_cert_pem ? s.ca_cert_pem : undefined,
    authorityHost: typeof s.authority_host === "string" && s.authority_host ? s.authority_host : undefined,
  };
}
