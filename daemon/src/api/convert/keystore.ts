/** Proto ↔ domain conversion for keystores. Credential fields are split off on input and never set on output. */
import {
  AwsWrappingAlgorithm,
  CredentialSource as PbSource,
  GcpImportMethod,
  GcpProtectionLevel,
  KeystoreType as PbType,
  Pkcs11KeyUsage,
  type Keystore as PbKeystore,
} from "../../../../protos/gen/mcko/v1/keystore.js";
import type { ConnectorSettings, KeystoreType } from "../../cloud/connector.js";
import type { CredentialSource, Keystore } from "../../core/keystores.js";

type ConfigCase = NonNullable<PbKeystore["config"]>["$case"];

export const CASE_OF_TYPE: Readonly<Record<KeystoreType, ConfigCase>> = {
  AWS_KMS: "awsKms",
  AZURE_KEY_VAULT: "azureKeyVault",
  GCP_KMS: "gcpKms",
  IBM_KEY_PROTECT: "ibmKeyProtect",
  PKCS11: "pkcs11",
};
export const FIELD_OF_CASE: Readonly<Record<ConfigCase, string>> = {
  awsKms: "aws_kms",
  azureKeyVault: "azure_key_vault",
  gcpKms: "gcp_kms",
  ibmKeyProtect: "ibm_key_protect",
  pkcs11: "pkcs11",
};

/** Write-only fields per type (snake_case, as in the proto). */
export const CREDENTIAL_FIELDS: Readonly<Record<KeystoreType, readonly string[]>> = {
  AWS_KMS: ["access_key_id", "secret_access_key", "session_token"],
  AZURE_KEY_VAULT: ["client_secret", "bearer_token"],
  GCP_KMS: ["credentials_json"],
  IBM_KEY_PROTECT: ["api_key", "iam_token"],
  PKCS11: ["pin"],
};

export function typeFromProto(v: PbType): KeystoreType | undefined {
  const name = PbType[v] as string | undefined;
  return name?.startsWith("KEYSTORE_TYPE_") && name !== "KEYSTORE_TYPE_UNSPECIFIED" ? (name.slice("KEYSTORE_TYPE_".length) as KeystoreType) : undefined;
}
export function typeToProto(t: KeystoreType): PbType {
  return PbType[`KEYSTORE_TYPE_${t}` as keyof typeof PbType] as PbType;
}
export function typeOfCase(c: ConfigCase): KeystoreType {
  return (Object.keys(CASE_OF_TYPE) as KeystoreType[]).find((t) => CASE_OF_TYPE[t] === c)!;
}
export function sourceFromProto(v: PbSource): CredentialSource | undefined {
  return v === PbSource.CREDENTIAL_SOURCE_CALLER ? "CALLER" : v === PbSource.CREDENTIAL_SOURCE_STORED ? "STORED" : undefined;
}

const snake = (s: string) => s.replace(/[A-Z]/g, (m) => `_${m.toLowerCase()}`);
const camel = (s: string) => s.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());

/**
 * Splits a per-type config message into settings (non-default, non-secret values; enums by short name) and
 * credentials (non-empty write-only fields). With `keepEmpty`, empty settings are kept as "" (to clear on update).
 */
export function splitConfig(type: KeystoreType, config: object, only?: ReadonlySet<string>): { settings: Record<string, string | number | boolean>; credentials: Record<string, string> } {
  const settings: Record<string, string | number | boolean> = {};
  const credentials: Record<string, string> = {};
  for (const [k, raw] of Object.entries(config as Record<string, unknown>)) {
    const field = snake(k);
    if (only && !only.has(field)) continue;
    let v: unknown = raw;
    if (type === "AWS_KMS" && field === "wrapping_algorithm") {
      v = raw === 0 ? "" : ((AwsWrappingAlgorithm[raw as AwsWrappingAlgorithm] as string | undefined)?.replace(/^AWS_WRAPPING_ALGORITHM_/, "") ?? String(raw));
    }
    if (type === "GCP_KMS" && field === "import_method") {
      v = raw === 0 ? "" : ((GcpImportMethod[raw as GcpImportMethod] as string | undefined)?.replace(/^GCP_IMPORT_METHOD_/, "") ?? String(raw));
    }
    if (type === "GCP_KMS" && field === "protection_level") {
      v = raw === 0 ? "" : ((GcpProtectionLevel[raw as GcpProtectionLevel] as string | undefined)?.replace(/^GCP_PROTECTION_LEVEL_/, "") ?? String(raw));
    }
    if (type === "PKCS11" && field === "key_usage") {
      v = raw === 0 ? "" : ((Pkcs11KeyUsage[raw as Pkcs11KeyUsage] as string | undefined)?.replace(/^PKCS11_KEY_USAGE_/, "") ?? String(raw));
    }
    if (CREDENTIAL_FIELDS[type].includes(field)) {
      if (typeof v === "string" && (v !== "" || only)) credentials[field] = v;
      continue;
    }
    if (typeof v === "string" || typeof v === "number" || typeof v === "boolean") {
      if (only || (v !== "" && v !== 0 && v !== false)) settings[field] = v;
    }
  }
  return { settings, credentials };
}

/** Settings back into the per-type message (credential fields left empty). */
function configToProto(type: KeystoreType, settings: ConnectorSettings): PbKeystore["config"] {
  const value: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(settings)) {
    if (type === "AWS_KMS" && k === "wrapping_algorithm") value.wrappingAlgorithm = AwsWrappingAlgorithm[`AWS_WRAPPING_ALGORITHM_${String(v)}` as keyof typeof AwsWrappingAlgorithm] ?? 0;
    else if (type === "GCP_KMS" && k === "import_method") value.importMethod = GcpImportMethod[`GCP_IMPORT_METHOD_${String(v)}` as keyof typeof GcpImportMethod] ?? 0;
    else if (type === "GCP_KMS" && k === "protection_level") value.protectionLevel = GcpProtectionLevel[`GCP_PROTECTION_LEVEL_${String(v)}` as keyof typeof GcpProtectionLevel] ?? 0;
    else if (type === "PKCS11" && k === "key_usage") value.keyUsage = Pkcs11KeyUsage[`PKCS11_KEY_USAGE_${String(v)}` as keyof typeof Pkcs11KeyUsage] ?? 0;
    else value[camel(k)] = v;
  }
  const c = CASE_OF_TYPE[type];
  const base = { awsKms: { region: "", endpoint: "", accessKeyId: "", secretAccessKey: "", sessionToken: "", wrappingAlgorithm: 0, materialValidDays: 0, aliasPrefix: "" },
    azureKeyVault: { vaultUrl: "", tenantId: "", clientId: "", clientSecret: "", kekName: "", purgeOnDelete: false, hsm: false, bearerToken: "", caCertPem: "", authorityHost: "" },
    gcpKms: { project: "", location: "", keyRing: "", endpoint: "", credentialsJson: "", importMethod: 0, protectionLevel: 0 },
    ibmKeyProtect: { endpoint: "", instanceId: "", iamEndpoint: "", apiKey: "", iamToken: "", keyRing: "", caCertPem: "" },
    pkcs11: { modulePath: "", tokenLabel: "", pin: "", labelPrefix: "", keyUsage: 0, transportKeyLabel: "" } }[c];
  return { $case: c, value: { ...base, ...value } } as PbKeystore["config"];
}

export function keystoreToProto(k: Keystore): PbKeystore {
  return {
    name: k.name,
    type: typeToProto(k.type),
    config: configToProto(k.type, k.settings),
    credentialSource: k.credentialSource === "CALLER" ? PbSource.CREDENTIAL_SOURCE_CALLER : PbSource.CREDENTIAL_SOURCE_STORED,
    hasCredentials: k.hasCredentials,
    allowSoftwareWrap: k.allowSoftwareWrap,
    deletionWindowDays: k.deletionWindowDays,
    maxConcurrency: k.maxConcurrency,
    description: k.description,
    lastTestResult: k.lastTestResult,
    lastTestTime: k.lastTestTime,
    createTime: k.createTime,
    updateTime: k.updateTime,
    etag: k.etag,
    distributionCount: BigInt(k.distributionCount),
  };
}
