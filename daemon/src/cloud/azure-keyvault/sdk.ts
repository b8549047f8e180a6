/**
 * The narrow surface of @azure/keyvault-keys the connector uses, built from settings: the vault URL, a credential
 * (client secret through @azure/identity, or a ready bearer token), an extra CA for private endpoints and emulators.
 * The SDK's own retries are off: call-policy.ts retries.
 */
import { ClientSecretCredential } from "@azure/identity";
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import { KeyClient, type CreateKeyOptions, type DeletedKey, type ImportKeyOptions, type JsonWebKey, type KeyProperties, type KeyVaultKey } from "@azure/keyvault-keys";
import type { AzureKeyVaultSettings } from "./config.js";

type Opts = { readonly abortSignal: AbortSignal };

export interface AzureKeysApi {
  getKey(name: string, o: Opts): Promise<KeyVaultKey>;
  createKey(name: string, kty: string, options: CreateKeyOptions, o: Opts): Promise<KeyVaultKey>;
  importKey(name: string, key: JsonWebKey, options: ImportKeyOptions, o: Opts): Promise<KeyVaultKey>;
  updateKeyProperties(name: string, version: string, enabled: boolean, o: Opts): Promise<void>;
  listVersions(name: string, o: Opts): Promise<KeyProperties[]>;
  listKeys(o: Opts): Promise<KeyProperties[]>;
  deleteKey(name: string, o: Opts): Promise<void>;
  getDeletedKey(name: string, o: Opts): Promise<DeletedKey>;
  purgeDeletedKey(name: string, o: Opts): Promise<void>;
}

export function createAzureKeysApi(s: AzureKeyVaultSettings, credentials: { clientSecret?: string; bearerToken?: string }): AzureKeysApi {
  let credential: TokenCredential;
  if (credentials.bearerToken) {
    const token: AccessToken = { token: credentials.bearerToken, expiresOnTimestamp: Date.now() + 3600_000 };
    credential = { getToken: async () => ({ ...token, expiresOnTimestamp: Date.now() + 3600_000 }) };
  } else {
    credential = new ClientSecretCredential(s.tenantId, s.clientId, credentials.clientSecret ?? "", s.authorityHost ? { authorityHost: s.authorityHost } : {});
  }
  const host = new URL(s.vaultUrl).hostname;
  const azureHost = /\.(vault\.azure\.net|managedhsm\.azure\.net|vault\.azure\.cn|vault\.usgovcloudapi\.net)$/.test(host);
  const client = new KeyClient(s.vaultUrl, credential, {
    // Challenge-resource verification only works for Azure's own host names (private endpoints and emulators differ).
    disableChallengeResourceVerification: !azureHost,
    retryOptions: { maxRetries: 0 },
    ...(s.caCertPem ? { tlsOptions: { ca: s.caCertPem } } : {}),
  } as ConstructorParameters<typeof KeyClient>[2]);
  const all = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
    const out: T[] = [];
    for await (const x of it) out.push(x);
    return out;
  };
  return {
    getKey: (name, o) => client.getKey(name, { abortSignal: o.abortSignal }),
    createKey: (name, kty, options, o) => client.createKey(name, kty, { ...options, abortSignal: o.abortSignal }),
    importKey: (name, key, options, o) => client.importKey(name, key, { ...options, abortSignal: o.abortSignal }),
    updateKeyProperties: async (name, version, enabled, o) => void (await client.updateKeyProperties(name, version, { enabled, abortSignal: o.abortSignal })),
    listVersions: (name, o) => all(client.listPropertiesOfKeyVersions(name, { abortSignal: o.abortSignal })),
    listKeys: (o) => all(client.listPropertiesOfKeys({ abortSignal: o.abortSignal })),
    deleteKey: async (name, o) => {
      const poller = await client.beginDeleteKey(name, { abortSignal: o.abortSignal, intervalInMs: 100 });
      await poller.pollUntilDone();
    },
    getDeletedKey: (name, o) => client.getDeletedKey(name, { abortSignal: o.abortSignal }),
    purgeDeletedKey: async (name, o) => void (await client.purgeDeletedKey(name, { abortSignal: o.abortSignal })),
  };
}
