/**
 * The `KeystoreConnector` interface: everything MCKO does to an external keystore goes through it. One folder per
 * target (aws-kms/, azure-keyvault/, …) implements it with the cloud's official SDK; `registry.ts` builds them
 * from a keystore's settings. Connectors hold no domain decisions (what to push when is core's job) and never
 * import core: failures cross this seam as `ConnectorError`s, which core maps to its domain errors.
 *
 * Contract for every implementation:
 * - Every cloud call goes through the connector's `CallPolicy`: at most `maxConcurrency` calls in flight per
 *   keystore, retries with exponential backoff and full jitter on throttling, 5xx, timeouts and connection
 *   errors, bounded by a deadline; other errors are not retried.
 * - `push` is idempotent on `requestId`: cloud keys are tagged `mcko:request-id`, `findByRequestId` finds them, and
 *   a push given `existingKey` continues an interrupted one (no second cloud key).
 * - Credentials never appear in errors, logs or results; messages from the cloud are scrubbed of them.
 * - Methods are safe to call concurrently; `close()` releases the SDK client.
 */
import type { ByokBlob, ByokFormat, ByokSoftwareStep, KeyAlgorithm } from "../hsm/hsm.js";

export const KEYSTORE_TYPES = ["AWS_KMS", "AZURE_KEY_VAULT", "GCP_KMS", "IBM_KEY_PROTECT", "PKCS11"] as const;
export type KeystoreType = (typeof KEYSTORE_TYPES)[number];

/** Non-secret connection settings of a keystore, per type (validated by the type's config.ts). */
export type ConnectorSettings = Readonly<Record<string, string | number | boolean>>;

/** Credential fields (e.g. access_key_id, secret_access_key); the connector copies them into its SDK client only. */
export type ConnectorCredentials = Readonly<Record<string, string>>;

export interface FieldProblem {
  /** Field path relative to the keystore's per-type config, e.g. `endpoint`. */
  readonly field: string;
  readonly description: string;
}

export type ConnectorErrorKind =
  /** The settings are unusable (malformed endpoint, unknown region…); `field` names the setting. */
  | "INVALID_CONFIG"
  /** The cloud refused the credentials. */
  | "CREDENTIALS_REJECTED"
  /** The cloud refused the request for another reason (validation, state, limits). */
  | "REJECTED"
  /** The cloud key (or alias) does not exist. */
  | "NOT_FOUND"
  /** Unreachable, throttled, 5xx or timed out past the deadline. */
  | "UNAVAILABLE"
  /** The cloud cannot import this algorithm. */
  | "UNSUPPORTED_ALGORITHM";

export class ConnectorError extends Error {
  override readonly name = "ConnectorError";
  constructor(
    readonly kind: ConnectorErrorKind,
    message: string,
    readonly details: { readonly cloudCode?: string; readonly operation?: string; readonly field?: string; readonly retryable?: boolean } = {},
  ) {
    super(message);
  }
}

/** A key in the cloud. */
export interface CloudKeyRef {
  /** AWS key id, Azure key name… */
  readonly id: string;
  /** AWS ARN, Azure key URI… */
  readonly uri: string;
}

/** What the cloud holds now. */
export interface CloudKeyView {
  readonly exists: boolean;
  readonly state: "ENABLED" | "DISABLED" | "PENDING_IMPORT" | "PENDING_DELETION" | "ABSENT" | "OTHER";
  /** The cloud's raw state word (e.g. AWS `PendingImport`). */
  readonly rawState: string;
  readonly tags: Readonly<Record<string, string>>;
  /** The cloud's id of the current material (AWS CurrentKeyMaterialId), where it tells. */
  readonly currentVersionId?: string;
}

export interface PushRequest {
  /** Tagged on the cloud key (`mcko:request-id`) so an interrupted push can be found. */
  readonly requestId: string;
  readonly algorithm: KeyAlgorithm;
  /** The key's name in the cloud (AWS: alias `alias/<prefix><cloudName>`). */
  readonly cloudName: string;
  /** Description and tags naming the vault key; the connector adds `mcko:request-id`. */
  readonly description: string;
  readonly tags: Readonly<Record<string, string>>;
  /** Wraps the version's material for the cloud's public wrapping key, inside the HSM (Hsm.wrapForKeystore). */
  readonly wrap: (wrappingKeySpki: Buffer, format: ByokFormat) => Promise<ByokBlob>;
  /**
   * AES-GCM-encrypts non-secret `plaintext` under the version's own material, inside the HSM (Hsm.aesGcmEncrypt):
   * Key Protect's import token proves the importer holds the material by sealing the token's nonce with it.
   * Returns ciphertext ‖ 16-byte tag.
   */
  readonly sealWithMaterial: (iv: Buffer, plaintext: Buffer) => Promise<Buffer>;
  /**
   * The keystore's deletion window (0 = the cloud's minimum), for clouds that fix it when a key is created (Google
   * Cloud KMS `destroy_scheduled_duration`); others take it at `scheduleDeletion`.
   */
  readonly deletionWindowDays?: number;
  /** A cloud key created by an earlier, interrupted attempt of this push: continue with it. */
  readonly existingKey?: CloudKeyRef;
  /** Called as soon as the cloud key exists, before material is imported, so core can record it first. */
  readonly onKeyCreated?: (key: CloudKeyRef) => Promise<void>;
}

export interface PushResult {
  readonly key: CloudKeyRef;
  /** The alias or name the key carries. */
  readonly alias: string;
  /** The cloud's id of the imported material / version. */
  readonly versionId: string;
  readonly softwareStep: ByokSoftwareStep;
}

export interface DeletionOutcome {
  /** Plain sentences naming the cloud key, e.g. that the key itself stays and only its versions are destroyed. */
  readonly warnings: readonly string[];
}

export interface RotateRequest extends PushRequest {
  /** The cloud key carrying the current primary version. */
  readonly current: CloudKeyRef;
}

export interface KeystoreConnector {
  readonly type: KeystoreType;
  /** Undefined when the cloud can import keys of `algorithm`; otherwise why not. */
  unsupportedReason(algorithm: KeyAlgorithm): string | undefined;
  /** Calls the cloud with the credentials; resolves with what it reached (account, endpoint), never secrets. */
  testConnection(): Promise<{ readonly detail: string }>;
  /** Creates the cloud key (or continues `existingKey`), imports the material and names it. */
  push(request: PushRequest): Promise<PushResult>;
  /** Puts a new version in the cloud its own way; may return another cloud key (then the name moved to it). */
  rotate(request: RotateRequest): Promise<PushResult>;
  setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void>;
  /**
   * Deletes imported material where the cloud allows it and schedules the key's deletion. NOT_FOUND is success.
   * What the cloud cannot do as asked (Google Cloud KMS never deletes a CryptoKey, only its versions) comes back
   * as warnings, which core records on the distribution and in the audit event.
   */
  scheduleDeletion(key: CloudKeyRef, windowDays: number): Promise<DeletionOutcome | void>;
  describe(key: CloudKeyRef): Promise<CloudKeyView>;
  /** The cloud key the name (alias) points to, if any. */
  resolveName(cloudName: string): Promise<CloudKeyRef | undefined>;
  /** Cloud keys tagged with this request id (normally zero or one). */
  findByRequestId(requestId: string): Promise<CloudKeyRef[]>;
  close(): void;
}

/** Limits and retry bounds a connector applies to every cloud call. */
export interface CallPolicy {
  /** Runs `fn` under the keystore's concurrency limit. */
  readonly limit: <T>(fn: () => Promise<T>) => Promise<T>;
  /** Per-attempt timeout. */
  readonly attemptTimeoutMs: number;
  /** Overall bound of one call including retries. */
  readonly deadlineMs: number;
  /** First backoff step; doubles per retry, full jitter. */
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  /** Uniform [0,1) source for jitter (injected for determinism). */
  readonly random: () => number;
}

/** What each target folder exports to the registry. */
export interface ConnectorFactory {
  readonly type: KeystoreType;
  /** Names of the credential fields (write-only). */
  readonly credentialFields: readonly string[];
  /** Checks settings and credentials; returns every problem (field paths relative to the per-type config). */
  validate(settings: ConnectorSettings, credentials: ConnectorCredentials | undefined): FieldProblem[];
  create(settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector;
}

/** Replaces every credential value in `text` (cloud messages may echo them) with [REDACTED]. */
export function scrub(text: string, credentials: ConnectorCredentials): string {
  let out = text;
  for (const v of Object.values(credentials)) if (v.length >= 4) out = out.split(v).join("[REDACTED]");
  return out;
}
