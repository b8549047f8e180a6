/**
 * PKCS#11 token connector implementation (connector.ts loads it on first use): a keystore that is one token (an HSM partition; a second SoftHSM2 token in tests). A
 * pushed version becomes a token object (CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE, CKA_EXTRACTABLE=false) carrying
 * the configured label and usage flags, so PKCS#11 applications find it by label and use it directly.
 *
 * Transport. The target token holds a transport RSA-3072 key pair (label `transport_key_label`, private key
 * sensitive and non-extractable, created on the first push, found by label afterwards). The daemon's HSM wraps the
 * version for its public key in the RSA-AES format with OAEP SHA-1 (RSA_AES_KWP_SHA1: OAEP over a fresh AES-256 key,
 * then RFC 5649 over the material — PKCS#8 for RSA and EC keys), and the target unwraps it inside itself:
 *   1. C_UnwrapKey(CKM_RSA_PKCS_OAEP SHA-1, transport private key, RSA part) → an AES session key that may only unwrap;
 *   2. C_UnwrapKey(CKM_AES_KEY_WRAP_PAD, that key, KWP part, the object's template) → the token object;
 *   3. the session key is destroyed.
 * Why these two steps: SoftHSM2 2.6.1 has no CKM_RSA_AES_KEY_WRAP (its 70 mechanisms, STACK.md §6.3) and does
 * RSA-OAEP with SHA-1/MGF1-SHA1 only ("hashAlg must be CKM_SHA_1"); it has CKM_AES_KEY_WRAP_PAD for unwrapping
 * secret and PKCS#8 private keys. The two steps are exactly what CKM_RSA_AES_KEY_WRAP does in one, and every
 * PKCS#11 v2.40 token has both mechanisms. OAEP with SHA-1 is sound here: OAEP's security does not rest on
 * SHA-1's collision resistance, and it protects only a one-time AES key. On the daemon's pkcs11 backend
 * (SoftHSM2 too) the whole wrap runs in its HSM (softwareStep "none"), so the material's plaintext exists neither
 * in daemon memory nor outside the two tokens.
 *
 * Tags and idempotency. Each version's object carries CKA_ID = the push's request id (16 bytes of the UUID) and a
 * companion data object (CKO_DATA, CKA_APPLICATION "mcko", label `mcko:<id hex>`) holding the tags as JSON. The data
 * object is made first, then the key object: an interrupted push leaves either nothing or a tag object that
 * `findByRequestId` finds and a continued push completes — never an untracked or duplicate key object. A tag
 * object without its key object reads as PENDING_IMPORT (material absent), which core answers by pushing again.
 *
 * States. Enabled = the configured usage flags on (CKA_ENCRYPT/CKA_DECRYPT, CKA_SIGN/CKA_VERIFY, CKA_WRAP/UNWRAP);
 * disable turns them off with C_SetAttributeValue. A token that refuses the change (CKA_MODIFIABLE=false,
 * CKR_ATTRIBUTE_READ_ONLY, CKR_ACTION_PROHIBITED) gets the key object removed instead; its tag object stays, so it
 * reads PENDING_IMPORT and is pushed again on enable. Rotation makes a new object that takes the label; the old one
 * is relabelled `<label>#<version>` and kept (it still decrypts old data) until the key is destroyed. Deletion is
 * C_DestroyObject of the key and tag objects, at once: PKCS#11 has no deletion window.
 */
import { randomBytes } from "node:crypto";
import pkcs11js from "pkcs11js";
import { keyFamily, symmetricKeyBytes, type ByokFormat, type KeyAlgorithm, type KeyFamily } from "../../hsm/hsm.js";
import { EC_PARAMS_DER, asymmetricParams, rsaSpkiFromParts } from "../../hsm/kcv.js";
import { ckrCode } from "../../hsm/pkcs11/errors.js";
import { callWithRetry } from "../call-policy.js";
import {
  ConnectorError,
  type CallPolicy,
  type CloudKeyRef,
  type CloudKeyView,
  type ConnectorCredentials,
  type KeystoreConnector,
  type PushRequest,
  type PushResult,
  type RotateRequest,
} from "../connector.js";
import { objectIdFor, objectLabel, usageProblem, type Pkcs11KeyUsage, type Pkcs11TokenSettings } from "./config.js";
import { CKR_ACTION_PROHIBITED, translatePkcs11Error } from "./errors.js";
import { createPkcs11TokenApi, type Handle, type Pkcs11TokenApi, type Template, type TokenSession } from "./sdk.js";

export { objectIdFor };

const P = pkcs11js;

export const REQUEST_ID_TAG = "mcko:request-id";
/** CKA_APPLICATION of the tag (data) objects. */
export const TAG_APPLICATION = "mcko";
const TAG_LABEL_PREFIX = "mcko:";
const USAGE_TAG = "mcko:usage";
const ALGORITHM_TAG = "mcko:algorithm";

/** The BYOK format the daemon's HSM produces for the target (see the header for why SHA-1). */
export const TRANSPORT_FORMAT: ByokFormat = "RSA_AES_KWP_SHA1";
const TRANSPORT_MODULUS_BITS = 3072;
const OAEP_SHA1: pkcs11js.Mechanism = {
  mechanism: P.CKM_RSA_PKCS_OAEP,
  parameter: { type: P.CK_PARAMS_RSA_OAEP, hashAlg: P.CKM_SHA_1, mgf: P.CKG_MGF1_SHA1, source: 1 /* CKZ_DATA_SPECIFIED, empty label */ } as pkcs11js.RsaOAEP,
};
const KWP: pkcs11js.Mechanism = { mechanism: P.CKM_AES_KEY_WRAP_PAD };

/** Usage flags of each object class: all are set explicitly (SoftHSM defaults several to true). */
const SECRET_USAGE = [P.CKA_ENCRYPT, P.CKA_DECRYPT, P.CKA_SIGN, P.CKA_VERIFY, P.CKA_WRAP, P.CKA_UNWRAP, P.CKA_DERIVE] as const;
const PRIVATE_USAGE = [P.CKA_DECRYPT, P.CKA_SIGN, P.CKA_SIGN_RECOVER, P.CKA_UNWRAP, P.CKA_DERIVE] as const;
const ATTRIBUTE_NAMES = new Map<number, string>([
  [P.CKA_ENCRYPT, "CKA_ENCRYPT"],
  [P.CKA_DECRYPT, "CKA_DECRYPT"],
  [P.CKA_SIGN, "CKA_SIGN"],
  [P.CKA_VERIFY, "CKA_VERIFY"],
  [P.CKA_WRAP, "CKA_WRAP"],
  [P.CKA_UNWRAP, "CKA_UNWRAP"],
]);
const ATTRIBUTE_BY_NAME = new Map([...ATTRIBUTE_NAMES].map(([k, v]) => [v, k]));

/** Token return values meaning "this attribute may not change here". */
const REFUSED_CHANGE = new Set<number>([P.CKR_ATTRIBUTE_READ_ONLY, P.CKR_ATTRIBUTE_VALUE_INVALID, P.CKR_TEMPLATE_INCONSISTENT, CKR_ACTION_PROHIBITED]);

/** Mechanisms an application needs to use a key of each family (one of them suffices). */
const USE_MECHANISMS: Readonly<Record<KeyFamily, readonly number[]>> = {
  AES: [P.CKM_AES_CBC_PAD, P.CKM_AES_GCM, P.CKM_AES_ECB, P.CKM_AES_CMAC],
  HMAC: [P.CKM_SHA256_HMAC, P.CKM_SHA384_HMAC, P.CKM_SHA512_HMAC],
  RSA: [P.CKM_RSA_PKCS, P.CKM_RSA_PKCS_PSS, P.CKM_RSA_PKCS_OAEP],
  EC: [P.CKM_ECDSA],
};
const TRANSPORT_MECHANISMS: ReadonlyArray<[number, string]> = [
  [P.CKM_RSA_PKCS_KEY_PAIR_GEN, "CKM_RSA_PKCS_KEY_PAIR_GEN"],
  [P.CKM_RSA_PKCS_OAEP, "CKM_RSA_PKCS_OAEP"],
  [P.CKM_AES_KEY_WRAP_PAD, "CKM_AES_KEY_WRAP_PAD"],
];

/** Usage flags a key object of `family` gets for `usage`, or why the combination is impossible. */
export function usageFlags(family: KeyFamily, usage: Pkcs11KeyUsage): number[] | string {
  switch (family) {
    case "AES":
      if (usage === "SIGN_VERIFY") return [P.CKA_SIGN, P.CKA_VERIFY];
      if (usage === "WRAP_UNWRAP") return [P.CKA_WRAP, P.CKA_UNWRAP];
      return [P.CKA_ENCRYPT, P.CKA_DECRYPT];
    case "HMAC":
      return usage === "DEFAULT" || usage === "SIGN_VERIFY" ? [P.CKA_SIGN, P.CKA_VERIFY] : (usageProblem("HMAC_SHA256", usage) ?? "");
    case "RSA":
      // Private key objects: "encrypt" and "verify" are the public key's side, which applications hold themselves.
      if (usage === "ENCRYPT_DECRYPT") return [P.CKA_DECRYPT];
      if (usage === "SIGN_VERIFY") return [P.CKA_SIGN];
      if (usage === "WRAP_UNWRAP") return [P.CKA_UNWRAP];
      return [P.CKA_DECRYPT, P.CKA_SIGN];
    case "EC":
      return usage === "DEFAULT" || usage === "SIGN_VERIFY" ? [P.CKA_SIGN] : (usageProblem("EC_P256", usage) ?? "");
  }
}

/** A value that must cross `#call` untranslated (errors of the daemon's own HSM, of core's callbacks). */
class Passthrough {
  constructor(readonly error: unknown) {}
}

interface TagObject {
  readonly handle: Handle;
  /** CKA_ID (hex) of the key object it describes, from its label `mcko:<id hex>`. */
  readonly id: string;
  readonly tags: Readonly<Record<string, string>>;
}

interface Transport {
  readonly handle: Handle;
  readonly spki: Buffer;
  readonly modulusBytes: number;
}

function readBool(v: unknown): boolean {
  return Buffer.isBuffer(v) ? v.some((b) => b !== 0) : v === true;
}
function readUlong(v: unknown): number | undefined {
  if (typeof v === "number") return v;
  return Buffer.isBuffer(v) && v.length > 0 && v.length <= 8 ? v.readUIntLE(0, Math.min(v.length, 6)) : undefined;
}
function readText(v: unknown): string {
  return Buffer.isBuffer(v) ? v.toString("utf8") : typeof v === "string" ? v : "";
}
function readBuffer(v: unknown): Buffer {
  return Buffer.isBuffer(v) ? v : Buffer.alloc(0);
}

/** RFC 7512 percent-encoding. */
function uriText(s: string): string {
  return [...Buffer.from(s, "utf8")].map((b) => (/[A-Za-z0-9\-._~]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, "0")}`)).join("");
}

export class Pkcs11TokenConnector implements KeystoreConnector {
  readonly type = "PKCS11" as const;
  /** Serialises find-or-create of the transport key pair within this connector. */
  #transportLock: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly settings: Pkcs11TokenSettings,
    private readonly api: Pkcs11TokenApi,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
  ) {}

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    const flags = usageFlags(keyFamily(algorithm), this.settings.keyUsage);
    return typeof flags === "string" ? `${flags} (key_usage ${this.settings.keyUsage} of this PKCS#11 keystore); ${algorithm} cannot be pushed here` : undefined;
  }

  async testConnection(): Promise<{ detail: string }> {
    return this.#call("testConnection", async (t) => {
      const info = t.describeToken();
      const mechanisms = t.mechanisms();
      const missing = TRANSPORT_MECHANISMS.filter(([m]) => !mechanisms.has(m)).map(([, n]) => n);
      if (missing.length > 0) {
        throw new ConnectorError("REJECTED", `token "${this.settings.tokenLabel}" lacks ${missing.join(", ")}, which the transport unwrap needs`, { operation: "C_GetMechanismList", cloudCode: "MECHANISM_MISSING" });
      }
      const transport = t.find([{ type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: this.settings.transportKeyLabel }]);
      return {
        detail:
          `PKCS#11 token "${info.label}" (${info.manufacturer} ${info.model}, serial ${info.serial}) in ${this.settings.modulePath} accepted the credentials (user PIN); ` +
          (transport.length > 0 ? `transport key "${this.settings.transportKeyLabel}" present` : `transport key "${this.settings.transportKeyLabel}" will be created on the first push`),
      };
    });
  }

  async push(req: PushRequest): Promise<PushResult> {
    return this.#call("push", (t) => this.#push(t, req, req.existingKey));
  }

  async rotate(req: RotateRequest): Promise<PushResult> {
    return this.#call("rotate", async (t) => {
      // Core gives every rotation attempt a fresh request id: an object an interrupted attempt made for this very
      // version of this distribution is continued rather than made twice.
      const prior = this.#tagObjects(t).find(
        (m) => m.tags["mcko:distribution"] === req.tags["mcko:distribution"] && m.tags["mcko:version"] === req.tags["mcko:version"] && m.tags[REQUEST_ID_TAG] !== undefined && m.id !== req.current.id,
      );
      const existing = prior ? { id: prior.id, uri: "" } : undefined;
      return this.#push(t, req, existing);
    });
  }

  async setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    await this.#call(enabled ? "enable" : "disable", async (t) => {
      const id = this.#parseId(key.id);
      const object = this.#keyObject(t, id);
      if (object === undefined) {
        if (!enabled) return; // nothing left that could be used
        throw new ConnectorError("NOT_FOUND", `token "${this.settings.tokenLabel}" has no key object with CKA_ID ${key.id}`, { operation: "enable" });
      }
      const flags = this.#flagsOf(t, object, this.#tagObject(t, id));
      try {
        t.setAttributes(object, flags.map((type) => ({ type, value: enabled })));
      } catch (e) {
        const code = ckrCode(e);
        if (enabled || code === undefined || !REFUSED_CHANGE.has(code)) throw e;
        // The token will not turn usage off: remove the key object. Its tag object stays, so the distribution reads
        // PENDING_IMPORT and the material is pushed again from the vault on enable.
        t.destroy(object);
      }
    });
  }

  async scheduleDeletion(key: CloudKeyRef, _windowDays: number): Promise<void> {
    await this.#call("destroy", async (t) => {
      const id = this.#parseId(key.id);
      for (const h of this.#keyObjects(t, id)) t.destroy(h);
      const tag = this.#tagObject(t, id);
      if (tag) t.destroy(tag.handle);
    });
  }

  async describe(key: CloudKeyRef): Promise<CloudKeyView> {
    return this.#call("describe", async (t) => {
      const id = this.#parseId(key.id);
      const object = this.#keyObject(t, id);
      const tag = this.#tagObject(t, id);
      if (object === undefined && tag === undefined) return { exists: false, state: "ABSENT", rawState: "NO_OBJECT", tags: {} };
      const tags = { ...(tag?.tags ?? {}) };
      if (object === undefined) return { exists: true, state: "PENDING_IMPORT", rawState: "NO_KEY_OBJECT", tags };
      const flags = this.#flagsOf(t, object, tag);
      const values = t.getAttributes(object, flags).map((a) => readBool(a.value));
      const on = flags.filter((_f, i) => values[i]);
      // Any usage still on counts as enabled, so a vault that wants the key disabled turns the rest off as well.
      const state = on.length === 0 ? "DISABLED" : "ENABLED";
      const rawState = on.length === flags.length ? "ENABLED" : on.length === 0 ? "DISABLED" : `PARTIALLY_ENABLED(${on.map((f) => ATTRIBUTE_NAMES.get(f) ?? f).join(",")})`;
      return { exists: true, state, rawState, tags, currentVersionId: key.id };
    });
  }

  async resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    return this.#call("resolveName", async (t) => {
      const label = objectLabel(this.settings, cloudName);
      const candidates = this.#keysByLabel(t, label).map((h) => {
        const id = readBuffer(t.getAttributes(h, [P.CKA_ID])[0]?.value);
        const version = Number(this.#tagObject(t, id)?.tags["mcko:version"] ?? -1);
        return { id, version, family: this.#familyOf(t, h) };
      });
      // During a rotation two objects may carry the label for a moment: the newer version is the one it moves to.
      candidates.sort((a, b) => b.version - a.version || a.id.compare(b.id));
      const best = candidates[0];
      return best && best.id.length > 0 && best.family ? this.#ref(best.id, label, best.family) : undefined;
    });
  }

  async findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    return this.#call("findByRequestId", async (t) => {
      const id = objectIdFor(requestId);
      const object = this.#keyObject(t, id);
      const tag = this.#tagObject(t, id);
      if (object === undefined && tag === undefined) return [];
      const label = object !== undefined ? readText(t.getAttributes(object, [P.CKA_LABEL])[0]?.value) : (tag?.tags["mcko:label"] ?? "");
      const family = object !== undefined ? this.#familyOf(t, object) : tag?.tags[ALGORITHM_TAG] ? keyFamily(tag.tags[ALGORITHM_TAG] as KeyAlgorithm) : undefined;
      return [this.#ref(id, label, family ?? "AES")];
    });
  }

  close(): void {
    this.api.close();
  }

  // ---- internals ---------------------------------------------------------------------------------------------

  async #push(t: TokenSession, req: PushRequest, existing: CloudKeyRef | undefined): Promise<PushResult> {
    const family = keyFamily(req.algorithm);
    const flags = usageFlags(family, this.settings.keyUsage);
    if (typeof flags === "string") throw new ConnectorError("UNSUPPORTED_ALGORITHM", this.unsupportedReason(req.algorithm)!);
    const mechanisms = t.mechanisms();
    if (!USE_MECHANISMS[family].some((m) => mechanisms.has(m))) {
      throw new ConnectorError("UNSUPPORTED_ALGORITHM", `token "${this.settings.tokenLabel}" has no mechanism to use ${req.algorithm} keys`, { operation: "C_GetMechanismList" });
    }
    const label = objectLabel(this.settings, req.cloudName);
    const distribution = req.tags["mcko:distribution"] ?? "";
    const id = existing ? this.#parseId(existing.id) : objectIdFor(req.requestId);
    if (!existing) {
      for (const h of this.#keysByLabel(t, label)) {
        const other = this.#tagObject(t, readBuffer(t.getAttributes(h, [P.CKA_ID])[0]?.value));
        if (other?.tags["mcko:distribution"] !== distribution) {
          throw new ConnectorError("REJECTED", `token "${this.settings.tokenLabel}" already holds a key object labelled ${JSON.stringify(label)} that MCKO did not put there`, { operation: "push", cloudCode: "LABEL_TAKEN" });
        }
      }
    }
    const ref = this.#ref(id, label, family);
    let object = this.#keyObject(t, id);
    let tag = this.#tagObject(t, id);
    if (tag && object === undefined && tag.tags["mcko:version"] !== req.tags["mcko:version"]) {
      // The tag object of a version whose material went away: the material about to arrive is another version.
      t.destroy(tag.handle);
      tag = undefined;
    }
    if (tag === undefined) {
      const tags: Record<string, string> = {
        ...req.tags,
        [REQUEST_ID_TAG]: req.requestId,
        [ALGORITHM_TAG]: req.algorithm,
        [USAGE_TAG]: flags.map((f) => ATTRIBUTE_NAMES.get(f)!).join(","),
        "mcko:label": label,
        "mcko:description": req.description.slice(0, 256),
      };
      t.createObject([
        { type: P.CKA_CLASS, value: P.CKO_DATA },
        { type: P.CKA_TOKEN, value: true },
        { type: P.CKA_PRIVATE, value: true },
        { type: P.CKA_APPLICATION, value: TAG_APPLICATION },
        { type: P.CKA_LABEL, value: `${TAG_LABEL_PREFIX}${id.toString("hex")}` },
        { type: P.CKA_VALUE, value: Buffer.from(JSON.stringify(tags), "utf8") },
      ]);
    }
    await this.#outside(() => req.onKeyCreated?.(ref));
    let softwareStep: PushResult["softwareStep"] = "none";
    if (object === undefined) {
      const transport = await this.#transport(t);
      const wrapped = await this.#outside(() => req.wrap(transport.spki, TRANSPORT_FORMAT));
      try {
        object = await this.#unwrapInto(t, transport, wrapped.blob, req.algorithm, this.#template(req.algorithm, flags, label, id));
      } finally {
        wrapped.blob.fill(0);
      }
      softwareStep = wrapped.softwareStep;
    }
    this.#claimLabel(t, label, id, object, distribution);
    return { key: ref, alias: label, versionId: id.toString("hex"), softwareStep };
  }

  /** The two-step RSA-AES unwrap inside the target token (header), checking the result is the expected key. */
  async #unwrapInto(t: TokenSession, transport: Transport, blob: Buffer, algorithm: KeyAlgorithm, template: Template): Promise<Handle> {
    const rsaPart = blob.subarray(0, transport.modulusBytes);
    const kwpPart = blob.subarray(transport.modulusBytes);
    const keyBytes = symmetricKeyBytes(algorithm);
    if (kwpPart.length < 16 || (keyBytes !== undefined && kwpPart.length !== keyBytes + 8)) {
      throw new ConnectorError("REJECTED", `the wrapped ${algorithm} material has the wrong length for the transport key`, { operation: "C_UnwrapKey" });
    }
    const ephemeral = await t.unwrapKey(OAEP_SHA1, transport.handle, rsaPart, [
      { type: P.CKA_CLASS, value: P.CKO_SECRET_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_AES },
      { type: P.CKA_TOKEN, value: false },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_UNWRAP, value: true },
      { type: P.CKA_WRAP, value: false },
      { type: P.CKA_ENCRYPT, value: false },
      { type: P.CKA_DECRYPT, value: false },
    ]);
    let object: Handle;
    try {
      // On this thread, like every other call that writes token objects (C_CreateObject, C_SetAttributeValue,
      // C_DestroyObject): SoftHSM 2.6's object store races when token objects are created from two threads at once
      // (softhsm/SoftHSMv2#573). With this unwrap in libuv's pool it failed with CKR_GENERAL_ERROR 13 times in 10
      // runs of the connector contract's crash test, on this thread none in 28. It is one AES-KWP unwrap of a few
      // dozen bytes plus the object's write; the RSA step above, a private-key operation, stays in the pool.
      object = t.unwrapKeySync(KWP, ephemeral, kwpPart, template);
    } finally {
      try {
        t.destroy(ephemeral);
      } catch {
        // a session object dies with its session anyway
      }
    }
    const params = asymmetricParams(algorithm);
    let ok = true;
    if (params?.type === "rsa") {
      const modulus = readBuffer(t.getAttributes(object, [P.CKA_MODULUS])[0]?.value);
      let i = 0;
      while (i < modulus.length && modulus[i] === 0) i++;
      ok = (modulus.length - i) * 8 === params.modulusBits;
    } else if (params?.type === "ec") {
      ok = readBuffer(t.getAttributes(object, [P.CKA_EC_PARAMS])[0]?.value).equals(EC_PARAMS_DER[params.namedCurve]);
    }
    if (!ok) {
      t.destroy(object);
      throw new ConnectorError("REJECTED", `the material unwrapped in token "${this.settings.tokenLabel}" is not an ${algorithm} key`, { operation: "C_UnwrapKey" });
    }
    return object;
  }

  #template(algorithm: KeyAlgorithm, flags: readonly number[], label: string, id: Buffer): Template {
    const family = keyFamily(algorithm);
    const secret = family === "AES" || family === "HMAC";
    const keyType = family === "AES" ? P.CKK_AES : family === "HMAC" ? P.CKK_GENERIC_SECRET : family === "RSA" ? P.CKK_RSA : P.CKK_EC;
    return [
      { type: P.CKA_CLASS, value: secret ? P.CKO_SECRET_KEY : P.CKO_PRIVATE_KEY },
      { type: P.CKA_KEY_TYPE, value: keyType },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_PRIVATE, value: true },
      { type: P.CKA_SENSITIVE, value: true },
      { type: P.CKA_EXTRACTABLE, value: false },
      { type: P.CKA_LABEL, value: label },
      { type: P.CKA_ID, value: id },
      ...(secret ? SECRET_USAGE : PRIVATE_USAGE).map((type) => ({ type, value: flags.includes(type) })),
    ];
  }

  /** Gives `label` to this version's object; other objects of the same distribution carrying it become `label#<version>`. */
  #claimLabel(t: TokenSession, label: string, id: Buffer, object: Handle, distribution: string): void {
    if (readText(t.getAttributes(object, [P.CKA_LABEL])[0]?.value) !== label) t.setAttributes(object, [{ type: P.CKA_LABEL, value: label }]);
    for (const h of this.#keysByLabel(t, label)) {
      const otherId = readBuffer(t.getAttributes(h, [P.CKA_ID])[0]?.value);
      if (otherId.equals(id)) continue;
      const other = this.#tagObject(t, otherId);
      if (other?.tags["mcko:distribution"] !== distribution) continue; // not ours to move
      t.setAttributes(h, [{ type: P.CKA_LABEL, value: `${label}#${other.tags["mcko:version"] ?? otherId.toString("hex").slice(0, 8)}` }]);
    }
  }

  /** Finds (or creates, once) the transport key pair; refuses a key with the label that is not fit for it. */
  async #transport(t: TokenSession): Promise<Transport> {
    const run = this.#transportLock.then(() => this.#findOrCreateTransport(t));
    this.#transportLock = run.catch(() => undefined);
    return run;
  }

  async #findOrCreateTransport(t: TokenSession): Promise<Transport> {
    const label = this.settings.transportKeyLabel;
    const search: Template = [
      { type: P.CKA_CLASS, value: P.CKO_PRIVATE_KEY },
      { type: P.CKA_KEY_TYPE, value: P.CKK_RSA },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_LABEL, value: label },
    ];
    let handles = t.find(search);
    if (handles.length === 0) {
      const id = randomBytes(16);
      await t.generateKeyPair(
        { mechanism: P.CKM_RSA_PKCS_KEY_PAIR_GEN },
        [
          { type: P.CKA_TOKEN, value: true },
          { type: P.CKA_PRIVATE, value: false },
          { type: P.CKA_LABEL, value: label },
          { type: P.CKA_ID, value: id },
          { type: P.CKA_MODULUS_BITS, value: TRANSPORT_MODULUS_BITS },
          { type: P.CKA_PUBLIC_EXPONENT, value: Buffer.from([1, 0, 1]) },
          { type: P.CKA_WRAP, value: true },
          { type: P.CKA_ENCRYPT, value: true },
          { type: P.CKA_VERIFY, value: false },
        ],
        [
          { type: P.CKA_TOKEN, value: true },
          { type: P.CKA_PRIVATE, value: true },
          { type: P.CKA_LABEL, value: label },
          { type: P.CKA_ID, value: id },
          { type: P.CKA_SENSITIVE, value: true },
          { type: P.CKA_EXTRACTABLE, value: false },
          { type: P.CKA_UNWRAP, value: true },
          { type: P.CKA_DECRYPT, value: false },
          { type: P.CKA_SIGN, value: false },
          { type: P.CKA_SIGN_RECOVER, value: false },
          { type: P.CKA_DERIVE, value: false },
        ],
      );
      handles = t.find(search);
    }
    // Two daemons racing on an empty token may both make one: every one is fit, the lowest CKA_ID is used.
    const candidates = handles.map((handle) => {
      const [id, extractable, sensitive, unwrap, modulus, exponent] = t
        .getAttributes(handle, [P.CKA_ID, P.CKA_EXTRACTABLE, P.CKA_SENSITIVE, P.CKA_UNWRAP, P.CKA_MODULUS, P.CKA_PUBLIC_EXPONENT])
        .map((a) => a.value);
      return { handle, id: readBuffer(id), fit: !readBool(extractable) && readBool(sensitive) && readBool(unwrap), modulus: readBuffer(modulus), exponent: readBuffer(exponent) };
    });
    candidates.sort((a, b) => a.id.compare(b.id));
    const best = candidates.find((c) => c.fit);
    if (best === undefined) {
      throw new ConnectorError("INVALID_CONFIG", `the RSA key labelled ${JSON.stringify(label)} in token "${this.settings.tokenLabel}" cannot be the transport key: it must be sensitive, non-extractable and allowed to unwrap`, {
        field: "transport_key_label",
        operation: "transport key",
      });
    }
    let i = 0;
    while (i < best.modulus.length && best.modulus[i] === 0) i++;
    const modulus = best.modulus.subarray(i);
    return { handle: best.handle, spki: rsaSpkiFromParts(modulus, best.exponent), modulusBytes: modulus.length };
  }

  #tagObjects(t: TokenSession, id?: Buffer): TagObject[] {
    const handles = t.find([
      { type: P.CKA_CLASS, value: P.CKO_DATA },
      { type: P.CKA_TOKEN, value: true },
      { type: P.CKA_APPLICATION, value: TAG_APPLICATION },
      ...(id ? [{ type: P.CKA_LABEL, value: `${TAG_LABEL_PREFIX}${id.toString("hex")}` }] : []),
    ]);
    const out: TagObject[] = [];
    for (const handle of handles) {
      const [label, value] = t.getAttributes(handle, [P.CKA_LABEL, P.CKA_VALUE]).map((a) => a.value);
      let tags: Record<string, string> = {};
      try {
        const parsed: unknown = JSON.parse(readText(value));
        if (typeof parsed === "object" && parsed !== null) tags = Object.fromEntries(Object.entries(parsed).filter(([, v]) => typeof v === "string")) as Record<string, string>;
      } catch {
        // not one of ours after all; ignore its content
      }
      out.push({ handle, id: readText(label).slice(TAG_LABEL_PREFIX.length), tags });
    }
    return out;
  }

  #tagObject(t: TokenSession, id: Buffer): TagObject | undefined {
    return id.length === 0 ? undefined : this.#tagObjects(t, id)[0];
  }

  /** Secret and private key objects with this CKA_ID (normally one). */
  #keyObjects(t: TokenSession, id: Buffer): Handle[] {
    return [P.CKO_SECRET_KEY, P.CKO_PRIVATE_KEY].flatMap((cls) => t.find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_ID, value: id }]));
  }

  #keyObject(t: TokenSession, id: Buffer): Handle | undefined {
    return this.#keyObjects(t, id)[0];
  }

  #keysByLabel(t: TokenSession, label: string): Handle[] {
    return [P.CKO_SECRET_KEY, P.CKO_PRIVATE_KEY].flatMap((cls) => t.find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_TOKEN, value: true }, { type: P.CKA_LABEL, value: label }]));
  }

  #familyOf(t: TokenSession, handle: Handle): KeyFamily | undefined {
    const keyType = readUlong(t.getAttributes(handle, [P.CKA_KEY_TYPE])[0]?.value);
    return keyType === P.CKK_AES ? "AES" : keyType === P.CKK_GENERIC_SECRET ? "HMAC" : keyType === P.CKK_RSA ? "RSA" : keyType === P.CKK_EC ? "EC" : undefined;
  }

  /** The usage flags that make up "enabled" for this object: as recorded at push, else the settings' choice. */
  #flagsOf(t: TokenSession, handle: Handle, tag: TagObject | undefined): number[] {
    const recorded = tag?.tags[USAGE_TAG]?.split(",").map((n) => ATTRIBUTE_BY_NAME.get(n)).filter((f): f is number => f !== undefined);
    if (recorded && recorded.length > 0) return recorded;
    const family = this.#familyOf(t, handle) ?? "AES";
    const flags = usageFlags(family, this.settings.keyUsage);
    return typeof flags === "string" ? (usageFlags(family, "DEFAULT") as number[]) : flags;
  }

  #ref(id: Buffer, label: string, family: KeyFamily): CloudKeyRef {
    const type = family === "AES" || family === "HMAC" ? "secret-key" : "private-key";
    const pctId = [...id].map((b) => `%${b.toString(16).padStart(2, "0")}`).join("");
    return { id: id.toString("hex"), uri: `pkcs11:token=${uriText(this.settings.tokenLabel)};object=${uriText(label)};id=${pctId};type=${type}` };
  }

  #parseId(hex: string): Buffer {
    if (!/^(?:[0-9a-f]{2}){1,64}$/.test(hex)) throw new ConnectorError("NOT_FOUND", `${JSON.stringify(hex.slice(0, 80))} is not a PKCS#11 object id of this keystore`, { operation: "parse id" });
    return Buffer.from(hex, "hex");
  }

  async #outside<T>(fn: () => Promise<T> | T): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      throw new Passthrough(e);
    }
  }

  /**
   * One attempt = one borrowed session for the whole operation; retried (on a fresh connection) only when the token
   * or session went away. PKCS#11 calls cannot be aborted, so the policy's per-attempt timeout does not cut a call
   * short here: a hung module holds its session until it returns.
   */
  async #call<T>(operation: string, fn: (t: TokenSession) => Promise<T>): Promise<T> {
    try {
      return await callWithRetry(this.policy, operation, async () => {
        try {
          return await this.api.withSession(fn);
        } catch (e) {
          if (e instanceof Passthrough) throw e;
          throw translatePkcs11Error(e, operation, this.settings.tokenLabel, this.credentials);
        }
      });
    } catch (e) {
      if (e instanceof Passthrough) throw e.error;
      throw e;
    }
  }
}

/** Builds the implementation for connector.ts, which loads this module (and pkcs11js with it) on first use. */
export function createTokenConnector(settings: Pkcs11TokenSettings, policy: CallPolicy, credentials: ConnectorCredentials): KeystoreConnector {
  const api = createPkcs11TokenApi({ modulePath: settings.modulePath, tokenLabel: settings.tokenLabel, pin: credentials.pin ?? "" });
  return new Pkcs11TokenConnector(settings, api, policy, credentials);
}
