/**
 * AWS KMS connector (BYOK.md §2): CreateKey with Origin=EXTERNAL and the key spec of the algorithm, tagged with the
 * vault key and the push's request id → GetParametersForImport (RSA_4096 wrapping key) → Hsm.wrapForKeystore →
 * ImportKeyMaterial → alias. Symmetric keys rotate in place (NEW_KEY_MATERIAL + RotateKeyOnDemand); asymmetric and
 * HMAC material is fixed after the first import, so they rotate to a new key and the alias moves.
 */
import type { ByokFormat, KeyAlgorithm } from "../../hsm/hsm.js";
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
import { AWS_CREDENTIAL_FIELDS, compileAwsSettings, validateAwsSettings, type AwsKmsSettings, type AwsWrappingAlgorithm } from "./config.js";
import { translateAwsError } from "./errors.js";
import { createAwsKmsApi, type AwsKmsApi } from "./sdk.js";

export const REQUEST_ID_TAG = "mcko:request-id";

interface Spec {
  readonly keySpec: "SYMMETRIC_DEFAULT" | "RSA_2048" | "RSA_3072" | "RSA_4096" | "ECC_NIST_P256" | "ECC_NIST_P384" | "HMAC_256" | "HMAC_384" | "HMAC_512";
  readonly keyUsage: "ENCRYPT_DECRYPT" | "SIGN_VERIFY" | "GENERATE_VERIFY_MAC";
  readonly asymmetric: boolean;
}

const SPECS: Partial<Record<KeyAlgorithm, Spec>> = {
  AES_256: { keySpec: "SYMMETRIC_DEFAULT", keyUsage: "ENCRYPT_DECRYPT", asymmetric: false },
  RSA_2048: { keySpec: "RSA_2048", keyUsage: "ENCRYPT_DECRYPT", asymmetric: true },
  RSA_3072: { keySpec: "RSA_3072", keyUsage: "ENCRYPT_DECRYPT", asymmetric: true },
  RSA_4096: { keySpec: "RSA_4096", keyUsage: "ENCRYPT_DECRYPT", asymmetric: true },
  EC_P256: { keySpec: "ECC_NIST_P256", keyUsage: "SIGN_VERIFY", asymmetric: true },
  EC_P384: { keySpec: "ECC_NIST_P384", keyUsage: "SIGN_VERIFY", asymmetric: true },
  HMAC_SHA256: { keySpec: "HMAC_256", keyUsage: "GENERATE_VERIFY_MAC", asymmetric: false },
  HMAC_SHA384: { keySpec: "HMAC_384", keyUsage: "GENERATE_VERIFY_MAC", asymmetric: false },
  HMAC_SHA512: { keySpec: "HMAC_512", keyUsage: "GENERATE_VERIFY_MAC", asymmetric: false },
};

const FORMAT: Record<AwsWrappingAlgorithm, ByokFormat> = {
  RSA_AES_KEY_WRAP_SHA_256: "RSA_AES_KWP_SHA256",
  RSA_AES_KEY_WRAP_SHA_1: "RSA_AES_KWP_SHA1",
  RSAES_OAEP_SHA_256: "RSA_OAEP_SHA256",
  RSAES_OAEP_SHA_1: "RSA_OAEP_SHA1",
};

export class AwsKmsConnector implements KeystoreConnector {
  readonly type = "AWS_KMS" as const;

  constructor(
    private readonly settings: AwsKmsSettings,
    private readonly api: AwsKmsApi,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
  ) {}

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    if (SPECS[algorithm]) return undefined;
    if (algorithm === "AES_128" || algorithm === "AES_192") return `AWS KMS imports only 256-bit symmetric keys (SYMMETRIC_DEFAULT), not ${algorithm}`;
    return `AWS KMS cannot import ${algorithm} keys`;
  }

  async testConnection(): Promise<{ detail: string }> {
    await this.#call("ListKeys", (o) => this.api.listKeys(undefined, o));
    return { detail: `AWS KMS answered in ${this.settings.region}${this.settings.endpoint ? ` at ${this.settings.endpoint}` : ""} and accepted the credentials` };
  }

  async push(req: PushRequest): Promise<PushResult> {
    const spec = this.#spec(req.algorithm);
    let key = req.existingKey;
    if (!key) {
      key = await this.#createKey(req, spec);
      await req.onKeyCreated?.(key);
    }
    const meta = (await this.#call("DescribeKey", (o) => this.api.describeKey(key.id, o))).KeyMetadata;
    let versionId = meta?.CurrentKeyMaterialId ?? "";
    let softwareStep: PushResult["softwareStep"] = "none";
    if (meta?.KeyState === "PendingImport") {
      const imported = await this.#import(key.id, req, spec, undefined);
      versionId = imported.versionId;
      softwareStep = imported.softwareStep;
    } else if (meta?.KeyState === "PendingDeletion") {
      throw new ConnectorError("REJECTED", `AWS KMS key ${key.id} is pending deletion; it cannot take the push`, { cloudCode: "KMSInvalidStateException", operation: "ImportKeyMaterial" });
    }
    const alias = await this.#ensureAlias(req.cloudName, key.id);
    return { key, alias, versionId, softwareStep };
  }

  async rotate(req: RotateRequest): Promise<PushResult> {
    const spec = this.#spec(req.algorithm);
    if (spec.keySpec === "SYMMETRIC_DEFAULT") {
      // Imported symmetric keys take new material as PENDING_ROTATION; RotateKeyOnDemand makes it current.
      const imported = await this.#import(req.current.id, req, spec, "NEW_KEY_MATERIAL");
      await this.#call("RotateKeyOnDemand", (o) => this.api.rotateKeyOnDemand(req.current.id, o));
      const meta = (await this.#call("DescribeKey", (o) => this.api.describeKey(req.current.id, o))).KeyMetadata;
      const alias = await this.#ensureAlias(req.cloudName, req.current.id);
      return { key: req.current, alias, versionId: meta?.CurrentKeyMaterialId ?? imported.versionId, softwareStep: imported.softwareStep };
    }
    // Asymmetric and HMAC material is fixed after the first import: a new key, then the alias moves to it.
    const { existingKey, ...rest } = req;
    return this.push(existingKey && existingKey.id !== req.current.id ? { ...rest, existingKey } : rest);
  }

  async setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    if (enabled) await this.#call("EnableKey", (o) => this.api.enableKey(key.id, o));
    else await this.#call("DisableKey", (o) => this.api.disableKey(key.id, o));
  }

  async scheduleDeletion(key: CloudKeyRef, windowDays: number): Promise<void> {
    const view = await this.describe(key);
    if (!view.exists || view.state === "PENDING_DELETION") return;
    if (view.state !== "PENDING_IMPORT") {
      await this.#call("DeleteImportedKeyMaterial", (o) => this.api.deleteImportedKeyMaterial(key.id, o));
    }
    const days = Math.min(30, Math.max(7, windowDays || 7));
    await this.#call("ScheduleKeyDeletion", (o) => this.api.scheduleKeyDeletion(key.id, days, o));
  }

  async describe(key: CloudKeyRef): Promise<CloudKeyView> {
    let meta;
    try {
      meta = (await this.#call("DescribeKey", (o) => this.api.describeKey(key.id, o))).KeyMetadata;
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return { exists: false, state: "ABSENT", rawState: "NotFound", tags: {} };
      throw e;
    }
    const raw = meta?.KeyState ?? "";
    const tags: Record<string, string> = {};
    if (raw !== "PendingDeletion") {
      const out = await this.#call("ListResourceTags", (o) => this.api.listResourceTags(key.id, o));
      for (const t of out.Tags ?? []) if (t.TagKey) tags[t.TagKey] = t.TagValue ?? "";
    }
    const state: CloudKeyView["state"] =
      raw === "Enabled" ? "ENABLED" : raw === "Disabled" ? "DISABLED" : raw === "PendingImport" ? "PENDING_IMPORT" : raw === "PendingDeletion" ? "PENDING_DELETION" : "OTHER";
    return { exists: true, state, rawState: raw, tags, ...(meta?.CurrentKeyMaterialId ? { currentVersionId: meta.CurrentKeyMaterialId } : {}) };
  }

  async resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    try {
      const meta = (await this.#call("DescribeKey", (o) => this.api.describeKey(this.#alias(cloudName), o))).KeyMetadata;
      return meta?.KeyId ? { id: meta.KeyId, uri: meta.Arn ?? meta.KeyId } : undefined;
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return undefined;
      throw e;
    }
  }

  async findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    const found: CloudKeyRef[] = [];
    let marker: string | undefined;
    do {
      const page = await this.#call("ListKeys", (o) => this.api.listKeys(marker, o));
      for (const k of page.Keys ?? []) {
        if (!k.KeyId) continue;
        let tags;
        try {
          tags = await this.#call("ListResourceTags", (o) => this.api.listResourceTags(k.KeyId!, o));
        } catch (e) {
          if (e instanceof ConnectorError && (e.kind === "NOT_FOUND" || e.kind === "REJECTED")) continue;
          throw e;
        }
        if ((tags.Tags ?? []).some((t) => t.TagKey === REQUEST_ID_TAG && t.TagValue === requestId)) found.push({ id: k.KeyId, uri: k.KeyArn ?? k.KeyId });
      }
      marker = page.Truncated ? page.NextMarker : undefined;
    } while (marker);
    return found;
  }

  close(): void {
    this.api.destroy();
  }

  /** One pass over ListKeys/ListResourceTags inside a single attempt (used between CreateKey attempts). */
  async #findByTagOnce(requestId: string, o: { abortSignal: AbortSignal }): Promise<CloudKeyRef | undefined> {
    let marker: string | undefined;
    do {
      const page = await this.api.listKeys(marker, o);
      for (const k of page.Keys ?? []) {
        if (!k.KeyId) continue;
        const tags = await this.api.listResourceTags(k.KeyId, o).catch(() => undefined);
        if (tags?.Tags?.some((t) => t.TagKey === REQUEST_ID_TAG && t.TagValue === requestId)) return { id: k.KeyId, uri: k.KeyArn ?? k.KeyId };
      }
      marker = page.Truncated ? page.NextMarker : undefined;
    } while (marker);
    return undefined;
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #spec(algorithm: KeyAlgorithm): Spec {
    const spec = SPECS[algorithm];
    if (!spec) throw new ConnectorError("UNSUPPORTED_ALGORITHM", this.unsupportedReason(algorithm)!);
    return spec;
  }

  #alias(cloudName: string): string {
    return `alias/${this.settings.aliasPrefix}${cloudName}`;
  }

  async #createKey(req: PushRequest, spec: Spec): Promise<CloudKeyRef> {
    const tags = { ...req.tags, [REQUEST_ID_TAG]: req.requestId };
    // A CreateKey whose answer was lost (timeout, 5xx after the fact) may have made the key: before trying again,
    // look for it by its request-id tag, so a retry never makes a second one. Throttling is refused before anything
    // happens and needs no look-up (which reads every key's tags, and under heavy throttling rarely gets through).
    let mayExist = false;
    const out = await this.#call("CreateKey", async (o) => {
      if (mayExist) {
        const found = await this.#findByTagOnce(req.requestId, o);
        if (found) return { KeyMetadata: { KeyId: found.id, Arn: found.uri }, $metadata: {} };
      }
      return this.api
        .createKey(
          {
            Origin: "EXTERNAL",
            KeySpec: spec.keySpec,
            KeyUsage: spec.keyUsage,
            Description: req.description.slice(0, 8192),
            Tags: Object.entries(tags).map(([TagKey, TagValue]) => ({ TagKey, TagValue })),
          },
          o,
        )
        .catch((e: unknown) => {
          if ((e as { name?: string } | null)?.name !== "ThrottlingException") mayExist = true;
          throw e;
        });
    });
    const meta = out.KeyMetadata;
    if (!meta?.KeyId) throw new ConnectorError("REJECTED", "AWS KMS CreateKey answered without a key id", { operation: "CreateKey" });
    return { id: meta.KeyId, uri: meta.Arn ?? meta.KeyId };
  }

  async #import(keyId: string, req: PushRequest, spec: Spec, importType: "NEW_KEY_MATERIAL" | undefined): Promise<{ versionId: string; softwareStep: PushResult["softwareStep"] }> {
    // AWS requires RSA-AES for asymmetric material (too long for plain OAEP); keep the configured hash.
    let wa = this.settings.wrappingAlgorithm;
    if (spec.asymmetric && wa.startsWith("RSAES_OAEP_")) wa = wa === "RSAES_OAEP_SHA_1" ? "RSA_AES_KEY_WRAP_SHA_1" : "RSA_AES_KEY_WRAP_SHA_256";
    const params = await this.#call("GetParametersForImport", (o) => this.api.getParametersForImport({ KeyId: keyId, WrappingAlgorithm: wa, WrappingKeySpec: "RSA_4096" }, o));
    if (!params.PublicKey || !params.ImportToken) throw new ConnectorError("REJECTED", "AWS KMS GetParametersForImport answered without a public key or token", { operation: "GetParametersForImport" });
    const wrapped = await req.wrap(Buffer.from(params.PublicKey), FORMAT[wa]);
    const days = this.settings.materialValidDays;
    try {
      const out = await this.#call("ImportKeyMaterial", (o) =>
        this.api.importKeyMaterial(
          {
            KeyId: keyId,
            ImportToken: params.ImportToken,
            EncryptedKeyMaterial: wrapped.blob,
            ...(days > 0 ? { ExpirationModel: "KEY_MATERIAL_EXPIRES", ValidTo: new Date(Date.now() + days * 86_400_000) } : { ExpirationModel: "KEY_MATERIAL_DOES_NOT_EXPIRE" }),
            ...(importType ? { ImportType: importType } : {}),
          },
          o,
        ),
      );
      return { versionId: out.KeyMaterialId ?? "", softwareStep: wrapped.softwareStep };
    } finally {
      wrapped.blob.fill(0);
    }
  }

  async #ensureAlias(cloudName: string, keyId: string): Promise<string> {
    const alias = this.#alias(cloudName);
    try {
      await this.#call("CreateAlias", (o) => this.api.createAlias(alias, keyId, o));
    } catch (e) {
      if (!(e instanceof ConnectorError) || e.details.cloudCode !== "AlreadyExistsException") throw e;
      const current = await this.resolveName(cloudName);
      if (current?.id !== keyId) await this.#call("UpdateAlias", (o) => this.api.updateAlias(alias, keyId, o));
    }
    return alias;
  }

  /** The api takes the keystore's concurrency slot itself, around each HTTP exchange (sdk.ts). */
  #call<T>(operation: string, fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    return callWithRetry(
      this.policy,
      operation,
      async (signal) => {
        try {
          return await fn({ abortSignal: signal });
        } catch (e) {
          throw translateAwsError(e, operation, this.credentials);
        }
      },
      { limitedInside: true },
    );
  }
}

export const awsKmsFactory: ConnectorFactory = {
  type: "AWS_KMS",
  credentialFields: AWS_CREDENTIAL_FIELDS,
  validate: (settings: ConnectorSettings, credentials: ConnectorCredentials | undefined) => validateAwsSettings(settings, credentials),
  create(settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector {
    const s = compileAwsSettings(settings);
    const api = createAwsKmsApi(
      s,
      {
        accessKeyId: credentials.access_key_id ?? "",
        secretAccessKey: credentials.secret_access_key ?? "",
        ...(credentials.session_token ? { sessionToken: credentials.session_token } : {}),
      },
      policy.limit,
    );
    return new AwsKmsConnector(s, api, policy, credentials);
  },
};
