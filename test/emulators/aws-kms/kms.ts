/**
 * The AWS KMS emulator's state and operations (BYOK.md §2): keys with their key materials, aliases, tags, import
 * parameters; every operation takes the parsed JSON request and returns the JSON response, or throws KmsError.
 * Transport, auth and faults live in server.ts.
 */
import {
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  randomBytes,
  randomUUID,
  timingSafeEqual,
  type KeyObject,
} from "node:crypto";
import { promisify } from "node:util";
import { kcvAes, kcvHmac, kcvPublicKey, type HmacHash } from "../common/kcv.js";
import { oaepDecrypt, oaepDecryptOffThread, oaepEncrypt, rsaAesKeyUnwrapOffThread, UnwrapError, type OaepHash } from "../common/key-wrap.js";
import {
  derToP1363,
  p1363ToDer,
  signDigestEcdsa,
  signDigestRsaPkcs1,
  signDigestRsaPss,
  verifyDigestEcdsa,
  verifyDigestRsaPkcs1,
  verifyDigestRsaPss,
  type DigestHash,
} from "../common/prehash-sign.js";
import { BoundedLog, type CapturedImport, type EmulatorClock } from "../common/records.js";
import { decryptBlob, encryptBlob, parseCiphertextBlob } from "./ciphertext.js";
import { badEnum, KmsError, notNull } from "./errors.js";

const generateKeyPairAsync = promisify(generateKeyPair);

export const KEY_SPECS = [
  "SYMMETRIC_DEFAULT",
  "RSA_2048",
  "RSA_3072",
  "RSA_4096",
  "ECC_NIST_P256",
  "ECC_NIST_P384",
  "HMAC_224",
  "HMAC_256",
  "HMAC_384",
  "HMAC_512",
] as const;
export type KeySpec = (typeof KEY_SPECS)[number];
const ALL_KEY_SPECS = [
  ...KEY_SPECS,
  "ECC_NIST_P521",
  "ECC_SECG_P256K1",
  "SM2",
  "ML_DSA_44",
  "ML_DSA_65",
  "ML_DSA_87",
  "ECC_NIST_EDWARDS25519",
];
export type KeyUsage = "ENCRYPT_DECRYPT" | "SIGN_VERIFY" | "GENERATE_VERIFY_MAC";
export type KeyState = "Enabled" | "Disabled" | "PendingImport" | "PendingDeletion";
export type Origin = "AWS_KMS" | "EXTERNAL";
export type WrappingAlgorithm = "RSAES_OAEP_SHA_1" | "RSAES_OAEP_SHA_256" | "RSA_AES_KEY_WRAP_SHA_1" | "RSA_AES_KEY_WRAP_SHA_256";
const WRAPPING_ALGORITHMS: WrappingAlgorithm[] = [
  "RSAES_OAEP_SHA_1",
  "RSAES_OAEP_SHA_256",
  "RSA_AES_KEY_WRAP_SHA_1",
  "RSA_AES_KEY_WRAP_SHA_256",
];
export type WrappingKeySpec = "RSA_2048" | "RSA_3072" | "RSA_4096";
const WRAPPING_KEY_SPECS: WrappingKeySpec[] = ["RSA_2048", "RSA_3072", "RSA_4096"];
type MaterialState = "CURRENT" | "NON_CURRENT" | "PENDING_ROTATION";
type ExpirationModel = "KEY_MATERIAL_EXPIRES" | "KEY_MATERIAL_DOES_NOT_EXPIRE";

/** One key material of a key; symmetric keys can hold several (rotation), the others exactly one. */
export interface Material {
  id: string;
  /** AES or HMAC bytes; absent for asymmetric keys or when the imported material was deleted / expired. */
  secret?: Buffer;
  /** RSA or EC private key; absent for symmetric keys or when deleted. */
  privateKey?: KeyObject;
  state: MaterialState;
  imported: boolean;
  expirationModel?: ExpirationModel;
  /** Epoch seconds. */
  validTo?: number;
  description?: string;
  /** Epoch seconds; set when this material became current by a rotation. */
  rotationDate?: number;
  rotationType?: "ON_DEMAND";
  /** KCV of the material, kept after deletion so tests can compare (kcv.ts). */
  kcv: string;
}

export interface Key {
  keyId: string;
  arn: string;
  creationDate: number;
  description: string;
  keyUsage: KeyUsage;
  keySpec: KeySpec;
  origin: Origin;
  keyState: KeyState;
  /** Set by DisableKey / CancelKeyDeletion; decides Enabled vs Disabled once material is present. */
  userDisabled: boolean;
  deletionDate?: number;
  pendingWindowInDays?: number;
  tags: Map<string, string>;
  materials: Material[];
  onDemandRotations: number;
}

export interface Alias {
  name: string;
  targetKeyId: string;
  creationDate: number;
  lastUpdatedDate: number;
}

interface ImportParams {
  keyId: string;
  algorithm: WrappingAlgorithm;
  spec: WrappingKeySpec;
  privateKey: KeyObject;
  validTo: number;
}

type Json = Record<string, unknown>;

const isSymmetric = (s: KeySpec): boolean => s === "SYMMETRIC_DEFAULT";
const isHmac = (s: KeySpec): boolean => s.startsWith("HMAC_");
const isRsa = (s: KeySpec): boolean => s.startsWith("RSA_");
const isEc = (s: KeySpec): boolean => s.startsWith("ECC_");

const HMAC_HASH: Record<string, HmacHash> = { HMAC_224: "sha224", HMAC_256: "sha256", HMAC_384: "sha384", HMAC_512: "sha512" };
/** Imported HMAC material lengths in bytes (LocalStack's table, mirroring AWS; BYOK.md §2.6). */
const HMAC_RANGE: Record<string, [number, number]> = {
  HMAC_224: [28, 64],
  HMAC_256: [32, 64],
  HMAC_384: [48, 128],
  HMAC_512: [64, 128],
};
const HMAC_GENERATED: Record<string, number> = { HMAC_224: 28, HMAC_256: 32, HMAC_384: 48, HMAC_512: 64 };
const RSA_BITS: Record<string, number> = { RSA_2048: 2048, RSA_3072: 3072, RSA_4096: 4096 };
const EC_CURVE: Record<string, string> = { ECC_NIST_P256: "prime256v1", ECC_NIST_P384: "secp384r1" };
const EC_SIGNING: Record<string, string[]> = { ECC_NIST_P256: ["ECDSA_SHA_256"], ECC_NIST_P384: ["ECDSA_SHA_384"] };
const RSA_SIGNING = [
  "RSASSA_PSS_SHA_256",
  "RSASSA_PSS_SHA_384",
  "RSASSA_PSS_SHA_512",
  "RSASSA_PKCS1_V1_5_SHA_256",
  "RSASSA_PKCS1_V1_5_SHA_384",
  "RSASSA_PKCS1_V1_5_SHA_512",
];
const RSA_ENCRYPTION = ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"];
const MAX_ON_DEMAND_ROTATIONS = 25;

function materialKcv(spec: KeySpec, m: { secret?: Buffer; privateKey?: KeyObject }): string {
  if (m.privateKey) return kcvPublicKey(m.privateKey);
  if (!m.secret) return "";
  if (isSymmetric(spec)) return kcvAes(m.secret);
  return kcvHmac(m.secret, HMAC_HASH[spec] ?? "sha256");
}

// ---- request field helpers ----

function str(body: Json, name: string, field: string): string {
  const v = body[name];
  if (v === undefined || v === null) throw notNull(field);
  if (typeof v !== "string") throw new KmsError("SerializationException", `${name} must be a string`);
  return v;
}

function optStr(body: Json, name: string): string | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw new KmsError("SerializationException", `${name} must be a string`);
  return v;
}

function blob(body: Json, name: string, field: string, min = 1, max = 6144): Buffer {
  const s = str(body, name, field);
  const b = Buffer.from(s, "base64");
  if (b.length < min || b.length > max) {
    throw new KmsError(
      "ValidationException",
      `1 validation error detected: Value at '${field}' failed to satisfy constraint: Member must have length between ${min} and ${max}`,
    );
  }
  return b;
}

function optNum(body: Json, name: string): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new KmsError("SerializationException", `${name} must be a number`);
  return v;
}

function context(body: Json): Record<string, string> | undefined {
  const v = body["EncryptionContext"];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw new KmsError("SerializationException", "EncryptionContext must be a map");
  for (const x of Object.values(v)) {
    if (typeof x !== "string") throw new KmsError("SerializationException", "EncryptionContext values must be strings");
  }
  return v as Record<string, string>;
}

function page<T>(items: T[], body: Json, max = 1000, dflt = 100): { items: T[]; next?: string } {
  const limit = optNum(body, "Limit") ?? dflt;
  if (!Number.isInteger(limit) || limit < 1 || limit > max) {
    throw new KmsError(
      "ValidationException",
      `1 validation error detected: Value '${limit}' at 'limit' failed to satisfy constraint: Member must have value between 1 and ${max}`,
    );
  }
  const marker = optStr(body, "Marker");
  const start = marker === undefined ? 0 : Number(marker);
  if (!Number.isInteger(start) || start < 0) throw new KmsError("InvalidMarkerException", "Invalid marker");
  const slice = items.slice(start, start + limit);
  return start + limit < items.length ? { items: slice, next: String(start + limit) } : { items: slice };
}

function paged<T>(name: string, p: { items: T[]; next?: string }): Json {
  return p.next === undefined ? { [name]: p.items, Truncated: false } : { [name]: p.items, NextMarker: p.next, Truncated: true };
}

export interface KmsOptions {
  region: string;
  accountId: string;
  clock: EmulatorClock;
  /** Generate a new wrapping key pair for every GetParametersForImport (slow for RSA_4096); default: one per spec. */
  freshWrappingKeys: boolean;
  captureLimit: number;
}

/** A wrapping key's exported forms, computed once per key pair (they are sent or captured on every import). */
const WRAPPING_KEY_FORMS = new WeakMap<KeyObject, { spkiBase64: string; privatePem: string; publicPem: string }>();
function wrappingKeyForms(privateKey: KeyObject): { spkiBase64: string; privatePem: string; publicPem: string } {
  let f = WRAPPING_KEY_FORMS.get(privateKey);
  if (!f) {
    const pub = createPublicKey(privateKey);
    f = {
      spkiBase64: pub.export({ format: "der", type: "spki" }).toString("base64"),
      privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      publicPem: pub.export({ format: "pem", type: "spki" }).toString(),
    };
    WRAPPING_KEY_FORMS.set(privateKey, f);
  }
  return f;
}

export class KmsState {
  readonly keys = new Map<string, Key>();
  readonly aliases = new Map<string, Alias>();
  private readonly importParams = new Map<string, ImportParams>();
  private readonly wrappingKeys = new Map<WrappingKeySpec, Promise<KeyObject>>();
  readonly captures: BoundedLog<CapturedImport>;

  constructor(private readonly opts: KmsOptions) {
    this.captures = new BoundedLog<CapturedImport>(opts.captureLimit);
  }

  reset(): void {
    this.nextDue = -Infinity;
    this.keys.clear();
    this.aliases.clear();
    this.importParams.clear();
    this.captures.clear();
  }

  private now(): number {
    return this.opts.clock.nowSeconds();
  }

  keyArn(keyId: string): string {
    return `arn:aws:kms:${this.opts.region}:${this.opts.accountId}:key/${keyId}`;
  }

  aliasArn(name: string): string {
    return `arn:aws:kms:${this.opts.region}:${this.opts.accountId}:${name}`;
  }

  /**
   * The earliest emulator time at which a deletion date or a material expiry can fall due: before it, sweep() has
   * nothing to do (it runs on every request, and a full pass over thousands of keys per request was most of the
   * emulator's CPU in the distribution benchmark). Lowered by `due()` wherever such a time is set.
   */
  private nextDue = -Infinity;

  private due(when: number): void {
    if (when < this.nextDue) this.nextDue = when;
  }

  /** Applies time: expired material is deleted, keys whose deletion date passed are gone (with their aliases). */
  sweep(): void {
    const now = this.now();
    if (now < this.nextDue) return;
    let next = Infinity;
    for (const key of [...this.keys.values()]) {
      if (key.keyState === "PendingDeletion" && key.deletionDate !== undefined) {
        if (key.deletionDate <= now) {
          this.removeKey(key);
          continue;
        }
        next = Math.min(next, key.deletionDate);
      }
      for (const m of key.materials) {
        if (m.imported && m.expirationModel === "KEY_MATERIAL_EXPIRES" && m.validTo !== undefined) {
          if (m.validTo <= now) this.dropMaterial(m);
          else next = Math.min(next, m.validTo);
        }
      }
      this.settle(key);
    }
    this.nextDue = next;
  }

  removeKey(key: Key): void {
    this.keys.delete(key.keyId);
    for (const [name, a] of this.aliases) if (a.targetKeyId === key.keyId) this.aliases.delete(name);
  }

  private dropMaterial(m: Material): void {
    m.secret?.fill(0);
    delete m.secret;
    delete m.privateKey;
    m.imported = false;
  }

  /** Derives the key state from its materials and the user's enable/disable, as KMS does. */
  settle(key: Key): void {
    if (key.keyState === "PendingDeletion") return;
    const current = key.materials.find((m) => m.state === "CURRENT");
    if (!current || !current.imported) key.keyState = "PendingImport";
    else key.keyState = key.userDisabled ? "Disabled" : "Enabled";
  }

  materialId(keyId: string, spec: KeySpec, m: { secret?: Buffer; privateKey?: KeyObject }): string {
    const canonical = m.privateKey ? m.privateKey.export({ format: "der", type: "pkcs8" }) : (m.secret ?? Buffer.alloc(0));
    return createHash("sha256").update("mcko-kms-emulator\0").update(keyId).update("\0").update(spec).update("\0").update(canonical).digest("hex");
  }

  // ---- lookup ----

  /** Resolves a key id, key ARN, alias name or alias ARN; NotFoundException like KMS. */
  resolve(ref: string): Key {
    let keyId: string | undefined;
    const arnPrefix = `arn:aws:kms:${this.opts.region}:${this.opts.accountId}:`;
    if (ref.startsWith("arn:")) {
      if (!ref.startsWith(arnPrefix)) {
        const m = /^arn:aws[a-z-]*:kms:([^:]*):([^:]*):(key|alias)\//.exec(ref);
        if (!m) throw new KmsError("NotFoundException", `Invalid arn ${ref}`);
        throw new KmsError("NotFoundException", `Invalid arn ${m[1] ?? ""}`);
      }
      const rest = ref.slice(arnPrefix.length);
      if (rest.startsWith("key/")) keyId = rest.slice(4);
      else if (rest.startsWith("alias/")) keyId = this.aliasTarget(rest);
      else throw new KmsError("NotFoundException", `Invalid arn ${ref}`);
    } else if (ref.startsWith("alias/")) {
      keyId = this.aliasTarget(ref);
    } else {
      keyId = ref;
    }
    const key = this.keys.get(keyId);
    if (!key) throw new KmsError("NotFoundException", `Key '${this.keyArn(keyId)}' does not exist`);
    return key;
  }

  private aliasTarget(name: string): string {
    const a = this.aliases.get(name);
    if (!a) throw new KmsError("NotFoundException", `Alias ${this.aliasArn(name)} is not found.`);
    return a.targetKeyId;
  }

  /** A key that can do cryptography right now: Disabled → DisabledException, other states → KMSInvalidStateException. */
  private usable(key: Key): void {
    if (key.keyState === "Enabled") return;
    if (key.keyState === "Disabled") throw new KmsError("DisabledException", `${key.arn} is disabled.`);
    if (key.keyState === "PendingImport") throw new KmsError("KMSInvalidStateException", `${key.arn} is pending import.`);
    throw new KmsError("KMSInvalidStateException", `${key.arn} is pending deletion.`);
  }

  private notPendingDeletion(key: Key): void {
    if (key.keyState === "PendingDeletion") throw new KmsError("KMSInvalidStateException", `${key.arn} is pending deletion.`);
  }

  private current(key: Key): Material {
    const m = key.materials.find((x) => x.state === "CURRENT");
    if (!m || !m.imported) throw new KmsError("KMSInvalidStateException", `${key.arn} is pending import.`);
    return m;
  }

  private requireUsage(key: Key, usage: KeyUsage, op: string): void {
    if (key.keyUsage !== usage) {
      throw new KmsError(
        "InvalidKeyUsageException",
        `You cannot perform this operation on a KMS key with KeyUsage ${key.keyUsage} (${op} needs ${usage}): ${key.arn}`,
      );
    }
  }

  // ---- metadata ----

  metadata(key: Key): Json {
    const current = key.materials.find((m) => m.state === "CURRENT");
    const md: Json = {
      AWSAccountId: this.opts.accountId,
      KeyId: key.keyId,
      Arn: key.arn,
      CreationDate: key.creationDate,
      Enabled: key.keyState === "Enabled",
      Description: key.description,
      KeyUsage: key.keyUsage,
      KeyState: key.keyState,
      Origin: key.origin,
      KeyManager: "CUSTOMER",
      CustomerMasterKeySpec: key.keySpec,
      KeySpec: key.keySpec,
      MultiRegion: false,
    };
    if (key.deletionDate !== undefined) md["DeletionDate"] = key.deletionDate;
    if (key.pendingWindowInDays !== undefined) md["PendingDeletionWindowInDays"] = key.pendingWindowInDays;
    if (key.origin === "EXTERNAL" && current?.imported) {
      md["ExpirationModel"] = current.expirationModel;
      if (current.validTo !== undefined) md["ValidTo"] = current.validTo;
    }
    if (current?.imported) md["CurrentKeyMaterialId"] = current.id;
    if (key.keyUsage === "ENCRYPT_DECRYPT") {
      md["EncryptionAlgorithms"] = isSymmetric(key.keySpec) ? ["SYMMETRIC_DEFAULT"] : RSA_ENCRYPTION;
    }
    if (key.keyUsage === "SIGN_VERIFY") md["SigningAlgorithms"] = isRsa(key.keySpec) ? RSA_SIGNING : EC_SIGNING[key.keySpec];
    if (key.keyUsage === "GENERATE_VERIFY_MAC") md["MacAlgorithms"] = [`HMAC_SHA_${key.keySpec.slice(5)}`];
    return md;
  }

  // ---- material generation ----

  private async generateMaterial(spec: KeySpec): Promise<{ secret?: Buffer; privateKey?: KeyObject }> {
    if (isSymmetric(spec)) return { secret: randomBytes(32) };
    if (isHmac(spec)) return { secret: randomBytes(HMAC_GENERATED[spec] ?? 32) };
    if (isRsa(spec)) {
      const { privateKey } = await generateKeyPairAsync("rsa", { modulusLength: RSA_BITS[spec] ?? 2048 });
      return { privateKey };
    }
    const { privateKey } = await generateKeyPairAsync("ec", { namedCurve: EC_CURVE[spec] ?? "prime256v1" });
    return { privateKey };
  }

  private newMaterial(key: Key, m: { secret?: Buffer; privateKey?: KeyObject }, state: MaterialState): Material {
    const out: Material = {
      id: this.materialId(key.keyId, key.keySpec, m),
      state,
      imported: true,
      kcv: materialKcv(key.keySpec, m),
    };
    if (m.secret) out.secret = m.secret;
    if (m.privateKey) out.privateKey = m.privateKey;
    return out;
  }

  /** Out-of-band: the current material is replaced by random material of the same spec (a foreign key). */
  async replaceMaterial(key: Key): Promise<Material> {
    const m = await this.generateMaterial(key.keySpec);
    const fresh = this.newMaterial(key, m, "CURRENT");
    const idx = key.materials.findIndex((x) => x.state === "CURRENT");
    const old = key.materials[idx];
    if (old) {
      fresh.expirationModel = old.expirationModel ?? "KEY_MATERIAL_DOES_NOT_EXPIRE";
      if (old.validTo !== undefined) {
        fresh.validTo = old.validTo;
        this.due(old.validTo);
      }
      key.materials[idx] = fresh;
    } else {
      key.materials.push(fresh);
    }
    this.settle(key);
    return fresh;
  }

  // ---- operations ----

  async CreateKey(body: Json): Promise<Json> {
    const specRaw = optStr(body, "KeySpec") ?? optStr(body, "CustomerMasterKeySpec") ?? "SYMMETRIC_DEFAULT";
    if (!ALL_KEY_SPECS.includes(specRaw)) throw badEnum("keySpec", specRaw, ALL_KEY_SPECS);
    if (!(KEY_SPECS as readonly string[]).includes(specRaw)) {
      throw new KmsError("UnsupportedOperationException", `KeySpec ${specRaw} is not supported by the MCKO KMS emulator.`);
    }
    const spec = specRaw as KeySpec;
    const usages = ["ENCRYPT_DECRYPT", "SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"];
    const usageRaw = optStr(body, "KeyUsage") ?? "ENCRYPT_DECRYPT";
    if (!usages.includes(usageRaw)) throw badEnum("keyUsage", usageRaw, usages);
    const allowed: KeyUsage[] = isSymmetric(spec)
      ? ["ENCRYPT_DECRYPT"]
      : isHmac(spec)
        ? ["GENERATE_VERIFY_MAC"]
        : isRsa(spec)
          ? ["ENCRYPT_DECRYPT", "SIGN_VERIFY"]
          : ["SIGN_VERIFY"];
    if (!(allowed as string[]).includes(usageRaw)) {
      throw new KmsError("ValidationException", `KeyUsage ${usageRaw} is not compatible with KeySpec ${spec}`);
    }
    const origins = ["AWS_KMS", "EXTERNAL", "AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"];
    const origin = optStr(body, "Origin") ?? "AWS_KMS";
    if (!origins.includes(origin)) throw badEnum("origin", origin, origins);
    if (origin !== "AWS_KMS" && origin !== "EXTERNAL") {
      throw new KmsError("UnsupportedOperationException", `Origin ${origin} is not supported by the MCKO KMS emulator.`);
    }
    if (body["MultiRegion"] === true) {
      throw new KmsError("UnsupportedOperationException", "Multi-Region keys are not supported by the MCKO KMS emulator.");
    }
    const description = optStr(body, "Description") ?? "";
    if (description.length > 8192) {
      throw new KmsError("ValidationException", "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192");
    }
    const tags = this.parseTags(body["Tags"]);
    const keyId = randomUUID();
    const key: Key = {
      keyId,
      arn: this.keyArn(keyId),
      creationDate: this.now(),
      description,
      keyUsage: usageRaw as KeyUsage,
      keySpec: spec,
      origin: origin as Origin,
      keyState: "PendingImport",
      userDisabled: false,
      tags: new Map(),
      materials: [],
      onDemandRotations: 0,
    };
    for (const [k, v] of tags) key.tags.set(k, v);
    if (origin === "AWS_KMS") {
      const m = this.newMaterial(key, await this.generateMaterial(spec), "CURRENT");
      m.imported = true;
      key.materials.push(m);
    }
    this.settle(key);
    this.keys.set(keyId, key);
    return { KeyMetadata: this.metadata(key) };
  }

  private parseTags(raw: unknown): [string, string][] {
    if (raw === undefined || raw === null) return [];
    if (!Array.isArray(raw)) throw new KmsError("SerializationException", "Tags must be a list");
    const out: [string, string][] = [];
    for (const t of raw as unknown[]) {
      const tag = (t ?? {}) as Json;
      const k = tag["TagKey"];
      const v = tag["TagValue"];
      if (typeof k !== "string" || typeof v !== "string") throw new KmsError("TagException", "Each tag needs a TagKey and a TagValue");
      if (k.length < 1 || k.length > 128 || v.length > 256) throw new KmsError("TagException", `Invalid tag ${k}`);
      if (k.startsWith("aws:")) throw new KmsError("TagException", "Tags beginning with aws: are reserved");
      out.push([k, v]);
    }
    if (out.length > 50) throw new KmsError("LimitExceededException", "A KMS key can have at most 50 tags");
    return out;
  }

  DescribeKey(body: Json): Json {
    return { KeyMetadata: this.metadata(this.resolve(str(body, "KeyId", "keyId"))) };
  }

  UpdateKeyDescription(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const description = str(body, "Description", "description");
    if (description.length > 8192) {
      throw new KmsError("ValidationException", "1 validation error detected: Value at 'description' failed to satisfy constraint: Member must have length less than or equal to 8192");
    }
    this.notPendingDeletion(key);
    key.description = description;
    return {};
  }

  ListKeys(body: Json): Json {
    const all = [...this.keys.values()].map((k) => ({ KeyId: k.keyId, KeyArn: k.arn }));
    return paged("Keys", page(all, body));
  }

  ListAliases(body: Json): Json {
    const ref = optStr(body, "KeyId");
    const keyId = ref === undefined ? undefined : this.resolve(ref).keyId;
    const all = [...this.aliases.values()]
      .filter((a) => keyId === undefined || a.targetKeyId === keyId)
      .map((a) => ({
        AliasName: a.name,
        AliasArn: this.aliasArn(a.name),
        TargetKeyId: a.targetKeyId,
        CreationDate: a.creationDate,
        LastUpdatedDate: a.lastUpdatedDate,
      }));
    return paged("Aliases", page(all, body));
  }

  private checkAliasName(name: string): void {
    if (!name.startsWith("alias/") || name.length > 256 || !/^[a-zA-Z0-9:/_-]+$/.test(name) || name === "alias/") {
      throw new KmsError("ValidationException", `Alias must start with the prefix "alias/". Please see https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html`);
    }
    if (name.startsWith("alias/aws/")) throw new KmsError("NotAuthorizedException", `Alias names that begin with alias/aws/ are reserved.`);
  }

  /** TargetKeyId must name a key (id or key ARN), not an alias. */
  private aliasTargetKey(ref: string): Key {
    if (ref.startsWith("alias/") || /:alias\//.test(ref)) {
      throw new KmsError("ValidationException", `Aliases must refer to keys. Not aliases`);
    }
    const key = this.resolve(ref);
    this.notPendingDeletion(key);
    return key;
  }

  CreateAlias(body: Json): Json {
    const name = str(body, "AliasName", "aliasName");
    this.checkAliasName(name);
    const key = this.aliasTargetKey(str(body, "TargetKeyId", "targetKeyId"));
    if (this.aliases.has(name)) throw new KmsError("AlreadyExistsException", `An alias with the name ${this.aliasArn(name)} already exists`);
    const now = this.now();
    this.aliases.set(name, { name, targetKeyId: key.keyId, creationDate: now, lastUpdatedDate: now });
    return {};
  }

  UpdateAlias(body: Json): Json {
    const name = str(body, "AliasName", "aliasName");
    const alias = this.aliases.get(name);
    if (!alias) throw new KmsError("NotFoundException", `Alias ${this.aliasArn(name)} is not found.`);
    const key = this.aliasTargetKey(str(body, "TargetKeyId", "targetKeyId"));
    const old = this.keys.get(alias.targetKeyId);
    if (old && (old.keySpec !== key.keySpec || old.keyUsage !== key.keyUsage)) {
      throw new KmsError("ValidationException", `${key.arn} is not the same type of key as the alias's current target ${old.arn}`);
    }
    alias.targetKeyId = key.keyId;
    alias.lastUpdatedDate = this.now();
    return {};
  }

  DeleteAlias(body: Json): Json {
    const name = str(body, "AliasName", "aliasName");
    if (!this.aliases.delete(name)) throw new KmsError("NotFoundException", `Alias ${this.aliasArn(name)} is not found.`);
    return {};
  }

  EnableKey(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (key.keyState === "PendingImport" || key.keyState === "PendingDeletion") {
      throw new KmsError("KMSInvalidStateException", `${key.arn} is ${key.keyState === "PendingImport" ? "pending import" : "pending deletion"}.`);
    }
    key.userDisabled = false;
    this.settle(key);
    return {};
  }

  DisableKey(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (key.keyState === "PendingImport" || key.keyState === "PendingDeletion") {
      throw new KmsError("KMSInvalidStateException", `${key.arn} is ${key.keyState === "PendingImport" ? "pending import" : "pending deletion"}.`);
    }
    key.userDisabled = true;
    this.settle(key);
    return {};
  }

  ScheduleKeyDeletion(body: Json): Json {
    const window = optNum(body, "PendingWindowInDays") ?? 30;
    if (!Number.isInteger(window) || window < 7 || window > 30) {
      throw new KmsError(
        "ValidationException",
        `1 validation error detected: Value '${window}' at 'pendingWindowInDays' failed to satisfy constraint: Member must have value ${window < 7 ? "greater than or equal to 7" : "less than or equal to 30"}`,
      );
    }
    const key = this.resolve(str(body, "KeyId", "keyId"));
    this.notPendingDeletion(key);
    key.keyState = "PendingDeletion";
    key.deletionDate = this.now() + window * 86400;
    this.due(key.deletionDate);
    key.pendingWindowInDays = window;
    return { KeyId: key.arn, DeletionDate: key.deletionDate, KeyState: key.keyState, PendingWindowInDays: window };
  }

  CancelKeyDeletion(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (key.keyState !== "PendingDeletion") {
      throw new KmsError("KMSInvalidStateException", `${key.arn} is not pending deletion (current KeyState: ${key.keyState}).`);
    }
    delete key.deletionDate;
    delete key.pendingWindowInDays;
    key.keyState = "Disabled";
    key.userDisabled = true;
    this.settle(key);
    return { KeyId: key.arn };
  }

  TagResource(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    this.notPendingDeletion(key);
    if (body["Tags"] === undefined || body["Tags"] === null) throw notNull("tags");
    const tags = this.parseTags(body["Tags"]);
    const merged = new Map(key.tags);
    for (const [k, v] of tags) merged.set(k, v);
    if (merged.size > 50) throw new KmsError("LimitExceededException", "A KMS key can have at most 50 tags");
    key.tags = merged;
    return {};
  }

  UntagResource(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    this.notPendingDeletion(key);
    const keys = body["TagKeys"];
    if (!Array.isArray(keys)) throw notNull("tagKeys");
    for (const k of keys) if (typeof k === "string") key.tags.delete(k);
    return {};
  }

  ListResourceTags(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const all = [...key.tags].map(([TagKey, TagValue]) => ({ TagKey, TagValue }));
    return paged("Tags", page(all, body, 50, 50));
  }

  // ---- import ----

  private wrappingKey(spec: WrappingKeySpec): Promise<KeyObject> {
    const gen = (): Promise<KeyObject> =>
      generateKeyPairAsync("rsa", { modulusLength: RSA_BITS[spec] ?? 4096 }).then((p) => p.privateKey);
    if (this.opts.freshWrappingKeys) return gen();
    let p = this.wrappingKeys.get(spec);
    if (!p) {
      p = gen();
      this.wrappingKeys.set(spec, p);
      p.catch(() => this.wrappingKeys.delete(spec));
    }
    return p;
  }

  async GetParametersForImport(body: Json): Promise<Json> {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const algorithm = str(body, "WrappingAlgorithm", "wrappingAlgorithm");
    const allAlgorithms = ["RSAES_PKCS1_V1_5", ...WRAPPING_ALGORITHMS, "SM2PKE"];
    if (!allAlgorithms.includes(algorithm)) throw badEnum("wrappingAlgorithm", algorithm, allAlgorithms);
    const spec = optStr(body, "WrappingKeySpec") ?? "RSA_4096";
    const allSpecs = [...WRAPPING_KEY_SPECS, "SM2"];
    if (!allSpecs.includes(spec)) throw badEnum("wrappingKeySpec", spec, allSpecs);
    if (key.origin !== "EXTERNAL") {
      throw new KmsError("UnsupportedOperationException", `${key.arn} origin is ${key.origin} which is not valid for this operation.`);
    }
    this.notPendingDeletion(key);
    if (!(WRAPPING_ALGORITHMS as string[]).includes(algorithm) || !(WRAPPING_KEY_SPECS as string[]).includes(spec)) {
      throw new KmsError("UnsupportedOperationException", `WrappingAlgorithm ${algorithm} with WrappingKeySpec ${spec} is not supported.`);
    }
    if (isRsa(key.keySpec) && algorithm.startsWith("RSAES_OAEP")) {
      throw new KmsError(
        "ValidationException",
        `${algorithm} is not a supported wrapping algorithm for ${key.keySpec} key material; use RSA_AES_KEY_WRAP_SHA_1 or RSA_AES_KEY_WRAP_SHA_256.`,
      );
    }
    const privateKey = await this.wrappingKey(spec as WrappingKeySpec);
    const token = randomBytes(64);
    const validTo = this.now() + 24 * 3600;
    this.importParams.set(token.toString("base64"), {
      keyId: key.keyId,
      algorithm: algorithm as WrappingAlgorithm,
      spec: spec as WrappingKeySpec,
      privateKey,
      validTo,
    });
    return {
      KeyId: key.arn,
      ImportToken: token.toString("base64"),
      PublicKey: wrappingKeyForms(privateKey).spkiBase64,
      ParametersValidTo: validTo,
    };
  }

  /** The RSA step runs on a worker thread (key-wrap.ts): the emulator stands for a cloud whose CPU is not ours. */
  private unwrap(p: ImportParams, wrapped: Buffer): Promise<Buffer> {
    const hash: OaepHash = p.algorithm.endsWith("SHA_1") ? "sha1" : "sha256";
    return p.algorithm.startsWith("RSA_AES") ? rsaAesKeyUnwrapOffThread(p.privateKey, hash, wrapped) : oaepDecryptOffThread(p.privateKey, hash, wrapped);
  }

  /** Checks that the plaintext material fits the key spec; returns it in the form the key keeps. */
  private parseMaterial(key: Key, plain: Buffer): { secret?: Buffer; privateKey?: KeyObject } {
    const spec = key.keySpec;
    if (isSymmetric(spec)) {
      if (plain.length !== 32) {
        throw new KmsError("ValidationException", `The key material for a SYMMETRIC_DEFAULT key must be 256 bits (32 bytes), got ${plain.length} bytes.`);
      }
      return { secret: Buffer.from(plain) };
    }
    if (isHmac(spec)) {
      const [min, max] = HMAC_RANGE[spec] ?? [32, 64];
      if (plain.length < min || plain.length > max) {
        throw new KmsError("ValidationException", `The key material for a ${spec} key must be between ${min} and ${max} bytes, got ${plain.length} bytes.`);
      }
      return { secret: Buffer.from(plain) };
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: plain, format: "der", type: "pkcs8" });
    } catch {
      throw new KmsError("ValidationException", `The key material for a ${spec} key must be a DER-encoded PKCS#8 private key.`);
    }
    const d = privateKey.asymmetricKeyDetails;
    const ok = isRsa(spec)
      ? privateKey.asymmetricKeyType === "rsa" && d?.modulusLength === RSA_BITS[spec]
      : isEc(spec) && privateKey.asymmetricKeyType === "ec" && d?.namedCurve === EC_CURVE[spec];
    if (!ok) {
      throw new KmsError("ValidationException", `The imported key material does not match the key spec ${spec} of ${key.arn}.`);
    }
    return { privateKey };
  }

  async ImportKeyMaterial(body: Json): Promise<Json> {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const tokenB64 = Buffer.from(str(body, "ImportToken", "importToken"), "base64").toString("base64");
    const wrapped = blob(body, "EncryptedKeyMaterial", "encryptedKeyMaterial");
    if (key.origin !== "EXTERNAL") {
      throw new KmsError("UnsupportedOperationException", `${key.arn} origin is ${key.origin} which is not valid for this operation.`);
    }
    this.notPendingDeletion(key);
    const params = this.importParams.get(tokenB64);
    if (!params || params.keyId !== key.keyId) throw new KmsError("InvalidImportTokenException", "Import token is invalid or does not belong to this KMS key.");
    if (params.validTo <= this.now()) throw new KmsError("ExpiredImportTokenException", "The import token has expired; call GetParametersForImport again.");

    const expirationModel = optStr(body, "ExpirationModel") ?? "KEY_MATERIAL_EXPIRES";
    const models = ["KEY_MATERIAL_EXPIRES", "KEY_MATERIAL_DOES_NOT_EXPIRE"];
    if (!models.includes(expirationModel)) throw badEnum("expirationModel", expirationModel, models);
    const validTo = optNum(body, "ValidTo");
    if (expirationModel === "KEY_MATERIAL_EXPIRES") {
      if (validTo === undefined) throw new KmsError("ValidationException", "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES");
      const now = this.now();
      if (validTo <= now) throw new KmsError("ValidationException", "ValidTo must be in the future.");
      if (validTo > now + 365 * 86400) throw new KmsError("ValidationException", "ValidTo must be at most 365 days in the future.");
    } else if (validTo !== undefined) {
      throw new KmsError("ValidationException", "ValidTo must not be set when the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE.");
    }
    const description = optStr(body, "KeyMaterialDescription");
    const givenId = optStr(body, "KeyMaterialId");
    const importTypes = ["NEW_KEY_MATERIAL", "EXISTING_KEY_MATERIAL"];
    let importType = optStr(body, "ImportType") ?? (key.materials.length === 0 ? "NEW_KEY_MATERIAL" : "EXISTING_KEY_MATERIAL");
    if (!importTypes.includes(importType)) throw badEnum("importType", importType, importTypes);
    if (importType === "NEW_KEY_MATERIAL" && givenId !== undefined) {
      throw new KmsError("ValidationException", "KeyMaterialId cannot be specified when ImportType is NEW_KEY_MATERIAL.");
    }

    const capture: Omit<CapturedImport, "seq"> = {
      time: new Date(this.opts.clock.nowMs()).toISOString(),
      keyRef: key.keyId,
      wrappingAlgorithm: params.algorithm,
      wrappingKeySpec: params.spec,
      wrappedBlob: Buffer.from(wrapped),
      wrappingPrivateKeyPem: wrappingKeyForms(params.privateKey).privatePem,
      wrappingPublicKeyPem: wrappingKeyForms(params.privateKey).publicPem,
      accepted: false,
    };
    try {
      let plain: Buffer;
      try {
        plain = await this.unwrap(params, wrapped);
      } catch (e) {
        if (e instanceof UnwrapError) {
          throw new KmsError("InvalidCiphertextException", "The EncryptedKeyMaterial could not be decrypted with the wrapping key and algorithm of the import token.");
        }
        throw e;
      }
      // Other requests ran while the worker unwrapped: the key must still be there and importable.
      if (this.keys.get(key.keyId) !== key) throw new KmsError("NotFoundException", `Key '${key.arn}' does not exist`);
      this.notPendingDeletion(key);
      if (optStr(body, "ImportType") === undefined) importType = key.materials.length === 0 ? "NEW_KEY_MATERIAL" : "EXISTING_KEY_MATERIAL";
      const m = this.parseMaterial(key, plain);
      plain.fill(0);
      capture.materialKcv = materialKcv(key.keySpec, m);
      const id = this.materialId(key.keyId, key.keySpec, m);
      const result = this.applyImport(key, m, id, importType, givenId, expirationModel as ExpirationModel, validTo, description);
      capture.accepted = true;
      return result;
    } catch (e) {
      if (e instanceof KmsError) capture.error = e.type;
      throw e;
    } finally {
      this.captures.append(capture);
    }
  }

  private applyImport(
    key: Key,
    m: { secret?: Buffer; privateKey?: KeyObject },
    id: string,
    importType: string,
    givenId: string | undefined,
    expirationModel: ExpirationModel,
    validTo: number | undefined,
    description: string | undefined,
  ): Json {
    const install = (target: Material): void => {
      if (m.secret) target.secret = m.secret;
      if (m.privateKey) target.privateKey = m.privateKey;
      target.imported = true;
      target.expirationModel = expirationModel;
      if (validTo !== undefined) {
        target.validTo = validTo;
        this.due(validTo);
      } else delete target.validTo;
      if (description !== undefined) target.description = description;
    };
    const existing = key.materials.find((x) => x.id === id);
    if (!isSymmetric(key.keySpec)) {
      const first = key.materials[0];
      if (first && first.id !== id) {
        throw new KmsError("IncorrectKeyMaterialException", `The key material in the request is not the same key material that was previously imported into ${key.arn}.`);
      }
    } else if (importType === "EXISTING_KEY_MATERIAL") {
      if (key.materials.length === 0) {
        throw new KmsError("ValidationException", "ImportType EXISTING_KEY_MATERIAL requires key material that was previously imported into this KMS key.");
      }
      if ((givenId !== undefined && givenId !== id) || !existing) {
        throw new KmsError("IncorrectKeyMaterialException", `The key material in the request is not the same key material that was previously imported into ${key.arn}.`);
      }
    } else if (key.materials.length > 0) {
      if (existing) throw new KmsError("ValidationException", `This key material was already imported into ${key.arn}; use ImportType EXISTING_KEY_MATERIAL.`);
      if (key.materials.some((x) => x.state === "PENDING_ROTATION")) {
        throw new KmsError("ValidationException", `${key.arn} already has key material pending rotation; rotate it first.`);
      }
      const pending = this.newMaterial(key, m, "PENDING_ROTATION");
      install(pending);
      key.materials.push(pending);
      this.settle(key);
      return { KeyId: key.arn, KeyMaterialId: id };
    }
    if (existing) install(existing);
    else {
      const fresh = this.newMaterial(key, m, "CURRENT");
      install(fresh);
      key.materials.push(fresh);
    }
    this.settle(key);
    return { KeyId: key.arn, KeyMaterialId: id };
  }

  DeleteImportedKeyMaterial(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (key.origin !== "EXTERNAL") {
      throw new KmsError("UnsupportedOperationException", `${key.arn} origin is ${key.origin} which is not valid for this operation.`);
    }
    const givenId = optStr(body, "KeyMaterialId");
    const m = givenId === undefined ? key.materials.find((x) => x.state === "CURRENT") : key.materials.find((x) => x.id === givenId);
    if (!m) {
      if (givenId !== undefined) throw new KmsError("NotFoundException", `Key material ${givenId} is not associated with ${key.arn}.`);
      return { KeyId: key.arn };
    }
    this.dropMaterial(m);
    this.settle(key);
    return { KeyId: key.arn, KeyMaterialId: m.id };
  }

  async RotateKeyOnDemand(body: Json): Promise<Json> {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (!isSymmetric(key.keySpec)) {
      throw new KmsError("UnsupportedOperationException", `${key.arn} is not a symmetric encryption KMS key; on-demand rotation is not supported.`);
    }
    this.usable(key);
    if (key.onDemandRotations >= MAX_ON_DEMAND_ROTATIONS) {
      throw new KmsError("LimitExceededException", `${key.arn} has reached the limit of ${MAX_ON_DEMAND_ROTATIONS} on-demand rotations.`);
    }
    let next: Material | undefined;
    if (key.origin === "EXTERNAL") {
      next = key.materials.find((x) => x.state === "PENDING_ROTATION" && x.imported);
      if (!next) throw new KmsError("KMSInvalidStateException", `${key.arn} has no imported key material pending rotation.`);
    } else {
      next = this.newMaterial(key, await this.generateMaterial(key.keySpec), "PENDING_ROTATION");
      key.materials.push(next);
    }
    for (const x of key.materials) if (x.state === "CURRENT") x.state = "NON_CURRENT";
    next.state = "CURRENT";
    next.rotationDate = this.now();
    next.rotationType = "ON_DEMAND";
    key.onDemandRotations++;
    this.settle(key);
    return { KeyId: key.keyId };
  }

  ListKeyRotations(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (!isSymmetric(key.keySpec)) {
      throw new KmsError("UnsupportedOperationException", `${key.arn} is not a symmetric encryption KMS key.`);
    }
    const include = optStr(body, "IncludeKeyMaterial") ?? "ROTATIONS_ONLY";
    const values = ["ALL_KEY_MATERIAL", "ROTATIONS_ONLY"];
    if (!values.includes(include)) throw badEnum("includeKeyMaterial", include, values);
    const all = key.materials
      .filter((m) => include === "ALL_KEY_MATERIAL" || m.rotationDate !== undefined)
      .map((m) => {
        const e: Json = { KeyId: key.keyId, KeyMaterialId: m.id, KeyMaterialState: m.state };
        if (key.origin === "EXTERNAL") {
          e["ImportState"] = m.imported ? "IMPORTED" : "PENDING_IMPORT";
          if (m.expirationModel) e["ExpirationModel"] = m.expirationModel;
          if (m.validTo !== undefined) e["ValidTo"] = m.validTo;
          if (m.description !== undefined) e["KeyMaterialDescription"] = m.description;
        }
        if (m.rotationDate !== undefined) {
          e["RotationDate"] = m.rotationDate;
          e["RotationType"] = m.rotationType;
        }
        return e;
      });
    return paged("Rotations", page(all, body, 1000, 100));
  }

  // ---- cryptography ----

  Encrypt(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const plaintext = blob(body, "Plaintext", "plaintext", 1, 4096);
    const ctx = context(body);
    this.requireUsage(key, "ENCRYPT_DECRYPT", "Encrypt");
    this.usable(key);
    const m = this.current(key);
    if (isSymmetric(key.keySpec)) {
      const alg = optStr(body, "EncryptionAlgorithm") ?? "SYMMETRIC_DEFAULT";
      if (alg !== "SYMMETRIC_DEFAULT") throw new KmsError("InvalidKeyUsageException", `Algorithm ${alg} is incompatible with key spec SYMMETRIC_DEFAULT.`);
      const ct = encryptBlob(key.keyId, m.id, m.secret ?? Buffer.alloc(0), plaintext, ctx);
      return { CiphertextBlob: ct.toString("base64"), KeyId: key.arn, EncryptionAlgorithm: alg };
    }
    const alg = this.rsaEncryptionAlgorithm(body, ctx);
    const pub = createPublicKey(m.privateKey as KeyObject);
    let ct: Buffer;
    try {
      ct = oaepEncrypt(pub, alg === "RSAES_OAEP_SHA_1" ? "sha1" : "sha256", plaintext);
    } catch {
      throw new KmsError("ValidationException", `Plaintext is too long for ${alg} with ${key.keySpec}.`);
    }
    return { CiphertextBlob: ct.toString("base64"), KeyId: key.arn, EncryptionAlgorithm: alg };
  }

  private rsaEncryptionAlgorithm(body: Json, ctx: Record<string, string> | undefined): string {
    const alg = optStr(body, "EncryptionAlgorithm");
    if (alg === undefined) throw new KmsError("ValidationException", "EncryptionAlgorithm is required for asymmetric KMS keys.");
    if (!RSA_ENCRYPTION.includes(alg)) throw new KmsError("InvalidKeyUsageException", `Algorithm ${alg} is incompatible with this key.`);
    if (ctx && Object.keys(ctx).length > 0) throw new KmsError("ValidationException", "EncryptionContext is not supported with asymmetric KMS keys.");
    return alg;
  }

  Decrypt(body: Json): Json {
    const ct = blob(body, "CiphertextBlob", "ciphertextBlob");
    const ctx = context(body);
    const ref = optStr(body, "KeyId");
    if (ref === undefined) {
      let parsed;
      try {
        parsed = parseCiphertextBlob(ct);
      } catch {
        throw new KmsError("InvalidCiphertextException", "");
      }
      return this.decryptSymmetric(this.resolve(parsed.keyId), ct, ctx);
    }
    const key = this.resolve(ref);
    if (isSymmetric(key.keySpec)) {
      let parsed;
      try {
        parsed = parseCiphertextBlob(ct);
      } catch {
        throw new KmsError("InvalidCiphertextException", "");
      }
      if (parsed.keyId !== key.keyId) {
        throw new KmsError("IncorrectKeyException", "The key ID in the request does not identify a CMK that can perform this operation.");
      }
      return this.decryptSymmetric(key, ct, ctx);
    }
    this.requireUsage(key, "ENCRYPT_DECRYPT", "Decrypt");
    this.usable(key);
    const alg = this.rsaEncryptionAlgorithm(body, ctx);
    const m = this.current(key);
    try {
      const plain = oaepDecrypt(m.privateKey as KeyObject, alg === "RSAES_OAEP_SHA_1" ? "sha1" : "sha256", ct);
      return { KeyId: key.arn, Plaintext: plain.toString("base64"), EncryptionAlgorithm: alg, KeyMaterialId: m.id };
    } catch {
      throw new KmsError("InvalidCiphertextException", "");
    }
  }

  private decryptSymmetric(key: Key, ct: Buffer, ctx: Record<string, string> | undefined): Json {
    this.requireUsage(key, "ENCRYPT_DECRYPT", "Decrypt");
    this.usable(key);
    const parsed = parseCiphertextBlob(ct);
    const m = key.materials.find((x) => x.id === parsed.keyMaterialId);
    if (!m) throw new KmsError("InvalidCiphertextException", "");
    if (!m.imported || !m.secret) {
      throw new KmsError("KMSInvalidStateException", `The key material ${m.id} of ${key.arn} is not available (deleted or expired).`);
    }
    try {
      const plain = decryptBlob(ct, m.secret, ctx);
      return { KeyId: key.arn, Plaintext: plain.toString("base64"), EncryptionAlgorithm: "SYMMETRIC_DEFAULT", KeyMaterialId: m.id };
    } catch {
      throw new KmsError("InvalidCiphertextException", "");
    }
  }

  GenerateDataKey(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (!isSymmetric(key.keySpec)) throw new KmsError("InvalidKeyUsageException", `${key.arn} is not a symmetric encryption KMS key.`);
    const plaintext = randomBytes(this.dataKeyLength(body)).toString("base64");
    const out = this.Encrypt({ ...body, Plaintext: plaintext, KeyId: key.keyId });
    return { CiphertextBlob: out["CiphertextBlob"], Plaintext: plaintext, KeyId: key.arn };
  }

  GenerateDataKeyWithoutPlaintext(body: Json): Json {
    const out = this.GenerateDataKey(body);
    return { CiphertextBlob: out["CiphertextBlob"], KeyId: out["KeyId"] };
  }

  private dataKeyLength(body: Json): number {
    const n = optNum(body, "NumberOfBytes");
    const spec = optStr(body, "KeySpec");
    if (n !== undefined && spec !== undefined) throw new KmsError("ValidationException", "Specify either KeySpec or NumberOfBytes, not both.");
    if (n !== undefined) {
      if (!Number.isInteger(n) || n < 1 || n > 1024) throw new KmsError("ValidationException", "NumberOfBytes must be between 1 and 1024.");
      return n;
    }
    if (spec === "AES_128") return 16;
    if (spec === "AES_256") return 32;
    throw new KmsError("ValidationException", "Please specify either number of bytes or key spec.");
  }

  GenerateMac(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const message = blob(body, "Message", "message", 1, 4096);
    const alg = str(body, "MacAlgorithm", "macAlgorithm");
    this.requireUsage(key, "GENERATE_VERIFY_MAC", "GenerateMac");
    this.usable(key);
    const hash = this.macHash(key, alg);
    const mac = createHmac(hash, this.current(key).secret ?? Buffer.alloc(0)).update(message).digest();
    return { Mac: mac.toString("base64"), MacAlgorithm: alg, KeyId: key.arn };
  }

  VerifyMac(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const message = blob(body, "Message", "message", 1, 4096);
    const alg = str(body, "MacAlgorithm", "macAlgorithm");
    const mac = blob(body, "Mac", "mac", 1, 6144);
    this.requireUsage(key, "GENERATE_VERIFY_MAC", "VerifyMac");
    this.usable(key);
    const hash = this.macHash(key, alg);
    const expected = createHmac(hash, this.current(key).secret ?? Buffer.alloc(0)).update(message).digest();
    if (expected.length !== mac.length || !timingSafeEqual(expected, mac)) throw new KmsError("KMSInvalidMacException", "");
    return { KeyId: key.arn, MacValid: true, MacAlgorithm: alg };
  }

  private macHash(key: Key, alg: string): HmacHash {
    if (alg !== `HMAC_SHA_${key.keySpec.slice(5)}`) {
      throw new KmsError("InvalidKeyUsageException", `Algorithm ${alg} is incompatible with key spec ${key.keySpec}.`);
    }
    return HMAC_HASH[key.keySpec] ?? "sha256";
  }

  private signingParams(key: Key, alg: string): { hash: DigestHash; scheme: "pss" | "pkcs1" | "ecdsa" } {
    const allowed = isRsa(key.keySpec) ? RSA_SIGNING : (EC_SIGNING[key.keySpec] ?? []);
    if (!allowed.includes(alg)) throw new KmsError("InvalidKeyUsageException", `Algorithm ${alg} is incompatible with key spec ${key.keySpec}.`);
    const hash = `sha${alg.slice(-3)}` as DigestHash;
    return { hash, scheme: alg.startsWith("RSASSA_PSS") ? "pss" : alg.startsWith("RSASSA_PKCS1") ? "pkcs1" : "ecdsa" };
  }

  private digestOf(body: Json, hash: DigestHash): Buffer {
    const message = blob(body, "Message", "message", 1, 4096);
    const type = optStr(body, "MessageType") ?? "RAW";
    if (type === "RAW") return createHash(hash).update(message).digest();
    if (type !== "DIGEST") throw badEnum("messageType", type, ["RAW", "DIGEST", "EXTERNAL_MU"]);
    const len = { sha256: 32, sha384: 48, sha512: 64 }[hash];
    if (message.length !== len) throw new KmsError("ValidationException", `Digest is invalid length for algorithm ${hash.toUpperCase()}.`);
    return message;
  }

  Sign(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const alg = str(body, "SigningAlgorithm", "signingAlgorithm");
    this.requireUsage(key, "SIGN_VERIFY", "Sign");
    this.usable(key);
    const { hash, scheme } = this.signingParams(key, alg);
    const digest = this.digestOf(body, hash);
    const priv = this.current(key).privateKey as KeyObject;
    const sig =
      scheme === "pss"
        ? signDigestRsaPss(priv, hash, digest)
        : scheme === "pkcs1"
          ? signDigestRsaPkcs1(priv, hash, digest)
          : p1363ToDer(signDigestEcdsa(priv, digest));
    return { KeyId: key.arn, Signature: sig.toString("base64"), SigningAlgorithm: alg };
  }

  Verify(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    const alg = str(body, "SigningAlgorithm", "signingAlgorithm");
    const signature = blob(body, "Signature", "signature", 1, 6144);
    this.requireUsage(key, "SIGN_VERIFY", "Verify");
    this.usable(key);
    const { hash, scheme } = this.signingParams(key, alg);
    const digest = this.digestOf(body, hash);
    const pub = createPublicKey(this.current(key).privateKey as KeyObject);
    let valid: boolean;
    if (scheme === "pss") valid = verifyDigestRsaPss(pub, hash, digest, signature);
    else if (scheme === "pkcs1") valid = verifyDigestRsaPkcs1(pub, hash, digest, signature);
    else {
      try {
        valid = verifyDigestEcdsa(pub, digest, derToP1363(signature, key.keySpec === "ECC_NIST_P256" ? 32 : 48));
      } catch {
        valid = false;
      }
    }
    if (!valid) throw new KmsError("KMSInvalidSignatureException", "");
    return { KeyId: key.arn, SignatureValid: true, SigningAlgorithm: alg };
  }

  GetPublicKey(body: Json): Json {
    const key = this.resolve(str(body, "KeyId", "keyId"));
    if (isSymmetric(key.keySpec) || isHmac(key.keySpec)) {
      throw new KmsError("UnsupportedOperationException", `${key.arn} key usage is ${key.keyUsage} which is not valid for GetPublicKey.`);
    }
    this.usable(key);
    const pub = createPublicKey(this.current(key).privateKey as KeyObject);
    const out: Json = {
      KeyId: key.arn,
      PublicKey: pub.export({ format: "der", type: "spki" }).toString("base64"),
      CustomerMasterKeySpec: key.keySpec,
      KeySpec: key.keySpec,
      KeyUsage: key.keyUsage,
    };
    if (key.keyUsage === "ENCRYPT_DECRYPT") out["EncryptionAlgorithms"] = RSA_ENCRYPTION;
    else out["SigningAlgorithms"] = isRsa(key.keySpec) ? RSA_SIGNING : EC_SIGNING[key.keySpec];
    return out;
  }

  GenerateRandom(body: Json): Json {
    const n = optNum(body, "NumberOfBytes");
    if (n === undefined || !Number.isInteger(n) || n < 1 || n > 1024) {
      throw new KmsError("ValidationException", "NumberOfBytes must be between 1 and 1024.");
    }
    return { Plaintext: randomBytes(n).toString("base64") };
  }
}
