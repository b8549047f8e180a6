/**
 * Azure Key Vault connector (BYOK.md §3): a key exchange key (RSA-HSM, key_ops ["import"]) is created once per vault
 * (or reused), the vault key's material is wrapped for it in the HSM (CKM_RSA_AES_KEY_WRAP: OAEP-SHA-1 over an
 * ephemeral AES key, then RFC 5649) and sent as the .byok transfer blob in `key_hsm` (SDK `t`). Rotation is a new
 * version under the same name; enable/disable set each version's `enabled` attribute; deletion is the vault's soft
 * delete, purged when configured. Cloud key names allow only letters, digits and hyphens: `_` becomes `-`.
 */
import { createPublicKey } from "node:crypto";
import type { KeyProperties } from "@azure/keyvault-keys";
import type { KeyAlgorithm } from "../../hsm/hsm.js";
import { callWithRetry } from "../call-policy.js";
import {
  ConnectorError,
  type CallPolicy,
  type CloudKeyRef,
  type CloudKeyView,
  type ConnectorCredentials,
  type ConnectorFactory,
  type ConnectorSettings,
  type KeystoreConnector,
  type PushRequest,
  type PushResult,
  type RotateRequest,
} from "../connector.js";
import { AZURE_CREDENTIAL_FIELDS, compileAzureSettings, validateAzureSettings, type AzureKeyVaultSettings } from "./config.js";
import { translateAzureError } from "./errors.js";
import { createAzureKeysApi, type AzureKeysApi } from "./sdk.js";

const REQUEST_ID_TAG = "mcko:request-id";

interface Spec {
  readonly kty: "RSA-HSM" | "EC-HSM" | "oct-HSM";
  readonly keyOps: string[];
  readonly crv?: "P-256" | "P-384";
}

const RSA_OPS = ["encrypt", "decrypt", "wrapKey", "unwrapKey", "sign", "verify"];
const SPECS: Partial<Record<KeyAlgorithm, Spec>> = {
  AES_128: { kty: "oct-HSM", keyOps: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  AES_192: { kty: "oct-HSM", keyOps: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  AES_256: { kty: "oct-HSM", keyOps: ["encrypt", "decrypt", "wrapKey", "unwrapKey"] },
  RSA_2048: { kty: "RSA-HSM", keyOps: RSA_OPS },
  RSA_3072: { kty: "RSA-HSM", keyOps: RSA_OPS },
  RSA_4096: { kty: "RSA-HSM", keyOps: RSA_OPS },
  EC_P256: { kty: "EC-HSM", keyOps: ["sign", "verify"], crv: "P-256" },
  EC_P384: { kty: "EC-HSM", keyOps: ["sign", "verify"], crv: "P-384" },
};

export class AzureKeyVaultConnector implements KeystoreConnector {
  readonly type = "AZURE_KEY_VAULT" as const;
  #kek: Promise<{ kid: string; spki: Buffer }> | undefined;

  constructor(
    private readonly settings: AzureKeyVaultSettings,
    private readonly api: AzureKeysApi,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
  ) {}

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    return SPECS[algorithm] ? undefined : `Azure Key Vault has no key type for ${algorithm} (HMAC keys cannot be imported)`;
  }

  async testConnection(): Promise<{ detail: string }> {
    await this.#call("GetKeys", (o) => this.api.listKeys(o));
    return { detail: `Azure Key Vault ${this.settings.vaultUrl} answered and accepted the credentials` };
  }

  async push(req: PushRequest): Promise<PushResult> {
    const name = req.existingKey?.id ?? azureName(req.cloudName);
    const key = { id: name, uri: this.#uri(name) };
    const versions = await this.#versions(name);
    // An import of this very push that went through before a crash or a lost answer: nothing more to do.
    const done = versions.find((v) => v.tags?.[REQUEST_ID_TAG] === req.requestId);
    if (done?.version) {
      await req.onKeyCreated?.(key);
      return { key, alias: name, versionId: done.version, softwareStep: "none" };
    }
    if (!req.existingKey) {
      if (versions.length > 0 && !versions.some((v) => v.tags?.[REQUEST_ID_TAG] === req.requestId) && versions.every((v) => v.tags?.["mcko:distribution"] !== req.tags["mcko:distribution"])) {
        throw new ConnectorError("REJECTED", `Azure Key Vault already holds a key named ${name} that MCKO did not put there`, { cloudCode: "Conflict", operation: "ImportKey" });
      }
    }
    const result = await this.#importVersion(name, req);
    await req.onKeyCreated?.(key);
    return { key, alias: name, versionId: result.versionId, softwareStep: result.softwareStep };
  }

  async rotate(req: RotateRequest): Promise<PushResult> {
    const result = await this.#importVersion(req.current.id, req);
    return { key: req.current, alias: req.current.id, versionId: result.versionId, softwareStep: result.softwareStep };
  }

  async setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    for (const v of await this.#versions(key.id)) {
      if (v.version && v.enabled !== enabled) await this.#call("UpdateKey", (o) => this.api.updateKeyProperties(key.id, v.version!, enabled, o));
    }
  }

  async scheduleDeletion(key: CloudKeyRef, _windowDays: number): Promise<void> {
    // Azure's soft-delete retention is a property of the vault (7-90 days), not of the call.
    try {
      await this.#call("DeleteKey", (o) => this.api.deleteKey(key.id, o));
    } catch (e) {
      if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
    }
    if (this.settings.purgeOnDelete) {
      try {
        await this.#call("PurgeDeletedKey", (o) => this.api.purgeDeletedKey(key.id, o));
      } catch (e) {
        if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
      }
    }
  }

  async describe(key: CloudKeyRef): Promise<CloudKeyView> {
    const versions = await this.#versions(key.id);
    if (versions.length === 0) {
      try {
        await this.#call("GetDeletedKey", (o) => this.api.getDeletedKey(key.id, o));
        return { exists: true, state: "PENDING_DELETION", rawState: "Deleted", tags: {} };
      } catch (e) {
        if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return { exists: false, state: "ABSENT", rawState: "NotFound", tags: {} };
        throw e;
      }
    }
    const latest = versions.reduce((a, b) => ((a.createdOn?.getTime() ?? 0) >= (b.createdOn?.getTime() ?? 0) ? a : b));
    return {
      exists: true,
      state: latest.enabled === false ? "DISABLED" : "ENABLED",
      rawState: latest.enabled === false ? "Disabled" : "Enabled",
      tags: { ...(latest.tags ?? {}) },
      ...(latest.version ? { currentVersionId: latest.version } : {}),
    };
  }

  async resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    const name = azureName(cloudName);
    return (await this.#versions(name)).length > 0 ? { id: name, uri: this.#uri(name) } : undefined;
  }

  async findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    const keys = await this.#call("GetKeys", (o) => this.api.listKeys(o));
    const out: CloudKeyRef[] = [];
    for (const k of keys) {
      if (k.tags?.[REQUEST_ID_TAG] === requestId || (await this.#versions(k.name)).some((v) => v.tags?.[REQUEST_ID_TAG] === requestId)) out.push({ id: k.name, uri: this.#uri(k.name) });
    }
    return out;
  }

  close(): void {
    // The SDK client holds no sockets beyond Node's agent; nothing to release.
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #uri(name: string): string {
    return `${this.settings.vaultUrl.replace(/\/$/, "")}/keys/${name}`;
  }

  async #versions(name: string): Promise<KeyProperties[]> {
    try {
      return await this.#call("GetKeyVersions", (o) => this.api.listVersions(name, o));
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return [];
      throw e;
    }
  }

  #keyExchangeKey(): Promise<{ kid: string; spki: Buffer }> {
    this.#kek ??= (async () => {
      let kek;
      try {
        kek = await this.#call("GetKey", (o) => this.api.getKey(this.settings.kekName, o));
      } catch (e) {
        if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
        kek = await this.#call("CreateKey", (o) => this.api.createKey(this.settings.kekName, "RSA-HSM", { keySize: 4096, keyOps: ["import"] }, o));
      }
      const n = kek.key?.n;
      const e = kek.key?.e;
      if (!kek.id || !n || !e) throw new ConnectorError("REJECTED", `the key exchange key ${this.settings.kekName} is not an RSA key`, { operation: "GetKey" });
      const spki = createPublicKey({ key: { kty: "RSA", n: Buffer.from(n).toString("base64url"), e: Buffer.from(e).toString("base64url") }, format: "jwk" }).export({ type: "spki", format: "der" });
      return { kid: kek.id, spki };
    })();
    this.#kek.catch(() => (this.#kek = undefined));
    return this.#kek;
  }

  async #importVersion(name: string, req: PushRequest): Promise<{ versionId: string; softwareStep: PushResult["softwareStep"] }> {
    const spec = SPECS[req.algorithm];
    if (!spec) throw new ConnectorError("UNSUPPORTED_ALGORITHM", this.unsupportedReason(req.algorithm)!);
    const kek = await this.#keyExchangeKey();
    const wrapped = await req.wrap(kek.spki, "RSA_AES_KWP_SHA1");
    const byok = Buffer.from(
      JSON.stringify({ schema_version: "1.0.0", header: { kid: kek.kid, alg: "dir", enc: "CKM_RSA_AES_KEY_WRAP" }, ciphertext: wrapped.blob.toString("base64url"), generator: "MCKO" }),
    );
    const tags = { ...req.tags, [REQUEST_ID_TAG]: req.requestId };
    let attempt = 0;
    try {
      const key = await this.#call("ImportKey", async (o) => {
        // An import whose answer was lost may have made the version: look for it by tag before importing again.
        if (attempt++ > 0) {
          const found = (await this.api.listVersions(name, o).catch(() => [] as KeyProperties[])).find((v) => v.tags?.[REQUEST_ID_TAG] === req.requestId);
          if (found) return { name, properties: found } as unknown as Awaited<ReturnType<AzureKeysApi["importKey"]>>;
        }
        return this.api.importKey(name, { kty: spec.kty, keyOps: spec.keyOps, ...(spec.crv ? { crv: spec.crv } : {}), t: byok }, { hardwareProtected: true, enabled: true, tags }, o);
      });
      return { versionId: key.properties.version ?? "", softwareStep: wrapped.softwareStep };
    } finally {
      wrapped.blob.fill(0);
      byok.fill(0);
    }
  }

  #call<T>(operation: string, fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    return callWithRetry(this.policy, operation, async (signal) => {
      try {
        return await fn({ abortSignal: signal });
      } catch (e) {
        throw translateAzureError(e, operation, this.credentials, this.settings.vaultUrl);
      }
    });
  }
}

/** Azure key names are letters, digits and hyphens. */
export function azureName(cloudName: string): string {
  return cloudName.replace(/_/g, "-");
}

export const azureKeyVaultFactory: ConnectorFactory = {
  type: "AZURE_KEY_VAULT",
  credentialFields: AZURE_CREDENTIAL_FIELDS,
  validate: (settings: ConnectorSettings, credentials: ConnectorCredentials | undefined) => validateAzureSettings(settings, credentials),
  create(settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector {
    const s = compileAzureSettings(settings);
    const api = createAzureKeysApi(s, {
      ...(credentials.client_secret ? { clientSecret: credentials.client_secret } : {}),
      ...(credentials.bearer_token ? { bearerToken: credentials.bearer_token } : {}),
    });
    return new AzureKeyVaultConnector(s, api, policy, credentials);
  },
};
