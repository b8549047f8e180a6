/** The connector contract (test/contract/connector.ts) on Azure Key Vault, through the real daemon and the Azure emulator. */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import { KeyClient, type KeyClientOptions } from "@azure/keyvault-keys";
import { KeyAlgorithm } from "../../protos/gen/mcko/v1/key.js";
import { KeystoreType, type AzureKeyVaultConfig, type Keystore } from "../../protos/gen/mcko/v1/keystore.js";
import { startAzureKeyVaultEmulator, type AzureKeyView } from "../emulators/azure-keyvault/index.js";
import { connectorContract, type CloudKeyInfo, type ConnectorTarget, type TargetWorld } from "../contract/connector.js";

const TOKEN = "Canary.Bearer-Token_0123456789abcdefXYZ";
const WRONG_TOKEN = "Wrong.Bearer-Token_0123456789abcdefghij";
const KEK = "mcko-kek";

function info(v: AzureKeyView): CloudKeyInfo {
  const latest = v.versions.find((x) => x.version === v.latestVersion);
  return {
    id: v.name,
    names: v.deleted ? [] : [v.name],
    tags: latest?.tags ?? {},
    state: v.deleted ? "DELETION_SCHEDULED" : latest?.enabled === false ? "DISABLED" : latest ? "ENABLED" : "PENDING_IMPORT",
    kcv: latest?.kcv,
    materialCount: v.versions.length,
  };
}

function azureConfig(c: Partial<AzureKeyVaultConfig>): NonNullable<Keystore["config"]> {
  return { $case: "azureKeyVault", value: { vaultUrl: "", tenantId: "", clientId: "", clientSecret: "", kekName: "", purgeOnDelete: false, hsm: true, bearerToken: "", caCertPem: "", authorityHost: "", ...c } };
}

const azure: ConnectorTarget = {
  id: "azure",
  title: "Azure Key Vault",
  type: KeystoreType.KEYSTORE_TYPE_AZURE_KEY_VAULT,
  configField: "azure_key_vault",
  async start(): Promise<TargetWorld> {
    const emu = await startAzureKeyVaultEmulator({ tokens: [TOKEN] });
    // The key exchange key is the connector's infrastructure, made on its first push (keystore-azure.test.ts covers
    // that). Made here, its RSA-4096 generation does not eat into a test's cloud deadlines on a loaded machine.
    const cred = { getToken: async () => ({ token: TOKEN, expiresOnTimestamp: Date.now() + 3600e3 }) };
    const opts = { disableChallengeResourceVerification: true, tlsOptions: { ca: emu.caCertPem } } as KeyClientOptions;
    await new KeyClient(emu.endpoint, cred, opts).createKey(KEK, "RSA-HSM", { keySize: 4096, keyOps: ["import"] });
    emu.admin.clearCalls();
    return {
      credentials: { bearer_token: TOKEN },
      wrongCredentials: { bearer_token: WRONG_TOKEN },
      config: (cr) => azureConfig({ vaultUrl: emu.endpoint, caCertPem: emu.caCertPem, bearerToken: cr.bearer_token ?? "" }),
      faults: emu.admin,
      cloudKeys: () => emu.admin.keys().filter((k) => k.name !== KEK).map(info),
      disableOutOfBand: (id) => emu.admin.disableKey(id),
      deleteOutOfBand: (id) => emu.admin.deleteKey(id),
      close: () => emu.close(),
    };
  },
  algorithm: KeyAlgorithm.KEY_ALGORITHM_AES_256,
  unsupported: { algorithm: KeyAlgorithm.KEY_ALGORITHM_HMAC_SHA256, message: /HMAC keys cannot be imported/ },
  // A fresh SDK client's first request goes out without a token and gets the bearer challenge (401); then the
  // versions under the name, the key exchange key, the import, and the key read back before it is recorded.
  pushCalls: ["GetKeyVersions", "GetKeyVersions", "GetKey", "ImportKey", "GetKeyVersions"],
  mutatingPushCalls: ["ImportKey"],
  importCall: "ImportKey",
  deletionCall: "DeleteKey",
  recreatedKeyGetsNewId: false,
  deletionWindowDays: undefined,
  badSettings: [
    {
      title: "a malformed vault URL and a key exchange key name Azure does not allow",
      config: (w) => ({ $case: "azureKeyVault", value: { ...(w.config(w.credentials).value as AzureKeyVaultConfig), vaultUrl: "htp:/127.0.0.1::99/x?y", kekName: "no_underscores!" } }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.azure_key_vault.kek_name", "keystore.azure_key_vault.vault_url"],
    },
    {
      // Software-protected keys would be imported as a JWK: the key's plaintext in the daemon. Only the .byok path is
      // offered, and asking for the other is refused naming the field.
      title: "software protection (hsm: false), which would mean a plaintext JWK import",
      config: (w) => ({ $case: "azureKeyVault", value: { ...(w.config(w.credentials).value as AzureKeyVaultConfig), hsm: false } }),
      validateOnly: false,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.azure_key_vault.hsm"],
    },
    {
      title: "a vault that does not exist (its host name does not resolve)",
      config: (w) => ({ $case: "azureKeyVault", value: { ...(w.config(w.credentials).value as AzureKeyVaultConfig), vaultUrl: "https://mcko-nowhere.vault.azure.invalid" } }),
      validateOnly: true,
      code: grpc.status.INVALID_ARGUMENT,
      fieldViolations: ["keystore.azure_key_vault.vault_url"],
    },
  ],
  wrongCredentialsCloudCode: "Unauthorized",
  fixCredentialField: "bearer_token",
};

connectorContract(test, azure);
