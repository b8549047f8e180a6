// mcko_keystore: an external keystore of a vault (DESIGN.md "Terraform schema"). vault and name force a new
// keystore; exactly one connection block (aws_kms, azure_key_vault, gcp_kms, ibm_key_protect, pkcs11) says which
// cloud, and changing which block is used replaces the keystore. Settings inside the block and the top-level options
// change in place through UpdateKeystore with an update_mask naming the changed fields. Credentials are Terraform
// 1.11 write-only `*_wo` arguments: sent on create, and again only when `credentials_wo_version` changes; they never
// enter the plan or the state (the plugin layer nulls write-only values). Import by name
// `vaults/{vault}/keystores/{keystore}`: the daemon never returns credentials, so after an import Terraform knows
// none (set credentials_wo_version to send them).
import type { DaemonClient } from "../client/daemon-client.js";
import { isUnknown, types } from "../plugin/cty.js";
import { type AttributePath, DiagnosticError, type Diagnostics } from "../plugin/diagnostics.js";
import { defineResource, type MaybeUnknown } from "../plugin/resource.js";
import type { Attribute, Block, NestedBlock, Schema } from "../plugin/schema.js";
import { AwsWrappingAlgorithm, GcpImportMethod, GcpProtectionLevel, Keystore, KeystoreType, Pkcs11KeyUsage } from "../../../protos/gen/mcko/v1/keystore.js";
import { KeystoreServiceClient } from "../../../protos/gen/mcko/v1/keystore_service.js";
import { CHILD_ID_RULE, isValidChildId, parseVaultName } from "./convert.js";
import { isNotFound } from "./daemon-errors.js";

// ------------------------------------------------------------------ names

/** `vaults/{vault}/keystores/{keystore}` → its parts, or undefined. */
export function parseKeystoreName(name: string): { vaultName: string; keystore: string } | undefined {
  const m = /^(vaults\/[^/]+)\/keystores\/([^/]+)$/.exec(name);
  if (!m || parseVaultName(m[1]!) === undefined || !isValidChildId(m[2]!)) return undefined;
  return { vaultName: m[1]!, keystore: m[2]! };
}

export const formatKeystoreName = (vaultName: string, keystore: string): string => `${vaultName}/keystores/${keystore}`;

// ------------------------------------------------------------------ connection blocks (one table drives schema, wire and state)

type FieldKind = "string" | "bool" | "number" | "wrapping" | "url" | "hostport" | "enum";

interface FieldSpec {
  /** Terraform name (secrets end in `_wo`). */
  readonly tf: string;
  /** ts-proto property. */
  readonly proto: string;
  /** proto field name, for update_mask. */
  readonly wire: string;
  readonly kind: FieldKind;
  readonly required?: boolean;
  readonly secret?: boolean;
  readonly doc: string;
  /** kind "enum": the ts-proto enum, its value-name prefix and the value the daemon applies when unset. */
  readonly enumOf?: { readonly values: Readonly<Record<string, string | number>>; readonly prefix: string; readonly unset: string };
}

interface BlockSpec {
  readonly block: "aws_kms" | "azure_key_vault" | "gcp_kms" | "ibm_key_protect" | "pkcs11";
  readonly $case: "awsKms" | "azureKeyVault" | "gcpKms" | "ibmKeyProtect" | "pkcs11";
  readonly type: KeystoreType;
  readonly doc: string;
  readonly fields: readonly FieldSpec[];
}

const f = (tf: string, proto: string, kind: FieldKind, doc: string, extra: Partial<FieldSpec> = {}): FieldSpec => ({
  tf,
  proto,
  wire: tf.replace(/_wo$/, ""),
  kind,
  doc,
  ...extra,
});
const secret = (tf: string, proto: string, doc: string): FieldSpec => f(tf, proto, "string", `${doc} Write-only (Terraform 1.11): sent to the daemon, never stored in the plan or state; change credentials_wo_version to send it again.`, { secret: true });

/** The names (without prefix) of a kind "enum" field's values, UNSPECIFIED left out. */
const enumNames = (e: NonNullable<FieldSpec["enumOf"]>): string[] =>
  Object.keys(e.values).filter((k) => k.startsWith(e.prefix) && !k.endsWith("_UNSPECIFIED")).map((k) => k.slice(e.prefix.length));
const GCP_IMPORT = { values: GcpImportMethod as unknown as Record<string, string | number>, prefix: "GCP_IMPORT_METHOD_", unset: "RSA_OAEP_3072_SHA256_AES_256" };
const GCP_LEVEL = { values: GcpProtectionLevel as unknown as Record<string, string | number>, prefix: "GCP_PROTECTION_LEVEL_", unset: "HSM" };

const PKCS11_USAGE = { values: Pkcs11KeyUsage as unknown as Record<string, string | number>, prefix: "PKCS11_KEY_USAGE_", unset: "" };

const WRAPPINGS = Object.keys(AwsWrappingAlgorithm)
  .filter((k) => k.startsWith("AWS_WRAPPING_ALGORITHM_") && k !== "AWS_WRAPPING_ALGORITHM_UNSPECIFIED")
  .map((k) => k.slice("AWS_WRAPPING_ALGORITHM_".length));

export const KEYSTORE_BLOCKS: readonly BlockSpec[] = [
  {
    block: "aws_kms",
    type: KeystoreType.KEYSTORE_TYPE_AWS_KMS,
    $case: "awsKms",
    doc: "AWS KMS in one account and region (BYOK import into EXTERNAL-origin keys).",
    fields: [
      f("region", "region", "string", "AWS region, e.g. `us-east-1`.", { required: true }),
      f("endpoint", "endpoint", "url", "Endpoint URL override (`https://…` or `http://…`), e.g. a VPC endpoint. Unset: the region's public endpoint."),
      f("wrapping_algorithm", "wrappingAlgorithm", "wrapping", `BYOK wrapping algorithm: one of ${WRAPPINGS.join(", ")}. Unset: RSA_AES_KEY_WRAP_SHA_256.`),
      f("material_valid_days", "materialValidDays", "number", "Imported material expires after this many days (1-365). Unset: it does not expire."),
      f("alias_prefix", "aliasPrefix", "string", "Prefix of the alias given to each pushed key: `alias/<prefix><cloud name>`."),
      secret("access_key_id_wo", "accessKeyId", "Access key id of the IAM principal MCKO uses."),
      secret("secret_access_key_wo", "secretAccessKey", "Secret access key."),
      secret("session_token_wo", "sessionToken", "Session token of temporary credentials."),
    ],
  },
  {
    block: "azure_key_vault",
    type: KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT,
    $case: "azureKeyVault",
    doc: "An Azure Key Vault or Managed HSM.",
    fields: [
      f("vault_url", "vaultUrl", "url", "Vault URL, e.g. `https://myvault.vault.azure.net`.", { required: true }),
      f("tenant_id", "tenantId", "string", "Entra ID tenant id."),
      f("client_id", "clientId", "string", "Application (client) id of the service principal."),
      f("kek_name", "kekName", "string", "Name of the key exchange key MCKO creates or reuses for BYOK. Unset: `mcko-kek`."),
      f("purge_on_delete", "purgeOnDelete", "bool", "Purge deleted keys (needs purge permission). Unset or false: soft delete only."),
      f("hsm", "hsm", "bool", "Import HSM-protected keys through the .byok transfer blob. Unset or false: software keys through a JWK import."),
      f("ca_cert_pem", "caCertPem", "string", "PEM of a CA to trust for the vault's TLS certificate in addition to the system's."),
      f("authority_host", "authorityHost", "url", "Entra ID authority host override (sovereign clouds), e.g. `https://login.microsoftonline.us`."),
      secret("client_secret_wo", "clientSecret", "Client secret of the service principal."),
      secret("bearer_token_wo", "bearerToken", "A ready Entra ID bearer token for the vault, instead of tenant_id/client_id/client_secret."),
    ],
  },
  {
    block: "gcp_kms",
    type: KeystoreType.KEYSTORE_TYPE_GCP_KMS,
    $case: "gcpKms",
    doc: "Google Cloud KMS, one key ring (created on the first push when missing); each distribution is an import-only CryptoKey. Google never deletes a CryptoKey: destroying a key destroys its versions.",
    fields: [
      f("project", "project", "string", "Project id.", { required: true }),
      f("location", "location", "string", "Location, e.g. `europe-west1` or `global`.", { required: true }),
      f("key_ring", "keyRing", "string", "Key ring id.", { required: true }),
      f("endpoint", "endpoint", "hostport", "API endpoint override: `https://host[:port]` or `host[:port]` (TLS), or `http://host:port` for a local emulator (plaintext gRPC, no credentials sent). Unset: `cloudkms.googleapis.com`."),
      f("import_method", "importMethod", "enum", `Import method of the ImportJobs MCKO creates: one of ${enumNames(GCP_IMPORT).join(", ")}. Unset: RSA_OAEP_3072_SHA256_AES_256.`, { enumOf: GCP_IMPORT }),
      f("protection_level", "protectionLevel", "enum", "Protection level of the keys and import jobs: HSM or SOFTWARE. Unset: HSM.", { enumOf: GCP_LEVEL }),
      secret("credentials_json_wo", "credentialsJson", "Service account key JSON (or authorized-user JSON). Unset: the daemon's application default credentials."),
    ],
  },
  {
    block: "ibm_key_protect",
    type: KeystoreType.KEYSTORE_TYPE_IBM_KEY_PROTECT,
    $case: "ibmKeyProtect",
    doc: "An IBM Key Protect instance (AES root keys imported with an import token).",
    fields: [
      f("endpoint", "endpoint", "url", "Service endpoint, e.g. `https://us-south.kms.cloud.ibm.com`.", { required: true }),
      f("instance_id", "instanceId", "string", "Instance id (GUID).", { required: true }),
      f("iam_endpoint", "iamEndpoint", "url", "IAM endpoint that exchanges the API key for access tokens. Unset: `https://iam.cloud.ibm.com`."),
      f("key_ring", "keyRing", "string", "Key ring of the keys MCKO creates (`x-kms-key-ring`). Unset: the instance's `default` ring."),
      f("ca_cert_pem", "caCertPem", "string", "PEM of a CA to trust for the endpoints' TLS certificates in addition to the system's."),
      secret("api_key_wo", "apiKey", "IBM Cloud API key, exchanged at IAM for access tokens."),
      secret("iam_token_wo", "iamToken", "A ready IAM access token (without `Bearer `), instead of the API key."),
    ],
  },
  {
    block: "pkcs11",
    type: KeystoreType.KEYSTORE_TYPE_PKCS11,
    $case: "pkcs11",
    doc: "A PKCS#11 token (another HSM partition). Each pushed key version becomes a sensitive, non-extractable token object labelled `<label_prefix><cloud name>` with CKA_ID = the push's request id, unwrapped inside the token under its transport key, so PKCS#11 applications use it by label. Disable turns its usage attributes off; rotation adds an object that takes the label (the old one becomes `<label>#<version>`); destroy deletes the objects at once.",
    fields: [
      f("module_path", "modulePath", "string", "Absolute path of the PKCS#11 module (shared library) on the daemon's host, e.g. `/usr/lib/softhsm/libsofthsm2.so`.", { required: true }),
      f("token_label", "tokenLabel", "string", "Label of the target token (at most 32 bytes).", { required: true }),
      f("label_prefix", "labelPrefix", "string", "Prefix of each key object's CKA_LABEL (no `#`). Unset: none."),
      f("key_usage", "keyUsage", "enum", `What pushed key objects may be used for: one of ${enumNames(PKCS11_USAGE).join(", ")}. Unset: by key family (AES encrypt/decrypt, HMAC sign/verify, RSA decrypt and sign, EC sign).`, { enumOf: PKCS11_USAGE }),
      f("transport_key_label", "transportKeyLabel", "string", "CKA_LABEL of the transport RSA-3072 key pair in the token that pushes are wrapped for (created on the first push). Unset: `mcko-transport`."),
      secret("pin_wo", "pin", "User PIN of the target token."),
    ],
  },
];

const BLOCK_NAMES = KEYSTORE_BLOCKS.map((b) => b.block);

function fieldAttribute(x: FieldSpec): Attribute {
  const type = x.kind === "bool" ? types.bool : x.kind === "number" ? types.number : types.string;
  if (x.secret) return { type, optional: true, writeOnly: true, sensitive: true, description: x.doc };
  return x.required ? { type, required: true, description: x.doc } : { type, optional: true, description: x.doc };
}

const blocks: Record<string, NestedBlock> = Object.fromEntries(
  KEYSTORE_BLOCKS.map((b): [string, NestedBlock] => [
    b.block,
    {
      nesting: "list",
      maxItems: 1,
      block: { description: `${b.doc} Exactly one connection block per keystore.`, attributes: Object.fromEntries(b.fields.map((x) => [x.tf, fieldAttribute(x)])) } satisfies Block,
    },
  ]),
);

export interface KeystoreModel {
  id: string | null;
  vault: string | null;
  name: string | null;
  description: string | null;
  allow_software_wrap: boolean | null;
  deletion_window_days: number | null;
  max_concurrency: number | null;
  credentials_wo_version: string | null;
  status: string | null;
  has_credentials: boolean | null;
  aws_kms: Record<string, unknown>[];
  azure_key_vault: Record<string, unknown>[];
  gcp_kms: Record<string, unknown>[];
  ibm_key_protect: Record<string, unknown>[];
  pkcs11: Record<string, unknown>[];
}

type Planned = { [K in keyof KeystoreModel]: MaybeUnknown<KeystoreModel[K]> };

export const keystoreSchema: Schema = {
  version: 0,
  block: {
    description: "An external keystore (AWS KMS, Azure Key Vault, Google Cloud KMS, IBM Key Protect, PKCS#11) that keys of the vault are distributed to.",
    attributes: {
      id: { type: types.string, computed: true, description: "The keystore's resource name, `vaults/{vault}/keystores/{name}`. Use it as the `keystore` of distributions." },
      vault: { type: types.string, required: true, requiresReplace: true, description: "The vault, `vaults/{vault}` (e.g. `mcko_vault.main.id`). Changing it replaces the keystore." },
      name: { type: types.string, required: true, requiresReplace: true, description: `The keystore id within the vault: ${CHILD_ID_RULE}. Changing it replaces the keystore.` },
      description: { type: types.string, optional: true, description: "Free text." },
      allow_software_wrap: {
        type: types.bool,
        optional: true,
        computed: true,
        description: "Allow BYOK formats that RSA-encrypt the material itself to run in software where the HSM lacks the hash (each such wrap is audited). Default false.",
      },
      deletion_window_days: {
        type: types.number,
        optional: true,
        computed: true,
        description: "Days the cloud waits before deleting a key whose vault key was destroyed or whose distribution was deleted (AWS 7-30). Default: the cloud's minimum.",
      },
      max_concurrency: { type: types.number, optional: true, computed: true, description: "At most this many cloud calls at once to this keystore (1-64). Default 4." },
      credentials_wo_version: {
        type: types.string,
        optional: true,
        description: "Any value; change it to send the write-only `*_wo` credentials of the connection block again (they are never stored, so Terraform cannot see that they changed).",
      },
      status: { type: types.string, computed: true, description: "Result of the daemon's last connection test: `OK` or the cloud's refusal (empty when never tested)." },
      has_credentials: { type: types.bool, computed: true, description: "Whether the daemon holds stored credentials for this keystore." },
    },
    blocks,
  },
};

// ------------------------------------------------------------------ validation

const isSet = (v: unknown): boolean => v !== null && v !== undefined;

function checkField(x: FieldSpec, v: unknown, path: AttributePath, diags: Diagnostics): void {
  if (typeof v === "string") {
    if (x.kind === "url" && !/^https?:\/\/[^\s/?#]+(?:[/?#]\S*)?$/.test(v)) {
      diags.error(`Invalid ${x.tf}`, `${x.tf} must be an http:// or https:// URL such as "https://kms.example.com"; got ${JSON.stringify(v)}.`, path);
    }
    if (x.kind === "hostport" && !/^(?:https?:\/\/)?[^\s/?#:@]+(?::\d{1,5})?\/?$/.test(v)) diags.error(`Invalid ${x.tf}`, `${x.tf} must be https://host[:port], host[:port] or http://host:port; got ${JSON.stringify(v)}.`, path);
    if (x.kind === "enum" && x.enumOf && !enumNames(x.enumOf).includes(v)) diags.error(`Invalid ${x.tf}`, `${x.tf} must be one of ${enumNames(x.enumOf).join(", ")}; got ${JSON.stringify(v)}.`, path);
    if (x.kind === "wrapping" && !WRAPPINGS.includes(v)) diags.error(`Invalid ${x.tf}`, `${x.tf} must be one of ${WRAPPINGS.join(", ")}; got ${JSON.stringify(v)}.`, path);
  }
  if (typeof v === "number" && x.tf === "material_valid_days" && !(Number.isInteger(v) && v >= 1 && v <= 365)) {
    diags.error("Invalid material_valid_days", `material_valid_days must be a whole number from 1 to 365; got ${v}.`, path);
  }
}

function validateKeystoreConfig(c: Planned, diags: Diagnostics): void {
  if (typeof c.vault === "string" && parseVaultName(c.vault) === undefined) {
    diags.error("Invalid vault", `vault must be a vault name "vaults/{vault}" such as mcko_vault.main.id; got ${JSON.stringify(c.vault)}.`, "vault");
  }
  if (typeof c.name === "string" && !isValidChildId(c.name)) diags.error("Invalid keystore name", `name must be ${CHILD_ID_RULE}; got ${JSON.stringify(c.name)}.`, "name");
  if (typeof c.max_concurrency === "number" && !(Number.isInteger(c.max_concurrency) && c.max_concurrency >= 1 && c.max_concurrency <= 64)) {
    diags.error("Invalid max_concurrency", `max_concurrency must be a whole number from 1 to 64; got ${c.max_concurrency}.`, "max_concurrency");
  }
  if (typeof c.deletion_window_days === "number" && !(Number.isInteger(c.deletion_window_days) && c.deletion_window_days >= 0 && c.deletion_window_days <= 365)) {
    diags.error("Invalid deletion_window_days", `deletion_window_days must be a whole number of days; got ${c.deletion_window_days}.`, "deletion_window_days");
  }
  let known = true;
  const present: string[] = [];
  for (const b of KEYSTORE_BLOCKS) {
    const v = c[b.block];
    if (isUnknown(v)) {
      known = false;
      continue;
    }
    if (!Array.isArray(v)) continue;
    if (v.length > 0) present.push(b.block);
    v.forEach((e, i) => {
      if (e === null || isUnknown(e) || typeof e !== "object") return;
      for (const x of b.fields) checkField(x, (e as Record<string, unknown>)[x.tf], [{ attribute: b.block }, { index: i }, { attribute: x.tf }], diags);
    });
  }
  if (!known) return;
  if (present.length === 0) {
    diags.error("Missing keystore connection block", `A keystore needs exactly one connection block: one of ${BLOCK_NAMES.join(", ")}.`, [{ attribute: BLOCK_NAMES[0]! }]);
  } else if (present.length > 1) {
    for (const b of present.slice(1)) {
      diags.error("Conflicting keystore connection blocks", `A keystore has exactly one connection block; got ${present.join(" and ")}. Remove all but one.`, [{ attribute: b }, { index: 0 }]);
    }
  }
}

// ------------------------------------------------------------------ wire ↔ model

type Row = Record<string, unknown>;

function activeBlock(m: { [K in keyof KeystoreModel]: unknown }): { spec: BlockSpec; row: Row } | undefined {
  for (const spec of KEYSTORE_BLOCKS) {
    const v = m[spec.block];
    if (Array.isArray(v) && v.length > 0 && v[0] !== null && typeof v[0] === "object") return { spec, row: v[0] as Row };
  }
  return undefined;
}

function protoValue(x: FieldSpec, v: unknown): unknown {
  if (x.kind === "enum" && x.enumOf) return typeof v === "string" ? (x.enumOf.values[`${x.enumOf.prefix}${v}`] ?? 0) : 0;
  if (x.kind === "wrapping") return typeof v === "string" ? ((AwsWrappingAlgorithm as unknown as Record<string, number>)[`AWS_WRAPPING_ALGORITHM_${v}`] ?? 0) : 0;
  if (x.kind === "bool") return v === true;
  if (x.kind === "number") return typeof v === "number" ? v : 0;
  return typeof v === "string" ? v : "";
}

/** The ts-proto config oneof for a block row; secrets only when `withSecrets`. */
function configOf(spec: BlockSpec, row: Row, withSecrets: boolean): NonNullable<Keystore["config"]> {
  const value: Record<string, unknown> = {};
  for (const x of spec.fields) if (!x.secret || withSecrets) value[x.proto] = protoValue(x, row[x.tf]);
  return { $case: spec.$case, value } as unknown as NonNullable<Keystore["config"]>;
}

/** The state value of a setting: the daemon's default ("", false, 0) stays the user's null. */
function stateValue(x: FieldSpec, v: unknown, prior: unknown): unknown {
  if (x.secret) return null;
  if (x.kind === "enum" && x.enumOf) {
    const n = String(x.enumOf.values[v as number] ?? "");
    const name = n.startsWith(x.enumOf.prefix) && !n.endsWith("_UNSPECIFIED") ? n.slice(x.enumOf.prefix.length) : null;
    return name === null && prior === x.enumOf.unset ? prior : name;
  }
  if (x.kind === "wrapping") {
    const n = AwsWrappingAlgorithm[v as number] ?? "";
    const name = n.startsWith("AWS_WRAPPING_ALGORITHM_") && n !== "AWS_WRAPPING_ALGORITHM_UNSPECIFIED" ? n.slice("AWS_WRAPPING_ALGORITHM_".length) : null;
    return name === null && prior === "RSA_AES_KEY_WRAP_SHA_256" ? prior : name;
  }
  if (x.kind === "bool") return v === true ? true : prior === false ? false : null;
  if (x.kind === "number") return typeof v === "number" && v !== 0 ? v : prior === 0 ? 0 : null;
  return typeof v === "string" && v !== "" ? v : prior === "" ? "" : null;
}

function toModel(k: Keystore, prior: Partial<Record<keyof KeystoreModel, unknown>>): KeystoreModel {
  const n = parseKeystoreName(k.name);
  const out: KeystoreModel = {
    id: k.name,
    vault: n?.vaultName ?? null,
    name: n?.keystore ?? null,
    description: k.description !== "" ? k.description : prior.description === "" ? "" : null,
    allow_software_wrap: k.allowSoftwareWrap,
    deletion_window_days: k.deletionWindowDays,
    max_concurrency: k.maxConcurrency,
    credentials_wo_version: typeof prior.credentials_wo_version === "string" ? prior.credentials_wo_version : null,
    status: k.lastTestResult,
    has_credentials: k.hasCredentials,
    aws_kms: [],
    azure_key_vault: [],
    gcp_kms: [],
    ibm_key_protect: [],
    pkcs11: [],
  };
  const spec = KEYSTORE_BLOCKS.find((b) => b.$case === k.config?.$case);
  if (spec && k.config) {
    const pv = prior[spec.block];
    const priorRow = (Array.isArray(pv) && pv[0] && typeof pv[0] === "object" ? pv[0] : {}) as Row;
    const value = k.config.value as unknown as Record<string, unknown>;
    out[spec.block] = [Object.fromEntries(spec.fields.map((x) => [x.tf, stateValue(x, value[x.proto], priorRow[x.tf])]))];
  }
  return out;
}

const keystores = (client: DaemonClient): KeystoreServiceClient => client.service(KeystoreServiceClient);

export const keystoreResource = defineResource<KeystoreModel, DaemonClient>({
  typeName: "mcko_keystore",
  schema: keystoreSchema,

  validate: ({ config, diags }) => validateKeystoreConfig(config as Planned, diags),

  plan: ({ prior, planned }) => {
    if (prior === null) return { planned };
    const out: Planned = { ...planned };
    // A different kind of keystore is another keystore: replace.
    const before = activeBlock(prior)?.spec.block;
    const after = activeBlock(planned as { [K in keyof KeystoreModel]: unknown })?.spec.block;
    const requiresReplace: AttributePath[] = [];
    if (before !== undefined && after !== undefined && before !== after) requiresReplace.push([{ attribute: after }], [{ attribute: before }]);
    return { planned: out, requiresReplace };
  },

  create: async ({ config, client, signal }) => {
    const active = activeBlock(config);
    if (!active) throw new DiagnosticError("Missing keystore connection block", `A keystore needs exactly one of ${BLOCK_NAMES.join(", ")}.`, BLOCK_NAMES[0]!);
    const r = await client.unary(
      keystores(client).createKeystore.bind(keystores(client)),
      {
        parent: config.vault ?? "",
        keystoreId: config.name ?? "",
        keystore: Keystore.fromPartial({
          type: active.spec.type,
          config: configOf(active.spec, active.row, true),
          description: config.description ?? "",
          allowSoftwareWrap: config.allow_software_wrap ?? false,
          deletionWindowDays: config.deletion_window_days ?? 0,
          maxConcurrency: config.max_concurrency ?? 0,
        }),
        requestId: crypto.randomUUID(),
        validateOnly: false,
      },
      signal,
    );
    return toModel(r.keystore!, config);
  },

  read: async ({ state, client, signal }) => {
    try {
      const r = await client.unary(keystores(client).getKeystore.bind(keystores(client)), { name: state.id ?? "" }, signal);
      return toModel(r.keystore!, state);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  },

  update: async ({ prior, config, client, signal }) => {
    const active = activeBlock(config);
    const before = activeBlock(prior);
    const mask: string[] = [];
    const ks: Partial<Keystore> = { name: prior.id ?? "" };
    if (active && before && active.spec === before.spec) {
      const resend = (config.credentials_wo_version ?? null) !== (prior.credentials_wo_version ?? null);
      for (const x of active.spec.fields) {
        if (x.secret ? resend && isSet(active.row[x.tf]) : (active.row[x.tf] ?? null) !== (before.row[x.tf] ?? null)) mask.push(`${active.spec.block}.${x.wire}`);
      }
      if (mask.length > 0) ks.config = configOf(active.spec, active.row, resend);
    }
    if ((config.description ?? "") !== (prior.description ?? "")) {
      mask.push("description");
      ks.description = config.description ?? "";
    }
    if (config.allow_software_wrap !== null && config.allow_software_wrap !== prior.allow_software_wrap) {
      mask.push("allow_software_wrap");
      ks.allowSoftwareWrap = config.allow_software_wrap;
    }
    if (config.deletion_window_days !== null && config.deletion_window_days !== prior.deletion_window_days) {
      mask.push("deletion_window_days");
      ks.deletionWindowDays = config.deletion_window_days;
    }
    if (config.max_concurrency !== null && config.max_concurrency !== prior.max_concurrency) {
      mask.push("max_concurrency");
      ks.maxConcurrency = config.max_concurrency;
    }
    let k: Keystore;
    if (mask.length === 0) k = (await client.unary(keystores(client).getKeystore.bind(keystores(client)), { name: prior.id ?? "" }, signal)).keystore!;
    else {
      const r = await client.unary(keystores(client).updateKeystore.bind(keystores(client)), { keystore: Keystore.fromPartial(ks), updateMask: mask, validateOnly: false }, signal);
      k = r.keystore!;
    }
    return toModel(k, config);
  },

  delete: async ({ prior, client, signal }) => {
    try {
      await client.unary(keystores(client).deleteKeystore.bind(keystores(client)), { name: prior.id ?? "", etag: "" }, signal);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  },

  importState: async ({ id }) => {
    const n = parseKeystoreName(id);
    if (!n) {
      throw new DiagnosticError("Invalid import id", `Import a keystore by its name, "vaults/{vault}/keystores/{keystore}", where {keystore} is ${CHILD_ID_RULE}; got ${JSON.stringify(id)}.`);
    }
    return {
      id,
      vault: n.vaultName,
      name: n.keystore,
      description: null,
      allow_software_wrap: null,
      deletion_window_days: null,
      max_concurrency: null,
      credentials_wo_version: null,
      status: null,
      has_credentials: null,
      aws_kms: [],
      azure_key_vault: [],
      gcp_kms: [],
      ibm_key_protect: [],
      pkcs11: [],
    };
  },
});

export { toModel as keystoreToModel };
