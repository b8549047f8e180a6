/**
 * IBM Key Protect connector (BYOK.md §5) over the documented REST API. Only AES root keys can be imported: a push
 * takes the instance's import token (RSA-4096 public key + nonce), has the HSM RSA-OAEP-SHA-256-encrypt the material
 * for it (RSA_OAEP_SHA256: on SoftHSM2 only with the keystore's allow_software_wrap, audited) and AES-GCM-encrypt the
 * token's nonce under the material itself (Hsm.aesGcmEncrypt), and creates the root key with `payload`,
 * `encryptedNonce`, `iv` and `encryptionAlgorithm` in one call. Rotation posts new material the same way to
 * `actions/rotate` (a new key version); enable/disable are the key actions (state 1 ↔ 2); deletion is `DELETE`
 * (state 5, restorable for 30 days, Key Protect's own window).
 *
 * Key Protect keys carry no tags: MCKO's tags (`mcko:key`, `mcko:version`, `mcko:request-id`) are written into the
 * key's description as `name=value` words and read back from it, and the cloud name is the key's name and its alias.
 * Key states: 0 Pre-activation, 1 Active (ENABLED), 2 Suspended (DISABLED), 3 Deactivated (expired; OTHER),
 * 5 Destroyed (PENDING_DELETION).
 */
import { createPublicKey, randomBytes } from "node:crypto";
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
import { compileKeyProtectSettings, KEY_PROTECT_CREDENTIAL_FIELDS, validateKeyProtectSettings, type KeyProtectSettings } from "./config.js";
import { translateKeyProtectError } from "./errors.js";
import { createKeyProtectApi, type KeyProtectApi, type KpImportFields, type KpKey } from "./sdk.js";

const REQUEST_ID_TAG = "mcko:request-id";
/** Tags MCKO writes into a key's description (Key Protect descriptions are at most 240 characters). */
const DESCRIPTION_TAGS = ["mcko:key", "mcko:version", REQUEST_ID_TAG] as const;
const LIVE_STATES = [0, 1, 2, 3] as const;
const PAGE = 200;
/** Seconds an import token lives; it is reused for every import until a minute before that. */
const TOKEN_LIFETIME_S = 600;
/** Import failures that mean the token in hand is no longer the instance's (expired, or replaced by another client). */
const STALE_TOKEN_CODES = new Set(["IMPORT_TOKEN_EXPIRED_ERR", "IMPORT_TOKEN_NOT_FOUND_ERR", "INCORRECT_NONCE_ERR", "INCORRECT_NONCE_IV_ERR", "INVALID_FIELD_ERR"]);
const STATE_NAMES: Readonly<Record<number, string>> = { 0: "Pre-activation", 1: "Active", 2: "Suspended", 3: "Deactivated", 5: "Destroyed" };
const ALIAS = /^[a-zA-Z0-9_-]{2,90}$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

interface ImportToken {
  readonly spki: Buffer;
  readonly nonce: Buffer;
  readonly refreshAt: number;
}

export class KeyProtectConnector implements KeystoreConnector {
  readonly type = "IBM_KEY_PROTECT" as const;
  #token: Promise<ImportToken> | undefined;

  constructor(
    private readonly settings: KeyProtectSettings,
    private readonly api: KeyProtectApi,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
  ) {}

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    if (algorithm === "AES_128" || algorithm === "AES_192" || algorithm === "AES_256") return undefined;
    return `IBM Key Protect imports only AES root keys (128, 192 or 256 bits), not ${algorithm}`;
  }

  async testConnection(): Promise<{ detail: string }> {
    await this.#call("ListKeys", (o) => this.api.listKeys({ offset: 0, limit: 1, states: LIVE_STATES }, o));
    return { detail: `IBM Key Protect instance ${this.settings.instanceId} at ${this.settings.endpoint} answered and accepted the credentials` };
  }

  async push(req: PushRequest): Promise<PushResult> {
    this.#checkAlgorithm(req.algorithm);
    const alias = kpAlias(req.cloudName);
    if (req.existingKey) {
      // Key Protect creates and imports in one call: a key that exists holds its material already.
      const meta = await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(req.existingKey!.id, o));
      if (meta.state === 5) throw new ConnectorError("REJECTED", `IBM Key Protect key ${meta.id} is destroyed; it cannot take the push`, { cloudCode: "KEY_DELETED_ERR", operation: "CreateKey" });
      if (!(meta.aliases ?? []).includes(alias)) await this.#call("CreateKeyAlias", (o) => this.api.createAlias(meta.id, alias, o));
      return { key: this.#ref(meta), alias, versionId: meta.keyVersion?.id ?? "", softwareStep: "none" };
    }
    const holder = await this.resolveName(req.cloudName);
    if (holder) {
      const meta = await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(holder.id, o));
      if (tagsOf(meta)[REQUEST_ID_TAG] === req.requestId) {
        await req.onKeyCreated?.(holder);
        return { key: holder, alias, versionId: meta.keyVersion?.id ?? "", softwareStep: "none" };
      }
      throw new ConnectorError("REJECTED", `IBM Key Protect already has a key with alias ${alias} (${holder.id}) that this push did not create`, { cloudCode: "ALIAS_IN_USE", operation: "CreateKey" });
    }
    const description = describeTags({ ...req.tags, [REQUEST_ID_TAG]: req.requestId });
    const { key, versionId, softwareStep } = await this.#import("CreateKey", req, async (fields, attempt, o) => {
      // A create whose answer was lost may have made the key: look for it by its request id before creating again.
      if (attempt > 0) {
        const found = await this.#findOnce(req.requestId, o);
        if (found) return found;
      }
      return this.api.createKey({ name: alias, description, aliases: [alias], ...fields }, o);
    });
    const ref = this.#ref(key);
    await req.onKeyCreated?.(ref);
    return { key: ref, alias, versionId: versionId ?? key.keyVersion?.id ?? "", softwareStep };
  }

  async rotate(req: RotateRequest): Promise<PushResult> {
    this.#checkAlgorithm(req.algorithm);
    const id = req.current.id;
    const before = new Set((await this.#call("ListKeyVersions", (o) => this.api.listVersions(id, o))).map((v) => v.id));
    // Key Protect rotates only Active (or Deactivated) keys: a suspended key is enabled for the rotation and
    // suspended again after it.
    const suspended = (await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(id, o))).state === 2;
    if (suspended) await this.#call("EnableKey", (o) => this.api.enableKey(id, o));
    try {
      return await this.#rotate(req, id, before);
    } finally {
      if (suspended) await this.#call("DisableKey", (o) => this.api.disableKey(id, o));
    }
  }

  async #rotate(req: RotateRequest, id: string, before: ReadonlySet<string>): Promise<PushResult> {
    const { softwareStep } = await this.#import("RotateKey", req, async (fields, attempt, o) => {
      // A rotation whose answer was lost made a version already: do not rotate twice.
      if (attempt > 0 && (await this.api.listVersions(id, o)).some((v) => !before.has(v.id))) return undefined;
      await this.api.rotateKey(id, fields, o);
      return undefined;
    });
    const versions = await this.#call("ListKeyVersions", (o) => this.api.listVersions(id, o));
    const newest = versions.find((v) => !before.has(v.id)) ?? versions[0];
    return { key: req.current, alias: kpAlias(req.cloudName), versionId: newest?.id ?? "", softwareStep };
  }

  async setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    const meta = await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(key.id, o));
    // Enable only moves Suspended (2) → Active (1), disable only Active → Suspended; anything else stays as it is.
    if (enabled && meta.state === 2) await this.#call("EnableKey", (o) => this.api.enableKey(key.id, o));
    else if (!enabled && meta.state === 1) await this.#call("DisableKey", (o) => this.api.disableKey(key.id, o));
  }

  async scheduleDeletion(key: CloudKeyRef, _windowDays: number): Promise<void> {
    // Key Protect's window is fixed: a deleted key (state 5) can be restored for 30 days and is purged after 90.
    try {
      const meta = await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(key.id, o));
      if (meta.state === 5) return;
      await this.#call("DeleteKey", (o) => this.api.deleteKey(key.id, o));
    } catch (e) {
      if (!(e instanceof ConnectorError && e.kind === "NOT_FOUND")) throw e;
    }
  }

  async describe(key: CloudKeyRef): Promise<CloudKeyView> {
    let meta: KpKey;
    try {
      meta = await this.#call("GetKeyMetadata", (o) => this.api.getKeyMetadata(key.id, o));
    } catch (e) {
      if (e instanceof ConnectorError && e.kind === "NOT_FOUND") return { exists: false, state: "ABSENT", rawState: "NotFound", tags: {} };
      throw e;
    }
    const state: CloudKeyView["state"] = meta.state === 1 ? "ENABLED" : meta.state === 2 ? "DISABLED" : meta.state === 5 ? "PENDING_DELETION" : "OTHER";
    return {
      exists: true,
      state,
      rawState: STATE_NAMES[meta.state] ?? String(meta.state),
      tags: tagsOf(meta),
      ...(meta.keyVersion?.id ? { currentVersionId: meta.keyVersion.id } : {}),
    };
  }

  async resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    const alias = kpAlias(cloudName);
    const key = await this.#scan((k) => (k.aliases ?? []).includes(alias));
    return key ? this.#ref(key) : undefined;
  }

  async findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    const out: CloudKeyRef[] = [];
    await this.#scan((k) => {
      if (tagsOf(k)[REQUEST_ID_TAG] === requestId) out.push(this.#ref(k));
      return false;
    });
    return out;
  }

  close(): void {
    // node:http keeps no per-connector state beyond the shared agent; nothing to release.
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  #checkAlgorithm(algorithm: KeyAlgorithm): void {
    const why = this.unsupportedReason(algorithm);
    if (why) throw new ConnectorError("UNSUPPORTED_ALGORITHM", why);
  }

  #ref(k: KpKey): CloudKeyRef {
    return { id: k.id, uri: k.crn ?? k.id };
  }

  /** Pages through the live keys (states 0-3) until `match` says stop; returns the key it stopped at. */
  async #scan(match: (k: KpKey) => boolean): Promise<KpKey | undefined> {
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.#call("ListKeys", (o) => this.api.listKeys({ offset, limit: PAGE, states: LIVE_STATES }, o));
      const hit = page.find(match);
      if (hit) return hit;
      if (page.length < PAGE) return undefined;
    }
  }

  /** One pass over the live keys inside a single attempt (between create attempts). */
  async #findOnce(requestId: string, o: { abortSignal: AbortSignal }): Promise<KpKey | undefined> {
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.api.listKeys({ offset, limit: PAGE, states: LIVE_STATES }, o);
      const hit = page.find((k) => tagsOf(k)[REQUEST_ID_TAG] === requestId);
      if (hit || page.length < PAGE) return hit;
    }
  }

  /** The instance's import token: one per connector, shared by concurrent imports, renewed a minute before expiry. */
  async #importToken(): Promise<ImportToken> {
    const held = this.#token;
    if (held) {
      try {
        const t = await held;
        if (Date.now() < t.refreshAt) return t;
      } catch {
        // fetched again below
      }
      if (this.#token === held) this.#token = undefined;
    }
    const p = (this.#token ??= this.#fetchImportToken());
    try {
      return await p;
    } catch (e) {
      if (this.#token === p) this.#token = undefined;
      throw e;
    }
  }

  async #fetchImportToken(): Promise<ImportToken> {
    await this.#call("CreateImportToken", (o) => this.api.createImportToken(TOKEN_LIFETIME_S, 1, o));
    const got = await this.#call("GetImportToken", (o) => this.api.getImportToken(o));
    let spki: Buffer;
    try {
      spki = createPublicKey(Buffer.from(got.payload, "base64").toString("utf8")).export({ type: "spki", format: "der" });
    } catch {
      throw new ConnectorError("REJECTED", "IBM Key Protect's import token carries no usable public key", { operation: "GetImportToken" });
    }
    const expires = Date.parse(got.expirationDate);
    return { spki, nonce: Buffer.from(got.nonce, "base64"), refreshAt: (Number.isFinite(expires) ? expires : Date.now() + TOKEN_LIFETIME_S * 1000) - 60_000 };
  }

  /**
   * Wraps the version for the import token and runs `send` (create or rotate) under the call policy. A token that
   * went stale in between (expired, or replaced by another client of the instance) is fetched again, at most twice.
   */
  async #import<T>(
    operation: "CreateKey" | "RotateKey",
    req: PushRequest,
    send: (fields: KpImportFields, attempt: number, o: { abortSignal: AbortSignal }) => Promise<T>,
  ): Promise<{ key: T; versionId: string | undefined; softwareStep: PushResult["softwareStep"] }> {
    for (let round = 0; ; round++) {
      const token = await this.#importToken();
      const wrapped = await req.wrap(token.spki, "RSA_OAEP_SHA256");
      const iv = randomBytes(12);
      const sealed = await req.sealWithMaterial(iv, token.nonce);
      const fields: KpImportFields = { payload: wrapped.blob.toString("base64"), encryptedNonce: sealed.toString("base64"), iv: iv.toString("base64"), encryptionAlgorithm: "RSAES_OAEP_SHA_256" };
      wrapped.blob.fill(0);
      let attempt = 0;
      try {
        const key = await this.#call(operation, (o) => send(fields, attempt++, o));
        return { key, versionId: undefined, softwareStep: wrapped.softwareStep };
      } catch (e) {
        const code = e instanceof ConnectorError && e.kind === "REJECTED" ? (e.details.cloudCode ?? "") : "";
        // INVALID_FIELD_ERR on `payload`: the payload did not decrypt under the instance's token (a newer one).
        const stale = STALE_TOKEN_CODES.has(code) && (code !== "INVALID_FIELD_ERR" || /payload/i.test((e as Error).message));
        if (!stale || round >= 2) throw e;
        this.#token = undefined;
      }
    }
  }

  #call<T>(operation: string, fn: (o: { abortSignal: AbortSignal }) => Promise<T>): Promise<T> {
    return callWithRetry(this.policy, operation, async (signal) => {
      try {
        return await fn({ abortSignal: signal });
      } catch (e) {
        const token = this.api.currentToken();
        throw translateKeyProtectError(e, operation, this.credentials, token ? [token] : []);
      }
    });
  }
}

/** The alias (and name) a cloud name becomes: Key Protect aliases are 2-90 letters, digits, `-` and `_`, not a UUID. */
export function kpAlias(cloudName: string): string {
  if (!ALIAS.test(cloudName) || UUID.test(cloudName)) {
    throw new ConnectorError("REJECTED", `the cloud name ${JSON.stringify(cloudName.slice(0, 100))} cannot be a Key Protect alias: use 2-90 letters, digits, - and _ (not a UUID)`, { cloudCode: "INVALID_ALIAS", operation: "CreateKey" });
  }
  return cloudName;
}

/** MCKO's tags as the description words `mcko:key=… mcko:version=… mcko:request-id=…` (≤ 240 characters). */
export function describeTags(tags: Readonly<Record<string, string>>): string {
  return DESCRIPTION_TAGS.filter((t) => tags[t] !== undefined)
    .map((t) => `${t}=${tags[t]!.replace(/\s/g, "_")}`)
    .join(" ")
    .slice(0, 240);
}

/** Tags read back from a key's description. */
export function tagsOf(k: Pick<KpKey, "description">): Record<string, string> {
  const out: Record<string, string> = {};
  for (const word of (k.description ?? "").split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0 && word.startsWith("mcko:")) out[word.slice(0, eq)] = word.slice(eq + 1);
  }
  return out;
}

export const ibmKeyProtectFactory: ConnectorFactory = {
  type: "IBM_KEY_PROTECT",
  credentialFields: KEY_PROTECT_CREDENTIAL_FIELDS,
  validate: (settings: ConnectorSettings, credentials: ConnectorCredentials | undefined) => validateKeyProtectSettings(settings, credentials),
  create(settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector {
    const s = compileKeyProtectSettings(settings);
    const api = createKeyProtectApi(s, {
      ...(credentials.api_key ? { apiKey: credentials.api_key } : {}),
      ...(credentials.iam_token ? { iamToken: credentials.iam_token } : {}),
    });
    return new KeyProtectConnector(s, api, policy, credentials);
  },
};
