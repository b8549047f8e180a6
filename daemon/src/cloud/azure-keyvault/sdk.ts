/**
 * The narrow surface of @azure/keyvault-keys the connector uses, built from settings: the vault URL, a credential
 * (client secret through @azure/identity, or a ready bearer token), an extra CA for private endpoints and emulators.
 * The SDK's own retries are off: call-policy.ts retries.
 */
import type { AccessToken, TokenCredential } from "@azure/core-auth";
import type { KeyClient, CreateKeyOptions, DeletedKey, ImportKeyOptions, JsonWebKey, KeyProperties, KeyVaultKey } from "@azure/keyvault-keys";
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

// The SDKs are loaded on first use: importing them costs most of a second, which every daemon start would pay even
// with no Azure keystore.
let keysSdk: Promise<typeof import("@azure/keyvault-keys")> | undefined;
let identitySdk: Promise<typeof import("@azure/identity")> | undefined;

export function createAzureKeysApi(s: AzureKeyVaultSettings, credentials: { clientSecret?: string; bearerToken?: string }): AzureKeysApi {
  let ready: Promise<KeyClient> | undefined;
  const open = () =>
    (ready ??= (async () => {
      let credential: TokenCredential;
      if (credentials.bearerToken) {
        const token: AccessToken = { token: credentials.bearerToken, expiresOnTimestamp: Date.now() + 3600_000 };
        credential = { getToken: async () => ({ ...token, expiresOnTimestamp: Date.now() + 3600_000 }) };
      } else {
        const { ClientSecretCredential } = await (identitySdk ??= import("@azure/identity"));
        credential = new ClientSecretCredential(s.tenantId, s.clientId, credentials.clientSecret ?? "", s.authorityHost ? { authorityHost: s.authorityHost } : {});
      }
      const host = new URL(s.vaultUrl).hostname;
      const azureHost = /\.(vault\.azure\.net|managedhsm\.azure\.net|vault\.azure\.cn|vault\.usgovcloudapi\.net)$/.test(host);
      const { KeyClient } = await (keysSdk ??= import("@azure/keyvault-keys"));
      return new KeyClient(s.vaultUrl, credential, {
        // Challenge-resource verification only works for Azure's own host names (private endpoints and emulators differ).
        disableChallengeResourceVerification: !azureHost,
        retryOptions: { maxRetries: 0 },
        ...(s.caCertPem ? { tlsOptions: { ca: s.caCertPem } } : {}),
      } as ConstructorParameters<typeof KeyClient>[2]);
    })());
  const all = async <T>(it: AsyncIterable<T>): Promise<T[]> => {
    const out: T[] = [];
    for await (const x of it) out.push(x);
    return out;
  };
  return {
    getKey: async (name, o) => (await open()).getKey(name, { abortSignal: o.abortSignal }),
    createKey: async (name, kty, options, o) => (await open()).createKey(name, kty, { ...options, abortSignal: o.abortSignal }),
    importKey: async (name, key, options, o) => (await open()).importKey(name, key, { ...options, abortSignal: o.abortSignal }),
    updateKeyProperties: async (name, version, enabled, o) => void (await (await open()).updateKeyProperties(name, version, { enabled, abortSignal: o.abortSignal })),
    listVersions: async (name, o) => all((await open()).listPropertiesOfKeyVersions(name, { abortSignal: o.abortSignal })),
    listKeys: async (o) => all((await open()).listPropertiesOfKeys({ abortSignal: o.abortSignal })),
    deleteKey: async (name, o) => {
      const poller = await (await open()).beginDeleteKey(name, { abortSignal: o.abortSignal, intervalInMs: 100 });
      await poller.pollUntilDone();
    },
    getDeletedKey: async (name, o) => (await open()).getDeletedKey(name, { abortSignal: o.abortSignal }),
    purgeDeletedKey: async (name, o) => void (await (await open()).purgeDeletedKey(name, { abortSignal: o.abortSignal })),
  };
}
