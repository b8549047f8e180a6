/** The connector contract (test/contract/connector.ts) on AWS KMS, through the real daemon and the AWS KMS emulator. */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { startAwsKmsEmulator, type AwsKmsKeyView } from "../emulators/aws-kms/index.js";
import { awsConfig } from "../support/keystores.js";
import { connectorContract, type CloudKeyInfo, type ConnectorTarget, type TargetWorld } from "../contract/connector.js";

const ACCESS_KEY_ID = "AKIACANARY0000000042";
const SECRET = "Canary+Secret/Access=Key0123456789abcdefXYZ";
const WRONG_SECRET = "Wrong+Secret/Value=0123456789abcdefghijklmn";

const STATES: Record<string, CloudKeyInfo["state"]> = { Enabled: "ENABLED", Disabled: "DISABLED", PendingImport: "PENDING_IMPORT", PendingDeletion: "DELETION_SCHEDULED" };

function info(v: AwsKmsKeyView): CloudKeyInfo {
  return {
    id: v.keyId,
    names: v.aliases,
    tags: v.tags,
    state: STATES[v.keyState] ?? "OTHER",
    kcv: v.kcv,
    materialCount: v.materials.length,
    ...(v.pendingWindowInDays !== undefined ? { deletionWindowDays: v.pendingWindowInDays } : {}),
  };
}

const config = (c: Parameters<typeof awsConfig>[0]): NonNullable<Keystore["config"]> => ({ $case: "awsKms", value: awsConfig(c) });

const aws: ConnectorTarget = {
  id: "aws",
  title: "AWS KMS",
  type: KeystoreType.KEYSTORE_TYPE_AWS_KMS,
  configField: "aws_kms",
  async start(): Promise<TargetWorld> {
    const emu = await startAwsKmsEmulator({ accessKeys: { [ACCESS_KEY_ID]: SECRET } });
    return {
      credentials: { access_key_id: ACCESS_KEY_ID, secret_access_key: SECRET },
      wrongCredentials: { access_key_id: ACCESS_KEY_ID, secret_access_key: WRONG_SECRET },
      config: (cr) => config({ region: emu.region, endpoint: emu.endpoint, accessKeyId: cr.access_key_id ?? "", secretAccessKey: cr.secret_access_key ?? "" }),
      faults: emu.admin,
      cloudKeys: () => emu.admin.keys().map(info),
      disableOutOfBand: (id) => emu.admin.disableKey(id),
      deleteOutOfBand: (id) => emu.admin.deleteKey(id),
      close: () => emu.close(),
    };
  },
  algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
  unsupported: { algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_128, message: /256-bit/ },
  // The last two read the key back before the distribution is recorded IN_SYNC.
  pushCalls: ["CreateKey", "DescribeKey", "GetParametersForImport", "ImportKeyMaterial", "CreateAlias", "DescribeKey", "ListResourceTags"],
  mutatingPushCalls: ["CreateKey", "ImportKeyMaterial", "CreateAlias"],
  importCall: "ImportKeyMaterial",
  deletionCall: "ScheduleKeyDeletion",
  recreatedKeyGetsNewId: true,
  deletionWindowDays: 10,
  badSettings: [
    {
      title: "a malformed endpoint and a region that is not a region name",
      config: (w) => ({ $case: "awsKms", value: { ...(w.config(w.credentials).value as ReturnType<typeof awsConfig>), endpoint: "htp:/127.0.0.1::99/x?y", region: "mars" } }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.aws_kms.endpoint", "keystore.aws_kms.region"],
    },
    {
      title: "a well-formed region that does not exist (the cloud refuses it)",
      config: (w) => ({ $case: "awsKms", value: { ...(w.config(w.credentials).value as ReturnType<typeof awsConfig>), region: "us-nowhere-9" } }),
      validateOnly: true,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.aws_kms.region"],
    },
  ],
  wrongCredentialsCloudCode: "InvalidSignatureException",
  fixCredentialField: "secret_access_key",
};

connectorContract(test, aws);
