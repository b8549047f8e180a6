/**
 * `mcko keystore add|list|show|test|remove`, `mcko distribute KEY --keystore KS` (or `--all` keys of the vault, with
 * a progress bar) and `mcko distribution list|show|sync`. Credentials are read from a JSON file
 * (`--credentials-file`), never from the command line, and never printed.
 */
import * as grpc from "@grpc/grpc-js";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import { readFileSync } from "node:fs";
import { DistributionServiceClient } from "../../../protos/gen/mcko/v1/distribution_service.js";
import { CloudKeyState, Distribution, SyncState, type Distribution as PbDistribution } from "../../../protos/gen/mcko/v1/distribution.js";
import { KeyServiceClient } from "../../../protos/gen/mcko/v1/key_service.js";
import { KeyState, type Key } from "../../../protos/gen/mcko/v1/key.js";
import { AwsWrappingAlgorithm, CredentialSource, GcpImportMethod, GcpProtectionLevel, Keystore, KeystoreType, Pkcs11KeyUsage, type Keystore as PbKeystore } from "../../../protos/gen/mcko/v1/keystore.js";
import { KeystoreServiceClient } from "../../../protos/gen/mcko/v1/keystore_service.js";
import { call, decodeError } from "./client.js";
import { CliConfigError, type ClientConnection } from "./client-config.js";
import { readPinFile } from "../hsm/pkcs11/pin.js";
import { printFields, printJson, printTable } from "./output.js";

export interface KeystoreCommandDeps {
  readonly connection: () => ClientConnection;
  readonly json: () => boolean;
}

interface Services {
  readonly keystores: KeystoreServiceClient;
  readonly distributions: DistributionServiceClient;
  readonly keys: KeyServiceClient;
}

async function withServices<T>(deps: KeystoreCommandDeps, fn: (s: Services) => Promise<T>): Promise<T> {
  const conn = deps.connection();
  const creds = grpc.credentials.createSsl(conn.caPem, conn.keyPem, conn.certPem);
  const options = { "grpc.service_config_disable_resolution": 1 };
  const s = { keystores: new KeystoreServiceClient(conn.address, creds, options), distributions: new DistributionServiceClient(conn.address, creds, options), keys: new KeyServiceClient(conn.address, creds, options) };
  try {
    return await fn(s);
  } finally {
    s.keystores.close();
    s.distributions.close();
    s.keys.close();
  }
}

function keystoreName(arg: string): string {
  if (/^vaults\/[^/]+\/keystores\/[^/]+$/.test(arg)) return arg;
  const m = /^([^/]+)\/([^/]+)$/.exec(arg);
  if (!m) throw new CliConfigError(`expected a keystore as VAULT/KEYSTORE or vaults/VAULT/keystores/KEYSTORE, got ${JSON.stringify(arg)}`);
  return `vaults/${m[1]}/keystores/${m[2]}`;
}

function keyName(arg: string): string {
  if (/^vaults\/[^/]+\/keys\/[^/]+$/.test(arg)) return arg;
  const m = /^([^/]+)\/([^/]+)$/.exec(arg);
  if (!m) throw new CliConfigError(`expected a key as VAULT/KEY or vaults/VAULT/keys/KEY, got ${JSON.stringify(arg)}`);
  return `vaults/${m[1]}/keys/${m[2]}`;
}

function distributionName(arg: string): string {
  if (/^vaults\/[^/]+\/keys\/[^/]+\/distributions\/[^/]+$/.test(arg)) return arg;
  const m = /^([^/]+)\/([^/]+)\/([^/]+)$/.exec(arg);
  if (!m) throw new CliConfigError(`expected a distribution as VAULT/KEY/KEYSTORE or its full name, got ${JSON.stringify(arg)}`);
  return `vaults/${m[1]}/keys/${m[2]}/distributions/${m[3]}`;
}

const short = (name: string | undefined, prefix: string) => (name ?? "").replace(prefix, "");
const syncName = (s: SyncState) => short(SyncState[s], "SYNC_STATE_");
const cloudStateName = (s: CloudKeyState) => short(CloudKeyState[s], "CLOUD_KEY_STATE_");
const typeName = (t: KeystoreType) => short(KeystoreType[t], "KEYSTORE_TYPE_");

function readCredentials(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    throw new CliConfigError(`--credentials-file ${file}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : "not a JSON object"}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || !Object.values(parsed).every((v) => typeof v === "string")) {
    throw new CliConfigError(`--credentials-file ${file}: expected a JSON object of strings, e.g. {"access_key_id": "…", "secret_access_key": "…"}`);
  }
  return parsed as Record<string, string>;
}

function showKeystore(k: PbKeystore, json: boolean): void {
  if (json) return printJson(Keystore.toJSON(k));
  const cfg = k.config ? Object.entries(k.config.value as unknown as Record<string, unknown>).filter(([, v]) => v !== "" && v !== 0 && v !== false) : [];
  printFields([
    ["name", k.name],
    ["type", typeName(k.type)],
    ...cfg.map(([f, v]): [string, string] => [f, String(f === "wrappingAlgorithm" ? short(AwsWrappingAlgorithm[v as number], "AWS_WRAPPING_ALGORITHM_") : v)]),
    ["credentials", k.credentialSource === CredentialSource.CREDENTIAL_SOURCE_CALLER ? "from the caller, per call" : k.hasCredentials ? "stored (encrypted, write-only)" : "none"],
    ["deletion window", k.deletionWindowDays ? `${k.deletionWindowDays} days` : "cloud minimum"],
    ["distributions", String(k.distributionCount)],
    ["last test", k.lastTestTime ? `${k.lastTestResult} (${k.lastTestTime.toISOString()})` : "never"],
  ]);
}

/** `mcko keystore add --type gcp-kms` options (commander leaves them untyped). */
interface GcpCliOptions {
  readonly project?: string;
  readonly location?: string;
  readonly keyRing?: string;
  readonly endpoint?: string;
  readonly importMethod?: string;
  readonly protectionLevel?: string;
}

/**
 * The Google Cloud KMS connection block. The credentials file is the service account key JSON Google issues (or
 * `{"credentials_json": "…"}`); without one the daemon uses its application default credentials.
 */
function gcpConfig(o: GcpCliOptions, credentialsFile: string | undefined, creds: Record<string, string>): PbKeystore["config"] {
  const method = o.importMethod ? GcpImportMethod[`GCP_IMPORT_METHOD_${o.importMethod}` as keyof typeof GcpImportMethod] : GcpImportMethod.GCP_IMPORT_METHOD_UNSPECIFIED;
  if (method === undefined) throw new CliConfigError(`--import-method ${o.importMethod}: use RSA_OAEP_3072_SHA256_AES_256 (default), RSA_OAEP_4096_SHA256_AES_256, RSA_OAEP_3072_SHA1_AES_256, RSA_OAEP_4096_SHA1_AES_256, RSA_OAEP_3072_SHA256 or RSA_OAEP_4096_SHA256`);
  const level = o.protectionLevel ? GcpProtectionLevel[`GCP_PROTECTION_LEVEL_${o.protectionLevel}` as keyof typeof GcpProtectionLevel] : GcpProtectionLevel.GCP_PROTECTION_LEVEL_UNSPECIFIED;
  if (level === undefined) throw new CliConfigError(`--protection-level ${o.protectionLevel}: use HSM (default) or SOFTWARE`);
  const credentialsJson = creds.credentials_json ?? (credentialsFile && creds.type ? readFileSync(credentialsFile, "utf8") : "");
  return { $case: "gcpKms", value: { project: o.project ?? "", location: o.location ?? "", keyRing: o.keyRing ?? "", endpoint: o.endpoint ?? "", credentialsJson, importMethod: method, protectionLevel: level } };
}

function distributionRow(d: PbDistribution): Record<string, string> {
  return { name: d.name, cloudKey: d.cloudKeyId, alias: d.cloudAlias, desired: cloudStateName(d.desiredState), observed: cloudStateName(d.observedState), sync: syncName(d.syncState) };
}

function showDistribution(d: PbDistribution, json: boolean): void {
  if (json) return printJson(Distribution.toJSON(d));
  printFields([
    ["name", d.name],
    ["keystore", d.keystore],
    ["cloud key", d.cloudKeyUri || d.cloudKeyId || "(none yet)"],
    ["alias", d.cloudAlias],
    ["desired", cloudStateName(d.desiredState)],
    ["observed", cloudStateName(d.observedState)],
    ["sync", syncName(d.syncState)],
    ["versions", d.versions.map((v: PbDistribution["versions"][number]) => `${v.versionNumber}→${v.cloudKeyId.slice(0, 8)}`).join(", ") || "-"],
    ["request id", d.requestId],
    ...(d.softwareStep && d.softwareStep !== "none" ? ([["software step", d.softwareStep]] as [string, string][]) : []),
    ...(d.drift.length ? ([["drift", d.drift.join("; ")]] as [string, string][]) : []),
    ...(d.lastError ? ([["last error", d.lastError]] as [string, string][]) : []),
  ]);
}

/** `mcko keystore add --type pkcs11` options (commander leaves them untyped). */
interface Pkcs11CliOptions {
  readonly module?: string;
  readonly tokenLabel?: string;
  readonly pinFile?: string;
  readonly labelPrefix?: string;
  readonly keyUsage?: string;
  readonly transportKeyLabel?: string;
}

/** The PKCS#11 connection block; the user PIN comes only from a 0600 file (never argv or the credentials JSON). */
async function pkcs11Config(o: Pkcs11CliOptions, callerCredentials: boolean): Promise<PbKeystore["config"]> {
  if (!o.module) throw new CliConfigError("--type pkcs11 needs --module <path of the PKCS#11 library>");
  if (!o.tokenLabel) throw new CliConfigError("--type pkcs11 needs --token-label <label of the target token>");
  if (!callerCredentials && !o.pinFile) throw new CliConfigError("--type pkcs11 needs --pin-file <file holding the token's user PIN, mode 0600>");
  const usage = o.keyUsage ? Pkcs11KeyUsage[`PKCS11_KEY_USAGE_${o.keyUsage}` as keyof typeof Pkcs11KeyUsage] : Pkcs11KeyUsage.PKCS11_KEY_USAGE_UNSPECIFIED;
  if (usage === undefined) throw new CliConfigError(`--key-usage ${o.keyUsage}: use ENCRYPT_DECRYPT, SIGN_VERIFY or WRAP_UNWRAP`);
  let pin = "";
  if (o.pinFile) {
    try {
      const secret = await readPinFile(o.pinFile);
      pin = secret.expose().toString("utf8");
      secret.dispose();
    } catch (e) {
      throw new CliConfigError(`--pin-file: ${e instanceof Error ? e.message : String(e)}`);
    }
  }
  return { $case: "pkcs11", value: { modulePath: o.module, tokenLabel: o.tokenLabel, pin, labelPrefix: o.labelPrefix ?? "", keyUsage: usage, transportKeyLabel: o.transportKeyLabel ?? "" } };
}

export function addKeystoreCommands(program: Command, deps: KeystoreCommandDeps): void {
  const ks = program.command("keystore").description("external keystores (AWS KMS, …) of a vault");
  ks.command("add")
    .argument("<keystore>", "VAULT/KEYSTORE")
    .requiredOption("--type <type>", "aws-kms, azure-key-vault, ibm-key-protect, gcp-kms or pkcs11")
    .option("--region <region>", "AWS region, e.g. us-east-1")
    .option("--vault-url <url>", "Azure: vault URL, e.g. https://myvault.vault.azure.net")
    .option("--tenant-id <guid>", "Azure: Entra ID tenant (with client_secret in the credentials file)")
    .option("--client-id <guid>", "Azure: application (client) id")
    .option("--kek-name <name>", "Azure: name of the key exchange key (default mcko-kek)")
    .option("--purge-on-delete", "Azure: purge deleted keys", false)
    .option("--ca-cert <file>", "Azure, Key Protect: extra CA (PEM) for the endpoint's TLS certificate")
    .option("--instance-id <guid>", "Key Protect: instance GUID (bluemix-instance)")
    .option("--iam-endpoint <url>", "Key Protect: IAM endpoint that exchanges api_key for tokens (default https://iam.cloud.ibm.com)")
    .option("--key-ring <id>", "Key Protect: key ring of the keys MCKO creates (default: the instance's default ring); Google Cloud KMS: key ring id (created when missing)")
    .option("--project <id>", "Google Cloud KMS: project id")
    .option("--location <location>", "Google Cloud KMS: location, e.g. europe-west1 or global")
    .option("--import-method <method>", "Google Cloud KMS: RSA_OAEP_3072_SHA256_AES_256 (default), RSA_OAEP_4096_SHA256_AES_256, RSA_OAEP_3072_SHA1_AES_256, RSA_OAEP_4096_SHA1_AES_256, RSA_OAEP_3072_SHA256, RSA_OAEP_4096_SHA256")
    .option("--protection-level <level>", "Google Cloud KMS: HSM (default) or SOFTWARE")
    .option("--endpoint <url>", "endpoint override (VPC endpoint, emulator)")
    .option("--module <path>", "PKCS#11: path of the token's PKCS#11 library on the daemon's host")
    .option("--token-label <label>", "PKCS#11: label of the target token")
    .option("--pin-file <file>", "PKCS#11: file (mode 0600) holding the token's user PIN")
    .option("--label-prefix <prefix>", "PKCS#11: prefix of each key object's CKA_LABEL")
    .option("--key-usage <usage>", "PKCS#11: ENCRYPT_DECRYPT, SIGN_VERIFY or WRAP_UNWRAP (default: by key family)")
    .option("--transport-key-label <label>", "PKCS#11: label of the transport key pair in the token (default mcko-transport)")
    .option("--credentials-file <file>", 'JSON file with the credentials, e.g. {"access_key_id": "…", "secret_access_key": "…"}')
    .option("--caller-credentials", "store no credentials: every call brings its own (x-mcko-cloud-credentials)", false)
    .option("--wrapping-algorithm <alg>", "RSA_AES_KEY_WRAP_SHA_256 (default), RSA_AES_KEY_WRAP_SHA_1, RSAES_OAEP_SHA_256, RSAES_OAEP_SHA_1")
    .option("--material-valid-days <n>", "imported material expires after n days (default: never)")
    .option("--alias-prefix <prefix>", "prefix of the cloud alias")
    .option("--deletion-window-days <n>", "days before the cloud deletes a destroyed key (AWS 7-30)")
    .option("--allow-software-wrap", "allow BYOK formats whose RSA step the HSM cannot do to run in software (audited)", false)
    .option("--description <text>", "free text", "")
    .option("--validate-only", "test the settings and credentials against the cloud; store nothing", false)
    .action(async (arg: string, o: { type: string; vaultUrl?: string; tenantId?: string; clientId?: string; kekName?: string; purgeOnDelete: boolean; caCert?: string; instanceId?: string; iamEndpoint?: string; keyRing?: string; region?: string; endpoint?: string; credentialsFile?: string; callerCredentials: boolean; wrappingAlgorithm?: string; materialValidDays?: string; aliasPrefix?: string; deletionWindowDays?: string; allowSoftwareWrap: boolean; description: string; validateOnly: boolean }) => {
      const name = keystoreName(arg);
      const [, vault, , id] = name.split("/");
      if (o.type === "pkcs11") {
        const keystore: PbKeystore = {
          name: "",
          type: KeystoreType.KEYSTORE_TYPE_PKCS11,
          config: await pkcs11Config(o as typeof o & Pkcs11CliOptions, o.callerCredentials),
          credentialSource: o.callerCredentials ? CredentialSource.CREDENTIAL_SOURCE_CALLER : CredentialSource.CREDENTIAL_SOURCE_STORED,
          hasCredentials: false,
          allowSoftwareWrap: false,
          deletionWindowDays: 0,
          maxConcurrency: 0,
          description: o.description,
          lastTestResult: "",
          etag: "",
          distributionCount: 0n,
        };
        await withServices(deps, async (s) => {
          const r = await call(s.keystores.createKeystore, s.keystores, { parent: `vaults/${vault}`, keystoreId: id!, keystore, requestId: crypto.randomUUID(), validateOnly: o.validateOnly });
          if (o.validateOnly && !deps.json()) process.stdout.write(`valid: ${r.keystore!.lastTestResult}\n`);
          else showKeystore(r.keystore!, deps.json());
        });
        return;
      }
      if (o.type !== "aws-kms" && o.type !== "azure-key-vault" && o.type !== "ibm-key-protect" && o.type !== "gcp-kms") throw new CliConfigError(`--type ${o.type}: this build has connectors for aws-kms, azure-key-vault, ibm-key-protect, gcp-kms and pkcs11`);
      if (o.callerCredentials && o.credentialsFile) throw new CliConfigError("use either --credentials-file or --caller-credentials");
      const creds = o.credentialsFile ? readCredentials(o.credentialsFile) : {};
      const wa = o.wrappingAlgorithm ? AwsWrappingAlgorithm[`AWS_WRAPPING_ALGORITHM_${o.wrappingAlgorithm}` as keyof typeof AwsWrappingAlgorithm] : 0;
      if (wa === undefined) throw new CliConfigError(`--wrapping-algorithm ${o.wrappingAlgorithm}: use RSA_AES_KEY_WRAP_SHA_256, RSA_AES_KEY_WRAP_SHA_1, RSAES_OAEP_SHA_256 or RSAES_OAEP_SHA_1`);
      const azure: PbKeystore["config"] = {
        $case: "azureKeyVault",
        value: {
          vaultUrl: o.vaultUrl ?? "",
          tenantId: o.tenantId ?? "",
          clientId: o.clientId ?? "",
          clientSecret: creds.client_secret ?? "",
          kekName: o.kekName ?? "",
          purgeOnDelete: o.purgeOnDelete,
          hsm: true,
          bearerToken: creds.bearer_token ?? "",
          caCertPem: o.caCert ? readFileSync(o.caCert, "utf8") : "",
          authorityHost: "",
        },
      };
      const keyProtect: PbKeystore["config"] = {
        $case: "ibmKeyProtect",
        value: {
          endpoint: o.endpoint ?? "",
          instanceId: o.instanceId ?? "",
          iamEndpoint: o.iamEndpoint ?? "",
          apiKey: creds.api_key ?? "",
          iamToken: creds.iam_token ?? "",
          keyRing: o.keyRing ?? "",
          caCertPem: o.caCert ? readFileSync(o.caCert, "utf8") : "",
        },
      };
      const keystore: PbKeystore = {
        name: "",
        type: o.type === "gcp-kms" ? KeystoreType.KEYSTORE_TYPE_GCP_KMS : o.type === "azure-key-vault" ? KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT : o.type === "ibm-key-protect" ? KeystoreType.KEYSTORE_TYPE_IBM_KEY_PROTECT : KeystoreType.KEYSTORE_TYPE_AWS_KMS,
        config: o.type === "gcp-kms" ? gcpConfig(o as unknown as GcpCliOptions, o.credentialsFile, creds) : o.type === "azure-key-vault" ? azure : o.type === "ibm-key-protect" ? keyProtect : {
          $case: "awsKms",
          value: {
            region: o.region ?? "",
            endpoint: o.endpoint ?? "",
            accessKeyId: creds.access_key_id ?? "",
            secretAccessKey: creds.secret_access_key ?? "",
            sessionToken: creds.session_token ?? "",
            wrappingAlgorithm: wa as AwsWrappingAlgorithm,
            materialValidDays: Number(o.materialValidDays ?? 0),
            aliasPrefix: o.aliasPrefix ?? "",
          },
        },
        credentialSource: o.callerCredentials ? CredentialSource.CREDENTIAL_SOURCE_CALLER : CredentialSource.CREDENTIAL_SOURCE_STORED,
        hasCredentials: false,
        allowSoftwareWrap: o.allowSoftwareWrap,
        deletionWindowDays: Number(o.deletionWindowDays ?? 0),
        maxConcurrency: 0,
        description: o.description,
        lastTestResult: "",
        etag: "",
        distributionCount: 0n,
      };
      await withServices(deps, async (s) => {
        const r = await call(s.keystores.createKeystore, s.keystores, { parent: `vaults/${vault}`, keystoreId: id!, keystore, requestId: crypto.randomUUID(), validateOnly: o.validateOnly });
        if (o.validateOnly && !deps.json()) process.stdout.write(`valid: ${r.keystore!.lastTestResult}\n`);
        else showKeystore(r.keystore!, deps.json());
      });
    });
  ks.command("list")
    .argument("<vault>")
    .action(async (vault: string) =>
      withServices(deps, async (s) => {
        const all: PbKeystore[] = [];
        let pageToken = "";
        do {
          const r = await call(s.keystores.listKeystores, s.keystores, { parent: vault.startsWith("vaults/") ? vault : `vaults/${vault}`, pageSize: 1000, pageToken });
          all.push(...r.keystores);
          pageToken = r.nextPageToken;
        } while (pageToken);
        if (deps.json()) return printJson(all.map((k) => Keystore.toJSON(k)));
        printTable(all.map((k) => ({ name: k.name, type: typeName(k.type), distributions: String(k.distributionCount), lastTest: k.lastTestResult || "-" })), ["name", "type", "distributions", "lastTest"]);
      }),
    );
  ks.command("show")
    .argument("<keystore>", "VAULT/KEYSTORE")
    .action(async (arg: string) => withServices(deps, async (s) => showKeystore((await call(s.keystores.getKeystore, s.keystores, { name: keystoreName(arg) })).keystore!, deps.json())));
  ks.command("test")
    .argument("<keystore>", "VAULT/KEYSTORE")
    .action(async (arg: string) =>
      withServices(deps, async (s) => {
        const r = await call(s.keystores.testKeystore, s.keystores, { name: keystoreName(arg) });
        if (deps.json()) printJson(r);
        else process.stdout.write(`${r.ok ? "ok" : "FAILED"}: ${r.detail}\n`);
        if (!r.ok) process.exitCode = 1;
      }),
    );
  ks.command("remove")
    .argument("<keystore>", "VAULT/KEYSTORE")
    .action(async (arg: string) =>
      withServices(deps, async (s) => {
        await call(s.keystores.deleteKeystore, s.keystores, { name: keystoreName(arg), etag: "" });
        if (!deps.json()) process.stdout.write(`removed ${keystoreName(arg)}\n`);
      }),
    );

  program
    .command("distribute")
    .description("push a key (or --all keys of the keystore's vault) to a keystore")
    .argument("[key]", "VAULT/KEY")
    .requiredOption("--keystore <keystore>", "VAULT/KEYSTORE")
    .option("--all", "every key of the vault not yet there (skips compromised and destroyed keys)", false)
    .option("--cloud-name <name>", "name in the cloud (default: the key id)")
    .action(async (arg: string | undefined, o: { keystore: string; all: boolean; cloudName?: string }) => {
      const ksName = keystoreName(o.keystore);
      const vault = ksName.split("/")[1]!;
      if (!o.all && !arg) throw new CliConfigError("name a key (VAULT/KEY) or use --all");
      if (o.all && arg) throw new CliConfigError("use either a key or --all");
      await withServices(deps, async (s) => {
        if (!o.all) {
          const name = keyName(arg!);
          const r = await call(s.distributions.createDistribution, s.distributions, { parent: name, keystore: ksName, requestId: crypto.randomUUID(), ...(o.cloudName ? { distribution: { ...Distribution.fromPartial({}), cloudName: o.cloudName } } : {}) });
          return showDistribution(r.distribution!, deps.json());
        }
        const keys: Key[] = [];
        let pageToken = "";
        do {
          const r = await call(s.keys.listKeys, s.keys, { parent: `vaults/${vault}`, pageSize: 1000, pageToken, filter: "" });
          keys.push(...r.keys);
          pageToken = r.nextPageToken;
        } while (pageToken);
        const already = new Set<string>();
        pageToken = "";
        do {
          const r = await call(s.distributions.listDistributions, s.distributions, { parent: `vaults/${vault}/keys/-`, pageSize: 1000, pageToken, keystore: ksName });
          for (const d of r.distributions) already.add(d.name.replace(/\/distributions\/[^/]+$/, ""));
          pageToken = r.nextPageToken;
        } while (pageToken);
        const todo = keys.filter((k) => !already.has(k.name) && ![KeyState.KEY_STATE_COMPROMISED, KeyState.KEY_STATE_DESTROYED, KeyState.KEY_STATE_DESTROYED_COMPROMISED].includes(k.state));
        const bar = deps.json() ? undefined : new cliProgress.SingleBar({ format: "distributing [{bar}] {value}/{total} keys | {key}", stream: process.stderr, noTTYOutput: true, notTTYSchedule: 1000, hideCursor: true }, cliProgress.Presets.shades_classic);
        bar?.start(todo.length, 0, { key: "" });
        const results: Array<{ key: string; distribution?: string; syncState?: string; error?: string }> = [];
        for (const k of todo) {
          bar?.update({ key: k.name });
          try {
            const d = (await call(s.distributions.createDistribution, s.distributions, { parent: k.name, keystore: ksName, requestId: crypto.randomUUID() })).distribution!;
            results.push({ key: k.name, distribution: d.name, syncState: syncName(d.syncState) });
          } catch (e) {
            const d = decodeError(e);
            results.push({ key: k.name, error: `${d.code}${d.reason ? ` ${d.reason}` : ""}: ${d.message}` });
          }
          bar?.increment();
        }
        bar?.stop();
        if (deps.json()) printJson({ keystore: ksName, skipped: keys.length - todo.length, results });
        else {
          printTable(results.map((r) => ({ key: r.key, result: r.error ?? r.syncState ?? "" })), ["key", "result"]);
          process.stdout.write(`${results.filter((r) => !r.error).length} distributed, ${results.filter((r) => r.error).length} failed, ${keys.length - todo.length} skipped\n`);
        }
        if (results.some((r) => r.error)) process.exitCode = 1;
      });
    });

  const dist = program.command("distribution").description("keys placed in keystores");
  dist
    .command("list")
    .argument("<scope>", "VAULT (every key) or VAULT/KEY")
    .option("--keystore <keystore>", "only to this keystore (VAULT/KEYSTORE)")
    .action(async (scope: string, o: { keystore?: string }) =>
      withServices(deps, async (s) => {
        const parent = scope.includes("/") ? keyName(scope) : `vaults/${scope}/keys/-`;
        const all: PbDistribution[] = [];
        let pageToken = "";
        do {
          const r = await call(s.distributions.listDistributions, s.distributions, { parent, pageSize: 1000, pageToken, keystore: o.keystore ? keystoreName(o.keystore) : "" });
          all.push(...r.distributions);
          pageToken = r.nextPageToken;
        } while (pageToken);
        if (deps.json()) return printJson(all.map((d) => Distribution.toJSON(d)));
        printTable(all.map(distributionRow), ["name", "cloudKey", "alias", "desired", "observed", "sync"]);
      }),
    );
  dist
    .command("show")
    .argument("<distribution>", "VAULT/KEY/KEYSTORE")
    .option("--live", "ask the cloud now (observed state and drift)", false)
    .action(async (arg: string, o: { live: boolean }) =>
      withServices(deps, async (s) => {
        const d = (await call(s.distributions.getDistribution, s.distributions, { name: distributionName(arg), readLive: o.live })).distribution!;
        showDistribution(d, deps.json());
        if (d.syncState === SyncState.SYNC_STATE_DRIFTED) process.exitCode = 2;
      }),
    );
  dist
    .command("sync")
    .argument("<distribution>", "VAULT/KEY/KEYSTORE")
    .action(async (arg: string) => withServices(deps, async (s) => showDistribution((await call(s.distributions.syncDistribution, s.distributions, { name: distributionName(arg) })).distribution!, deps.json())));
}
