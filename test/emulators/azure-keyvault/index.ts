// Public surface of the Azure Key Vault emulator (see README.md).
export {
  DEFAULT_TENANT,
  DEFAULT_TOKEN,
  startAzureKeyVaultEmulator,
  type AzureKeyVaultAdmin,
  type AzureKeyVaultEmulator,
  type AzureKeyVaultEmulatorOptions,
  type AzureKeyVersionView,
  type AzureKeyView,
  type AzureMaterialExport,
} from "./server.js";
