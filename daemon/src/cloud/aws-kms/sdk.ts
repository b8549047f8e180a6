/**
 * The narrow surface of @aws-sdk/client-kms the connector uses (go-kms-wrapping's `KmsApi` idea): one method per
 * KMS operation, built from settings with the configurable endpoint. Unit tests may pass a fake; integration tests
 * point the endpoint at the emulator. The SDK's own retries are off (maxAttempts 1): call-policy.ts retries.
 * The SDK is loaded on first use: importing it costs over half a second, which every daemon start would pay even
 * with no AWS keystore.
 * The keystore's concurrency limit (`limit`) is taken around the HTTP exchange only (a middleware at the end of the
 * SDK's deserialize stage, right before the request handler): serialising, SigV4 signing and parsing — about a
 * millisecond of CPU per call — happen outside the slot, so the slots are held by requests actually at the cloud.
 */
import type {
  CreateKeyCommandInput,
  CreateKeyCommandOutput,
  DescribeKeyCommandOutput,
  GetParametersForImportCommandInput,
  GetParametersForImportCommandOutput,
  ImportKeyMaterialCommandInput,
  ImportKeyMaterialCommandOutput,
  KMSClient,
  ListKeysCommandOutput,
  ListResourceTagsCommandOutput,
} from "@aws-sdk/client-kms";
import type { AwsKmsSettings } from "./config.js";

type Opts = { readonly abortSignal: AbortSignal };

export interface AwsKmsApi {
  createKey(input: CreateKeyCommandInput, o: Opts): Promise<CreateKeyCommandOutput>;
  describeKey(keyId: string, o: Opts): Promise<DescribeKeyCommandOutput>;
  getParametersForImport(input: GetParametersForImportCommandInput, o: Opts): Promise<GetParametersForImportCommandOutput>;
  importKeyMaterial(input: ImportKeyMaterialCommandInput, o: Opts): Promise<ImportKeyMaterialCommandOutput>;
  createAlias(aliasName: string, targetKeyId: string, o: Opts): Promise<void>;
  updateAlias(aliasName: string, targetKeyId: string, o: Opts): Promise<void>;
  enableKey(keyId: string, o: Opts): Promise<void>;
  disableKey(keyId: string, o: Opts): Promise<void>;
  deleteImportedKeyMaterial(keyId: string, o: Opts): Promise<void>;
  scheduleKeyDeletion(keyId: string, pendingWindowInDays: number, o: Opts): Promise<void>;
  rotateKeyOnDemand(keyId: string, o: Opts): Promise<void>;
  listKeys(marker: string | undefined, o: Opts): Promise<ListKeysCommandOutput>;
  listResourceTags(keyId: string, o: Opts): Promise<ListResourceTagsCommandOutput>;
  destroy(): void;
}

type Sdk = typeof import("@aws-sdk/client-kms");
let sdk: Promise<Sdk> | undefined;
const loadSdk = (): Promise<Sdk> => (sdk ??= import("@aws-sdk/client-kms"));

export function createAwsKmsApi(
  settings: AwsKmsSettings,
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string },
  limit: <T>(fn: () => Promise<T>) => Promise<T>,
): AwsKmsApi {
  let ready: Promise<{ k: Sdk; client: KMSClient }> | undefined;
  const open = () =>
    (ready ??= loadSdk().then((k) => {
      const client = new k.KMSClient({ region: settings.region, ...(settings.endpoint ? { endpoint: settings.endpoint } : {}), credentials, maxAttempts: 1 });
      client.middlewareStack.add((next) => (args) => limit(() => next(args)), { step: "deserialize", priority: "low", name: "mckoKeystoreConcurrencyLimit" });
      return { k, client };
    }));
  return {
    createKey: async (input, o) => { const { k, client } = await open(); return client.send(new k.CreateKeyCommand(input), o); },
    describeKey: async (KeyId, o) => { const { k, client } = await open(); return client.send(new k.DescribeKeyCommand({ KeyId }), o); },
    getParametersForImport: async (input, o) => { const { k, client } = await open(); return client.send(new k.GetParametersForImportCommand(input), o); },
    importKeyMaterial: async (input, o) => { const { k, client } = await open(); return client.send(new k.ImportKeyMaterialCommand(input), o); },
    createAlias: async (AliasName, TargetKeyId, o) => { const { k, client } = await open(); await client.send(new k.CreateAliasCommand({ AliasName, TargetKeyId }), o); },
    updateAlias: async (AliasName, TargetKeyId, o) => { const { k, client } = await open(); await client.send(new k.UpdateAliasCommand({ AliasName, TargetKeyId }), o); },
    enableKey: async (KeyId, o) => { const { k, client } = await open(); await client.send(new k.EnableKeyCommand({ KeyId }), o); },
    disableKey: async (KeyId, o) => { const { k, client } = await open(); await client.send(new k.DisableKeyCommand({ KeyId }), o); },
    deleteImportedKeyMaterial: async (KeyId, o) => { const { k, client } = await open(); await client.send(new k.DeleteImportedKeyMaterialCommand({ KeyId }), o); },
    scheduleKeyDeletion: async (KeyId, PendingWindowInDays, o) => { const { k, client } = await open(); await client.send(new k.ScheduleKeyDeletionCommand({ KeyId, PendingWindowInDays }), o); },
    rotateKeyOnDemand: async (KeyId, o) => { const { k, client } = await open(); await client.send(new k.RotateKeyOnDemandCommand({ KeyId }), o); },
    listKeys: async (Marker, o) => { const { k, client } = await open(); return client.send(new k.ListKeysCommand({ Limit: 1000, ...(Marker ? { Marker } : {}) }), o); },
    listResourceTags: async (KeyId, o) => { const { k, client } = await open(); return client.send(new k.ListResourceTagsCommand({ KeyId, Limit: 50 }), o); },
    destroy: () => void ready?.then(({ client }) => client.destroy(), () => undefined),
  };
}
