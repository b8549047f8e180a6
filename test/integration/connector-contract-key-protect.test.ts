/**
 * The connector contract (test/contract/connector.ts) on IBM Key Protect, through the real daemon and the Key Protect
 * emulator (REST, IAM API-key exchange on the same port). Key Protect keys carry no tags: MCKO keeps its tags in the
 * key's description, which the emulator's admin view returns, and this descriptor reads them from there.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, type IbmKeyProtectConfig, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { startKeyProtectEmulator, type KpKeyView } from "../emulators/key-protect/index.js";
import { connectorContract, type CloudKeyInfo, type ConnectorTarget, type TargetWorld } from "../contract/connector.js";

const INSTANCE = "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b";
const API_KEY = "Canary-KP-ApiKey-0123456789abcdefXYZ";
const WRONG_API_KEY = "Wrong-KP-ApiKey-9876543210zyxwvuABC";

const STATES: Record<number, CloudKeyInfo["state"]> = { 1: "ENABLED", 2: "DISABLED", 5: "DELETION_SCHEDULED" };

/** The `name=value` words of a description (how MCKO writes its tags into it). */
function descriptionTags(description: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of (description ?? "").split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0) out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

function info(v: KpKeyView): CloudKeyInfo {
  return {
    id: v.id,
    names: v.deleted ? [] : v.aliases,
    tags: descriptionTags(v.description),
    state: STATES[v.state] ?? "OTHER",
    kcv: v.kcv,
    materialCount: v.versions.length,
  };
}

function kpConfig(c: Partial<IbmKeyProtectConfig>): NonNullable<Keystore["config"]> {
  return { $case: "ibmKeyProtect", value: { endpoint: "", instanceId: "", iamEndpoint: "", apiKey: "", iamToken: "", keyRing: "", caCertPem: "", ...c } };
}

const keyProtect: ConnectorTarget = {
  id: "kp",
  title: "IBM Key Protect",
  type: KeystoreType.KEYSTORE_TYPE_IBM_KEY_PROTECT,
  configField: "ibm_key_protect",
  async start(): Promise<TargetWorld> {
    const emu = await startKeyProtectEmulator({ tokens: [], apiKeys: { [API_KEY]: [INSTANCE] }, instances: [INSTANCE], reuseWrappingKeys: true });
    return {
      credentials: { api_key: API_KEY },
      wrongCredentials: { api_key: WRONG_API_KEY },
      config: (cr) => kpConfig({ endpoint: emu.endpoint, instanceId: INSTANCE, iamEndpoint: emu.endpoint, apiKey: cr.api_key ?? "" }),
      faults: emu.admin,
      cloudKeys: () => emu.admin.keys(INSTANCE).map(info),
      disableOutOfBand: (id) => emu.admin.disableKey(id),
      // Lost: gone from the instance altogether (a DELETE would leave it restorable in state 5).
      deleteOutOfBand: (id) => emu.admin.purgeKey(id),
      close: () => emu.close(),
    };
  },
  // Key Protect takes the material RSA-OAEP-SHA-256-encrypted, which SoftHSM2 cannot do in the HSM: as every Key
  // Protect keystore on it, the test keystores allow that step in software (audited as softwareStep).
  keystoreExtra: { allowSoftwareWrap: true },
  algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
  unsupported: { algorithm: KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, message: /imports only AES root keys/ },
  pushCalls: ["IamGetToken", "ListKeys", "CreateImportToken", "GetImportToken", "CreateKey", "GetKeyMetadata"],
  mutatingPushCalls: ["CreateKey"],
  importCall: "CreateKey",
  deletionCall: "DeleteKey",
  recreatedKeyGetsNewId: true,
  deletionWindowDays: undefined,
  badSettings: [
    {
      title: "a malformed endpoint and an instance id that is not a GUID",
      config: (w) => kpConfig({ ...(w.config(w.credentials).value as IbmKeyProtectConfig), endpoint: "htp:/127.0.0.1::99/x?y", instanceId: "not-a-guid" }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.ibm_key_protect.endpoint", "keystore.ibm_key_protect.instance_id"],
    },
    {
      title: "an instance that does not exist (Key Protect refuses it)",
      config: (w) => kpConfig({ ...(w.config(w.credentials).value as IbmKeyProtectConfig), instanceId: "0a0b0c0d-1e1f-4a2b-8c3d-4e5f6a7b8c9d" }),
      validateOnly: true,
      code: grpc.status.FAILED_PRECONDITION,
      fieldViolations: [],
      reason: "CLOUD_CREDENTIALS_REJECTED",
      message: /instance_id/,
    },
  ],
  wrongCredentialsCloudCode: "BXNIM0415E",
  fixCredentialField: "api_key",
};

connectorContract(test, keyProtect);
