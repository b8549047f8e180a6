/**
 * The Azure Key Vault emulator's state and operations (BYOK.md §3): keys with versions (each keeps its material),
 * soft delete with recover and purge, BYOK import of .byok transfer blobs (CKM_RSA_AES_KEY_WRAP under a KEK created
 * here) and plain JWK import, and the cryptographic operations. Transport, auth and faults live in server.ts.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  generateKeyPair,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type CipherGCMTypes,
  type JsonWebKey as NodeJwk,
  type KeyObject,
} from "node:crypto";
import { promisify } from "node:util";
import { kcvAes, kcvPublicKey } from "../common/kcv.js";
import { kwUnwrap, kwWrap, oaepDecrypt, oaepEncrypt, rsaAesKeyUnwrap, UnwrapError, type OaepHash } from "../common/key-wrap.js";
import {
  signDigestEcdsa,
  signDigestRsaPkcs1,
  signDigestRsaPss,
  verifyDigestEcdsa,
  verifyDigestRsaPkcs1,
  verifyDigestRsaPss,
  type DigestHash,
} from "../common/prehash-sign.js";
import { BoundedLog, type CapturedImport, type EmulatorClock } from "../common/records.js";

const generateKeyPairAsync = promisify(generateKeyPair);

/** Key Vault errors as they travel: status + `{"error": {"code", "message", "innererror"?}}`. */
export class VaultError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly innerCode?: string,
  ) {
    super(message);
    this.name = code;
  }
  body(): Record<string, unknown> {
    const error: Record<string, unknown> = { code: this.code, message: this.message };
    if (this.innerCode) error["innererror"] = { code: this.innerCode };
    return { error };
  }
}

const bad = (message: string): VaultError => new VaultError(400, "BadParameter", message);
const notFound = (name: string): VaultError =>
  new VaultError(
    404,
    "KeyNotFound",
    `A key with (name/id) ${name} was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182`,
  );

export type Kty = "RSA" | "RSA-HSM" | "EC" | "EC-HSM" | "oct" | "oct-HSM";
const KTYS: Kty[] = ["RSA", "RSA-HSM", "EC", "EC-HSM", "oct", "oct-HSM"];
const KEY_OPS = ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export"];
const CURVES: Record<string, string> = { "P-256": "prime256v1", "P-384": "secp384r1" };
const CURVE_OF: Record<string, string> = { prime256v1: "P-256", secp384r1: "P-384" };

export interface Version {
  version: string;
  kty: Kty;
  keyOps: string[];
  privateKey?: KeyObject;
  secret?: Buffer;
  enabled: boolean;
  nbf?: number;
  exp?: number;
  created: number;
  updated: number;
  tags: Record<string, string>;
  kcv: string;
  origin: "generated" | "byok" | "jwk";
}

export interface VaultKey {
  name: string;
  versions: Version[];
}

export interface DeletedKey {
  key: VaultKey;
  deletedDate: number;
  scheduledPurgeDate: number;
}

type Json = Record<string, unknown>;

const family = (kty: Kty): "RSA" | "EC" | "oct" => (kty.startsWith("RSA") ? "RSA" : kty.startsWith("EC") ? "EC" : "oct");
const b64u = (b: Buffer): string => b.toString("base64url");

function defaultOps(kty: Kty): string[] {
  const f = family(kty);
  if (f === "RSA") return ["encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"];
  if (f === "EC") return ["sign", "verify"];
  return ["encrypt", "decrypt", "wrapKey", "unwrapKey"];
}

function kcvOf(v: { privateKey?: KeyObject; secret?: Buffer }): string {
  if (v.privateKey) return kcvPublicKey(v.privateKey);
  return v.secret ? kcvAes(v.secret) : "";
}

function fromB64(v: unknown, field: string): Buffer {
  if (typeof v !== "string") throw bad(`The parameter ${field} is required and must be a base64url string.`);
  return Buffer.from(v.replace(/-/g, "+").replace(/_/g, "/"), "base64");
}

function optStringArray(v: unknown, field: string): string[] | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw bad(`${field} must be an array of strings.`);
  for (const op of v as string[]) if (!KEY_OPS.includes(op)) throw bad(`Invalid key operation: ${op}`);
  return v as string[];
}

function tagsOf(v: unknown): Record<string, string> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw bad("tags must be an object.");
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== "string") throw bad("tag values must be strings.");
    out[k] = x;
  }
  if (Object.keys(out).length > 15) throw bad("A key can have at most 15 tags.");
  return out;
}

interface Attributes {
  enabled?: boolean;
  nbf?: number;
  exp?: number;
}

function attributesOf(v: unknown): Attributes {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) throw bad("attributes must be an object.");
  const a = v as Json;
  const out: Attributes = {};
  if (a["enabled"] !== undefined && a["enabled"] !== null) {
    if (typeof a["enabled"] !== "boolean") throw bad("attributes.enabled must be a boolean.");
    out.enabled = a["enabled"];
  }
  for (const f of ["nbf", "exp"] as const) {
    const x = a[f];
    if (x !== undefined && x !== null) {
      if (typeof x !== "number") throw bad(`attributes.${f} must be a number of seconds.`);
      out[f] = x;
    }
  }
  return out;
}

const NAME_RE = /^[0-9a-zA-Z-]{1,127}$/;

export interface VaultOptions {
  clock: EmulatorClock;
  captureLimit: number;
  /** Days a deleted key stays recoverable; default 90. */
  recoverableDays: number;
}

export class VaultState {
  readonly keys = new Map<string, VaultKey>();
  readonly deleted = new Map<string, DeletedKey>();
  readonly captures: BoundedLog<CapturedImport>;

  constructor(private readonly opts: VaultOptions) {
    this.captures = new BoundedLog<CapturedImport>(opts.captureLimit);
  }

  reset(): void {
    this.keys.clear();
    this.deleted.clear();
    this.captures.clear();
  }

  private now(): number {
    return this.opts.clock.nowSeconds();
  }

  /** Purges deleted keys whose scheduled purge date passed. */
  sweep(): void {
    const now = this.now();
    for (const [name, d] of this.deleted) if (d.scheduledPurgeDate <= now) this.deleted.delete(name);
  }

  key(name: string): VaultKey {
    const k = this.keys.get(name);
    if (!k) throw notFound(name);
    return k;
  }

  /** A version; "" or undefined = the latest. */
  version(name: string, version: string | undefined): Version {
    const k = this.key(name);
    const v = version ? k.versions.find((x) => x.version === version) : k.versions[k.versions.length - 1];
    if (!v) throw notFound(version ? `${name}/${version}` : name);
    return v;
  }

  private checkNameFree(name: string): void {
    if (!NAME_RE.test(name)) throw bad(`The key name '${name}' is invalid: names may contain only 0-9, a-z, A-Z and -.`);
    if (this.deleted.has(name)) {
      throw new VaultError(
        409,
        "Conflict",
        `Key ${name} is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged.`,
      );
    }
  }

  private addVersion(name: string, v: Omit<Version, "version" | "created" | "updated" | "kcv">, attrs: Attributes): Version {
    const now = this.now();
    const full: Version = {
      ...v,
      version: randomBytes(16).toString("hex"),
      created: now,
      updated: now,
      kcv: kcvOf(v),
      enabled: attrs.enabled ?? true,
    };
    if (attrs.nbf !== undefined) full.nbf = attrs.nbf;
    if (attrs.exp !== undefined) full.exp = attrs.exp;
    const k = this.keys.get(name) ?? { name, versions: [] };
    k.versions.push(full);
    this.keys.set(name, k);
    return full;
  }

  // ---- bundles ----

  kid(base: string, name: string, version: string): string {
    return `${base}/keys/${name}/${version}`;
  }

  private attributes(v: Version): Json {
    const a: Json = {
      enabled: v.enabled,
      created: v.created,
      updated: v.updated,
      recoveryLevel: "Recoverable+Purgeable",
      recoverableDays: this.opts.recoverableDays,
      exportable: false,
    };
    if (v.nbf !== undefined) a["nbf"] = v.nbf;
    if (v.exp !== undefined) a["exp"] = v.exp;
    return a;
  }

  private jwk(base: string, name: string, v: Version): Json {
    const out: Json = { kid: this.kid(base, name, v.version), kty: v.kty, key_ops: v.keyOps };
    if (v.privateKey) {
      const pub = createPublicKey(v.privateKey).export({ format: "jwk" }) as NodeJwk;
      if (family(v.kty) === "RSA") {
        out["n"] = pub.n;
        out["e"] = pub.e;
      } else {
        out["crv"] = pub.crv;
        out["x"] = pub.x;
        out["y"] = pub.y;
      }
    }
    return out;
  }

  bundle(base: string, name: string, v: Version): Json {
    const b: Json = { key: this.jwk(base, name, v), attributes: this.attributes(v) };
    if (Object.keys(v.tags).length > 0) b["tags"] = v.tags;
    return b;
  }

  item(base: string, name: string, v: Version, withVersion: boolean): Json {
    const i: Json = {
      kid: withVersion ? this.kid(base, name, v.version) : `${base}/keys/${name}`,
      attributes: this.attributes(v),
    };
    if (Object.keys(v.tags).length > 0) i["tags"] = v.tags;
    return i;
  }

  private deletedExtras(base: string, name: string, d: DeletedKey): Json {
    return { recoveryId: `${base}/deletedkeys/${name}`, deletedDate: d.deletedDate, scheduledPurgeDate: d.scheduledPurgeDate };
  }

  // ---- key management ----

  async CreateKey(base: string, name: string, body: Json): Promise<Json> {
    this.checkNameFree(name);
    const kty = body["kty"];
    if (typeof kty !== "string" || !(KTYS as string[]).includes(kty)) throw bad(`The parameter kty must be one of ${KTYS.join(", ")}.`);
    const f = family(kty as Kty);
    const keyOps = optStringArray(body["key_ops"], "key_ops") ?? defaultOps(kty as Kty);
    const attrs = attributesOf(body["attributes"]);
    const tags = tagsOf(body["tags"]) ?? {};
    let material: { privateKey?: KeyObject; secret?: Buffer };
    if (f === "RSA") {
      const size = body["key_size"] ?? 2048;
      if (size !== 2048 && size !== 3072 && size !== 4096) throw bad(`Invalid key size ${String(size)} for kty ${kty}; use 2048, 3072 or 4096.`);
      const e = body["public_exponent"] ?? 65537;
      if (e !== 65537) throw bad("Only public exponent 65537 is supported.");
      material = { privateKey: (await generateKeyPairAsync("rsa", { modulusLength: size })).privateKey };
    } else if (f === "EC") {
      const crv = body["crv"] ?? "P-256";
      const curve = typeof crv === "string" ? CURVES[crv] : undefined;
      if (!curve) throw bad(`Unsupported curve ${String(crv)}; the emulator supports P-256 and P-384.`);
      material = { privateKey: (await generateKeyPairAsync("ec", { namedCurve: curve })).privateKey };
    } else {
      const size = body["key_size"] ?? 256;
      if (size !== 128 && size !== 192 && size !== 256) throw bad(`Invalid key size ${String(size)} for kty ${kty}; use 128, 192 or 256.`);
      material = { secret: randomBytes(size / 8) };
    }
    const v = this.addVersion(name, { kty: kty as Kty, keyOps, tags, enabled: true, origin: "generated", ...material }, attrs);
    return this.bundle(base, name, v);
  }

  async RotateKey(base: string, name: string): Promise<Json> {
    const latest = this.version(name, undefined);
    if (latest.origin !== "generated") throw bad(`Key ${name} holds imported material and cannot be rotated by the vault; import a new version.`);
    const f = family(latest.kty);
    let material: { privateKey?: KeyObject; secret?: Buffer };
    if (f === "RSA") {
      const bits = latest.privateKey?.asymmetricKeyDetails?.modulusLength ?? 2048;
      material = { privateKey: (await generateKeyPairAsync("rsa", { modulusLength: bits })).privateKey };
    } else if (f === "EC") {
      const curve = latest.privateKey?.asymmetricKeyDetails?.namedCurve ?? "prime256v1";
      material = { privateKey: (await generateKeyPairAsync("ec", { namedCurve: curve })).privateKey };
    } else {
      material = { secret: randomBytes(latest.secret?.length ?? 32) };
    }
    const v = this.addVersion(
      name,
      { kty: latest.kty, keyOps: [...latest.keyOps], tags: { ...latest.tags }, enabled: true, origin: "generated", ...material },
      {},
    );
    return this.bundle(base, name, v);
  }

  ImportKey(base: string, name: string, body: Json): Json {
    this.checkNameFree(name);
    const jwk = body["key"];
    if (jwk === null || typeof jwk !== "object" || Array.isArray(jwk)) throw bad("The parameter key is required.");
    const k = jwk as Json;
    const ktyRaw = k["kty"];
    if (typeof ktyRaw !== "string" || !(KTYS as string[]).includes(ktyRaw)) throw bad(`The parameter key.kty must be one of ${KTYS.join(", ")}.`);
    const hsm = body["Hsm"] === true || body["hsm"] === true;
    let kty = ktyRaw as Kty;
    const keyOps = optStringArray(k["key_ops"], "key.key_ops") ?? defaultOps(kty);
    const attrs = attributesOf(body["attributes"]);
    const tags = tagsOf(body["tags"]) ?? {};
    let material: { privateKey?: KeyObject; secret?: Buffer };
    let origin: Version["origin"];
    if (k["key_hsm"] !== undefined && k["key_hsm"] !== null) {
      material = this.unwrapTransferBlob(base, name, kty, k);
      origin = "byok";
      if (!kty.endsWith("-HSM")) kty = `${kty}-HSM` as Kty;
    } else {
      material = this.parsePlainJwk(kty, k);
      origin = "jwk";
      if (hsm && !kty.endsWith("-HSM")) kty = `${kty}-HSM` as Kty;
    }
    const v = this.addVersion(name, { kty, keyOps, tags, enabled: true, origin, ...material }, attrs);
    if (origin === "byok" && this.lastCapture) this.lastCapture.version = v.version;
    return this.bundle(base, name, v);
  }

  /** The stored record of the last BYOK import, so the version it created can be added to it. */
  private lastCapture: CapturedImport | undefined;

  private parsePlainJwk(kty: Kty, k: Json): { privateKey?: KeyObject; secret?: Buffer } {
    const f = family(kty);
    if (f === "oct") {
      const secret = fromB64(k["k"], "key.k");
      if (![16, 24, 32].includes(secret.length)) throw bad("An oct key must be 128, 192 or 256 bits.");
      return { secret };
    }
    const fields = f === "RSA" ? ["n", "e", "d", "p", "q", "dp", "dq", "qi"] : ["crv", "x", "y", "d"];
    const jwk: Record<string, string> = { kty: f };
    for (const x of fields) {
      const v = k[x];
      if (typeof v !== "string") throw bad(`The parameter key.${x} is required to import a ${f} private key.`);
      jwk[x] = x === "crv" ? v : fromB64(v, `key.${x}`).toString("base64url");
    }
    if (f === "EC" && !CURVES[jwk["crv"] ?? ""]) throw bad(`Unsupported curve ${jwk["crv"] ?? ""}.`);
    try {
      return { privateKey: createPrivateKey({ key: jwk as NodeJwk, format: "jwk" }) };
    } catch {
      throw bad("The key material is not a valid private key.");
    }
  }

  private unwrapTransferBlob(base: string, name: string, kty: Kty, k: Json): { privateKey?: KeyObject; secret?: Buffer } {
    const raw = fromB64(k["key_hsm"], "key.key_hsm");
    let doc: Json;
    try {
      const parsed: unknown = JSON.parse(raw.toString("utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new SyntaxError("not an object");
      doc = parsed as Json;
    } catch {
      throw bad("key_hsm is not a valid key transfer blob (expected the base64 of a .byok JSON document).");
    }
    const header = (doc["header"] ?? {}) as Json;
    const kekKid = header["kid"];
    const enc = header["enc"];
    if (typeof kekKid !== "string") throw bad("The key transfer blob has no header.kid.");
    const m = /\/keys\/([0-9a-zA-Z-]+)\/([0-9a-zA-Z]+)\/?$/.exec(new URL(kekKid, base).pathname);
    if (!m) throw bad(`header.kid ${kekKid} does not identify a key exchange key of this vault.`);
    const kek = this.version(m[1] ?? "", m[2] ?? "");
    if (!kek.keyOps.includes("import") || family(kek.kty) !== "RSA" || !kek.privateKey) {
      throw bad(`The key ${kekKid} is not a key exchange key (an RSA-HSM key with key_ops [import]).`);
    }
    if (!kek.enabled) throw new VaultError(403, "Forbidden", "Operation import is not allowed on a disabled key.", "KeyDisabled");
    const hashes: Record<string, OaepHash> = {
      CKM_RSA_AES_KEY_WRAP: "sha1",
      RSA_AES_KEY_WRAP_256: "sha256",
      RSA_AES_KEY_WRAP_384: "sha384",
    };
    const hash = typeof enc === "string" ? hashes[enc] : undefined;
    if (!hash) throw bad(`Unsupported key transfer encryption ${String(enc)}; use CKM_RSA_AES_KEY_WRAP.`);
    if (header["alg"] !== undefined && header["alg"] !== "dir") throw bad(`Unsupported key transfer alg ${String(header["alg"])}; use dir.`);
    const wrapped = fromB64(doc["ciphertext"], "ciphertext");
    const capture: Omit<CapturedImport, "seq"> = {
      time: new Date(this.opts.clock.nowMs()).toISOString(),
      keyRef: name,
      wrappingAlgorithm: String(enc),
      wrappingKeySpec: `RSA_${kek.privateKey.asymmetricKeyDetails?.modulusLength ?? 0}`,
      wrappedBlob: wrapped,
      transferBlobJson: raw.toString("utf8"),
      wrappingPrivateKeyPem: kek.privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
      wrappingPublicKeyPem: createPublicKey(kek.privateKey).export({ format: "pem", type: "spki" }).toString(),
      accepted: false,
    };
    try {
      let plain: Buffer;
      try {
        plain = rsaAesKeyUnwrap(kek.privateKey, hash, wrapped);
      } catch (e) {
        if (e instanceof UnwrapError) throw bad("The key transfer blob could not be decrypted with the key exchange key.");
        throw e;
      }
      const material = this.parseByokMaterial(kty, k, plain);
      plain.fill(0);
      capture.materialKcv = kcvOf(material);
      capture.accepted = true;
      return material;
    } catch (e) {
      if (e instanceof VaultError) capture.error = e.code;
      throw e;
    } finally {
      this.lastCapture = this.captures.append(capture);
    }
  }

  private parseByokMaterial(kty: Kty, k: Json, plain: Buffer): { privateKey?: KeyObject; secret?: Buffer } {
    const f = family(kty);
    if (f === "oct") {
      if (![16, 24, 32].includes(plain.length)) throw bad("The transferred oct key must be 128, 192 or 256 bits.");
      return { secret: Buffer.from(plain) };
    }
    let privateKey: KeyObject;
    try {
      privateKey = createPrivateKey({ key: plain, format: "der", type: "pkcs8" });
    } catch {
      throw bad("The transferred key is not a PKCS#8 private key.");
    }
    if ((f === "RSA") !== (privateKey.asymmetricKeyType === "rsa") || (f === "EC" && privateKey.asymmetricKeyType !== "ec")) {
      throw bad(`The transferred key does not match kty ${kty}.`);
    }
    if (f === "EC") {
      const crv = CURVE_OF[privateKey.asymmetricKeyDetails?.namedCurve ?? ""];
      if (!crv) throw bad("Unsupported curve in the transferred key.");
      if (typeof k["crv"] === "string" && k["crv"] !== crv) throw bad(`The transferred key's curve ${crv} does not match crv ${k["crv"]}.`);
    }
    return { privateKey };
  }

  GetKey(base: string, name: string, version: string | undefined): Json {
    const v = this.version(name, version);
    if (!v.enabled) throw new VaultError(403, "Forbidden", "Operation get is not allowed on a disabled key.", "KeyDisabled");
    return this.bundle(base, name, v);
  }

  GetKeys(base: string): Json {
    const value = [...this.keys.values()].flatMap((k) => {
      const latest = k.versions[k.versions.length - 1];
      return latest ? [this.item(base, k.name, latest, false)] : [];
    });
    return { value, nextLink: null };
  }

  GetKeyVersions(base: string, name: string): Json {
    const k = this.key(name);
    return { value: k.versions.map((v) => this.item(base, name, v, true)), nextLink: null };
  }

  UpdateKey(base: string, name: string, version: string | undefined, body: Json): Json {
    const v = this.version(name, version);
    const ops = optStringArray(body["key_ops"], "key_ops");
    const attrs = attributesOf(body["attributes"]);
    const tags = tagsOf(body["tags"]);
    if (ops) v.keyOps = ops;
    if (attrs.enabled !== undefined) v.enabled = attrs.enabled;
    if (attrs.nbf !== undefined) v.nbf = attrs.nbf;
    if (attrs.exp !== undefined) v.exp = attrs.exp;
    if (tags) v.tags = tags;
    v.updated = this.now();
    return this.bundle(base, name, v);
  }

  DeleteKey(base: string, name: string): Json {
    const k = this.key(name);
    const now = this.now();
    const d: DeletedKey = { key: k, deletedDate: now, scheduledPurgeDate: now + this.opts.recoverableDays * 86400 };
    this.keys.delete(name);
    this.deleted.set(name, d);
    const latest = k.versions[k.versions.length - 1];
    return { ...(latest ? this.bundle(base, name, latest) : {}), ...this.deletedExtras(base, name, d) };
  }

  private deletedKey(name: string): DeletedKey {
    const d = this.deleted.get(name);
    if (!d) throw new VaultError(404, "KeyNotFound", `Deleted Key not found: ${name}`);
    return d;
  }

  GetDeletedKey(base: string, name: string): Json {
    const d = this.deletedKey(name);
    const latest = d.key.versions[d.key.versions.length - 1];
    return { ...(latest ? this.bundle(base, name, latest) : {}), ...this.deletedExtras(base, name, d) };
  }

  GetDeletedKeys(base: string): Json {
    const value = [...this.deleted.entries()].flatMap(([name, d]) => {
      const latest = d.key.versions[d.key.versions.length - 1];
      return latest ? [{ ...this.item(base, name, latest, false), ...this.deletedExtras(base, name, d) }] : [];
    });
    return { value, nextLink: null };
  }

  PurgeDeletedKey(name: string): void {
    this.deletedKey(name);
    this.deleted.delete(name);
  }

  RecoverDeletedKey(base: string, name: string): Json {
    const d = this.deletedKey(name);
    if (this.keys.has(name)) throw new VaultError(409, "Conflict", `Key ${name} already exists.`);
    this.deleted.delete(name);
    this.keys.set(name, d.key);
    const latest = d.key.versions[d.key.versions.length - 1];
    return latest ? this.bundle(base, name, latest) : {};
  }

  // ---- cryptography ----

  private usable(name: string, version: string | undefined, op: string): Version {
    const v = this.version(name, version);
    if (!v.enabled) throw new VaultError(403, "Forbidden", `Operation ${op} is not allowed on a disabled key.`, "KeyDisabled");
    const now = this.now();
    if ((v.nbf !== undefined && now < v.nbf) || (v.exp !== undefined && now >= v.exp)) {
      throw new VaultError(403, "Forbidden", `Operation ${op} is not allowed on an expired or not yet valid key.`, "KeyExpired");
    }
    if (!v.keyOps.includes(op)) throw new VaultError(403, "Forbidden", `Operation ${op} is not permitted on this key.`, "KeyOperationForbidden");
    return v;
  }

  private alg(body: Json): string {
    const a = body["alg"];
    if (typeof a !== "string") throw bad("The parameter alg is required.");
    return a;
  }

  /** encrypt, decrypt, wrapKey, unwrapKey; `op` is the key_ops name. */
  Crypt(base: string, name: string, version: string | undefined, op: "encrypt" | "decrypt" | "wrapKey" | "unwrapKey", body: Json): Json {
    const v = this.usable(name, version, op);
    const alg = this.alg(body);
    const value = fromB64(body["value"], "value");
    const kid = this.kid(base, name, v.version);
    const forward = op === "encrypt" || op === "wrapKey";
    if (family(v.kty) === "RSA") {
      const priv = v.privateKey as KeyObject;
      const hashes: Record<string, OaepHash> = { "RSA-OAEP": "sha1", "RSA-OAEP-256": "sha256" };
      const hash = hashes[alg];
      try {
        if (hash) {
          const out = forward ? oaepEncrypt(createPublicKey(priv), hash, value) : oaepDecrypt(priv, hash, value);
          return { kid, value: b64u(out) };
        }
        if (alg === "RSA1_5") {
          const out = forward
            ? publicEncrypt({ key: createPublicKey(priv), padding: constants.RSA_PKCS1_PADDING }, value)
            : privateDecrypt({ key: priv, padding: constants.RSA_PKCS1_PADDING }, value);
          return { kid, value: b64u(out) };
        }
      } catch {
        throw bad(forward ? "The value is too long for this key and algorithm." : "Unable to decrypt: the value is not valid for this key.");
      }
      throw bad(`Invalid algorithm ${alg} for an RSA key.`);
    }
    if (family(v.kty) !== "oct" || !v.secret) throw bad(`Operation ${op} is not supported by a key of type ${v.kty}.`);
    const secret = v.secret;
    const bits = secret.length * 8;
    const m = /^A(128|192|256)(KW|GCM|CBC|CBCPAD)$/.exec(alg);
    if (!m || Number(m[1]) !== bits) throw bad(`Invalid algorithm ${alg} for a ${bits}-bit oct key.`);
    const mode = m[2];
    try {
      if (mode === "KW") return { kid, value: b64u(forward ? kwWrap(secret, value) : kwUnwrap(secret, value)) };
      if (mode === "GCM") {
        const aad = body["aad"] === undefined || body["aad"] === null ? Buffer.alloc(0) : fromB64(body["aad"], "aad");
        if (forward) {
          const iv = randomBytes(12);
          const c = createCipheriv(`aes-${bits}-gcm` as CipherGCMTypes, secret, iv);
          c.setAAD(aad);
          const ct = Buffer.concat([c.update(value), c.final()]);
          const out: Json = { kid, value: b64u(ct), iv: b64u(iv), tag: b64u(c.getAuthTag()) };
          if (aad.length > 0) out["aad"] = b64u(aad);
          return out;
        }
        const d = createDecipheriv(`aes-${bits}-gcm` as CipherGCMTypes, secret, fromB64(body["iv"], "iv"));
        d.setAAD(aad);
        d.setAuthTag(fromB64(body["tag"], "tag"));
        return { kid, value: b64u(Buffer.concat([d.update(value), d.final()])) };
      }
      const iv = fromB64(body["iv"], "iv");
      const c = forward ? createCipheriv(`aes-${bits}-cbc`, secret, iv) : createDecipheriv(`aes-${bits}-cbc`, secret, iv);
      c.setAutoPadding(mode === "CBCPAD");
      return { kid, value: b64u(Buffer.concat([c.update(value), c.final()])), iv: b64u(iv) };
    } catch (e) {
      if (e instanceof VaultError) throw e;
      throw bad(`Unable to ${op}: the input is not valid for ${alg}.`);
    }
  }

  private signParams(v: Version, alg: string): { hash: DigestHash; scheme: "pss" | "pkcs1" | "ecdsa" } {
    const m = /^(RS|PS|ES)(256|384|512)$/.exec(alg);
    if (!m) throw bad(`Invalid algorithm ${alg} for signing.`);
    const hash = `sha${m[2] ?? ""}` as DigestHash;
    const f = family(v.kty);
    if (m[1] === "ES") {
      const want = { sha256: "prime256v1", sha384: "secp384r1", sha512: "" }[hash];
      if (f !== "EC" || v.privateKey?.asymmetricKeyDetails?.namedCurve !== want) throw bad(`Invalid algorithm ${alg} for this key.`);
      return { hash, scheme: "ecdsa" };
    }
    if (f !== "RSA") throw bad(`Invalid algorithm ${alg} for this key.`);
    return { hash, scheme: m[1] === "PS" ? "pss" : "pkcs1" };
  }

  Sign(base: string, name: string, version: string | undefined, body: Json): Json {
    const v = this.usable(name, version, "sign");
    const { hash, scheme } = this.signParams(v, this.alg(body));
    const digest = fromB64(body["value"], "value");
    const priv = v.privateKey as KeyObject;
    let sig: Buffer;
    try {
      sig =
        scheme === "pss"
          ? signDigestRsaPss(priv, hash, digest)
          : scheme === "pkcs1"
            ? signDigestRsaPkcs1(priv, hash, digest)
            : signDigestEcdsa(priv, digest);
    } catch {
      throw bad(`The digest length does not match ${this.alg(body)}.`);
    }
    return { kid: this.kid(base, name, v.version), value: b64u(sig) };
  }

  Verify(name: string, version: string | undefined, body: Json): Json {
    const v = this.usable(name, version, "verify");
    const { hash, scheme } = this.signParams(v, this.alg(body));
    const digest = fromB64(body["digest"], "digest");
    const sig = fromB64(body["value"], "value");
    const pub = createPublicKey(v.privateKey as KeyObject);
    const ok =
      scheme === "pss"
        ? verifyDigestRsaPss(pub, hash, digest, sig)
        : scheme === "pkcs1"
          ? verifyDigestRsaPkcs1(pub, hash, digest, sig)
          : verifyDigestEcdsa(pub, digest, sig);
    return { value: ok };
  }

  /** Out-of-band: the latest version's material is replaced in place by random material of the same type. */
  async replaceMaterial(name: string): Promise<Version> {
    const v = this.version(name, undefined);
    if (v.secret) v.secret = randomBytes(v.secret.length);
    else if (v.privateKey) {
      const d = v.privateKey.asymmetricKeyDetails;
      v.privateKey =
        family(v.kty) === "RSA"
          ? (await generateKeyPairAsync("rsa", { modulusLength: d?.modulusLength ?? 2048 })).privateKey
          : (await generateKeyPairAsync("ec", { namedCurve: d?.namedCurve ?? "prime256v1" })).privateKey;
    }
    v.kcv = kcvOf(v);
    v.updated = this.now();
    return v;
  }
}
