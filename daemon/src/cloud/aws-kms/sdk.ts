/**
 * The narrow surface of @aws-sdk/client-kms the connector uses (go-kms-wrapping's `KmsApi` idea): one method per
 * KMS operation, built from settings with the configurable endpoint. Unit tests may pass a fake; integration tests
 * point the endpoint at the emulator. The SDK's own retries are off (maxAttempts 1): call-policy.ts retries.
 */
import {
  CreateAliasCommand,
  CreateKeyCommand,
  DeleteImportedKeyMaterialCommand,
  DescribeKeyCommand,
  DisableKeyCommand,
  EnableKeyCommand,
  GetParametersForImportCommand,
  ImportKeyMaterialCommand,
  KMSClient,
  ListKeysCommand,
  ListResourceTagsCommand,
  RotateKeyOnDemandCommand,
  ScheduleKeyDeletionCommand,
  UpdateAliasCommand,
  type CreateKeyCommandInput,
  type CreateKeyCommandOutput,
  type DescribeKeyCommandOutput,
  type GetParametersForImportCommandInput,
  type GetParametersForImportCommandOutput,
  type ImportKeyMaterialCommandInput,
  type ImportKeyMaterialCommandOutput,
  type ListKeysCommandOutput,
  type ListResourceTagsCommandOutput,
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

export function createAwsKmsApi(settings: AwsKmsSettings, credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string }): AwsKmsApi {
  const client = new KMSClient({
    region: settings.region,
    ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
    credentials,
    maxAttempts: 1,
  });
  return {
    createKey: (input, o) => client.send(new CreateKeyCommand(input), o),
    describeKey: (KeyId, o) => client.send(new DescribeKeyCommand({ KeyId }), o),
    getParametersForImport: (input, o) => client.send(new GetParametersForImportCommand(input), o),
    importKeyMaterial: (input, o) => client.send(new ImportKeyMaterialCommand(input), o),
    createAlias: async (AliasName, TargetKeyId, o) => void (await client.send(new CreateAliasCommand({ AliasName, TargetKeyId }), o)),
    updateAlias: async (AliasName, TargetKeyId, o) => void (await client.send(new UpdateAliasCommand({ AliasName, TargetKeyId }), o)),
    enableKey: async (KeyId, o) => void (await client.send(new EnableKeyCommand({ KeyId }), o)),
    disableKey: async (KeyId, o) => void (await client.send(new DisableKeyCommand({ KeyId }), o)),
    deleteImportedKeyMaterial: async (KeyId, o) => void (await client.send(new DeleteImportedKeyMaterialCommand({ KeyId }), o)),
    scheduleKeyDeletion: async (KeyId, PendingWindowInDays, o) => void (await client.send(new ScheduleKeyDeletionCommand({ KeyId, PendingWindowInDays }), o)),
    rotateKeyOnDemand: async (KeyId, o) => void (await client.send(new RotateKeyOnDemandCommand({ KeyId }), o)),
    listKeys: (Marker, o) => client.send(new ListKeysCommand({ Limit: 1000, ...(Marker ? { Marker } : {}) }), o),
    listResourceTags: (KeyId, o) => client.send(new ListResourceTagsCommand({ KeyId, Limit: 50 }), o),
    destroy: () => client.destroy(),
  };
}
