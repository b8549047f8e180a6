// The emulator's cryptography: BYOK unwrapping (BYOK.md §1/§4.3), material checks, KCVs (DESIGN.md, BYOK.md §7),
// CRC32C, the Encrypt ciphertext layout and the signing primitives. Node crypto only.
import crypto, { type KeyObject } from "node:crypto";
import { kcvAes, kcvHmac, kcvPublicKey, type HmacHash } from "../common/kcv.js";
import { ALGORITHMS, type AlgorithmSpec, type ImportMethodSpec } from "./algorithms.js";

const KWP_IV = Buffer.from("A65959A6", "hex");

/** CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as Cloud KMS's *_crc32c fields use. */
const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of data) c = (CRC32C_TABLE[(c ^ b) & 0xff] ?? 0) ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function aesKwpUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  const d = crypto.createDecipheriv(`id-aes${kek.length * 8}-wrap-pad`, kek, KWP_IV);
  return Buffer.concat([d.update(wrapped), d.final()]);
}

export function aesKwpWrap(kek: Buffer, material: Buffer): Buffer {
  const c = crypto.createCipheriv(`id-aes${kek.length * 8}-wrap-pad`, kek, KWP_IV);
  return Buffer.concat([c.update(material), c.final()]);
}

/** Unwraps an ImportCryptoKeyVersion wrapped_key with the import job's private key; throws on any failure. */
export function unwrapImport(method: ImportMethodSpec, privateKey: KeyObject, wrapped: Buffer): Buffer {
  const modulusBytes = method.bits / 8;
  const oaep = (data: Buffer): Buffer =>
    crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: method.oaepHash }, data);
  if (!method.rsaAes) return oaep(wrapped);
  if (wrapped.length <= modulusBytes) throw new Error(`wrapped key is ${wrapped.length} bytes, expected more than ${modulusBytes}`);
  const ephemeral = oaep(wrapped.subarray(0, modulusBytes));
  if (ephemeral.length !== 32) throw new Error(`ephemeral key is ${ephemeral.length} bytes, expected 32`);
  return aesKwpUnwrap(ephemeral, wrapped.subarray(modulusBytes));
}

/** The usable form of a version's material. Symmetric: raw bytes; asymmetric: the parsed private key. */
export type Material =
  | { kind: "secret"; bytes: Buffer }
  | { kind: "private"; bytes: Buffer; privateKey: KeyObject; publicKey: KeyObject };

/** Checks imported (or generated) material against its algorithm; returns a reason string when it does not fit. */
export function parseMaterial(algorithm: string, bytes: Buffer): Material | string {
  const spec = ALGORITHMS[algorithm];
  if (!spec) return `Unsupported algorithm ${algorithm}.`;
  if (spec.kind === "aes") {
    return bytes.length === spec.bytes ? { kind: "secret", bytes } : `Key material must be ${spec.bytes} bytes for ${algorithm}, got ${bytes.length}.`;
  }
  if (spec.kind === "hmac") {
    return bytes.length >= spec.minBytes && bytes.length <= 1024
      ? { kind: "secret", bytes }
      : `Key material length ${bytes.length} is not valid for ${algorithm}.`;
  }
  let privateKey: KeyObject;
  try {
    privateKey = crypto.createPrivateKey({ key: bytes, format: "der", type: "pkcs8" });
  } catch {
    return "Key material is not a valid PKCS#8 PrivateKeyInfo.";
  }
  const details = privateKey.asymmetricKeyDetails ?? {};
  const type = privateKey.asymmetricKeyType;
  if (spec.kind === "rsa" && (type !== "rsa" || details.modulusLength !== spec.bits)) {
    return `Key material is not an RSA ${spec.bits}-bit private key as ${algorithm} requires.`;
  }
  if (spec.kind === "ec" && (type !== "ec" || details.namedCurve !== spec.curve)) {
    return `Key material is not an EC private key on curve ${spec.curve} as ${algorithm} requires.`;
  }
  if (spec.kind === "ed25519" && type !== "ed25519") return `Key material is not an Ed25519 private key as ${algorithm} requires.`;
  return { kind: "private", bytes, privateKey, publicKey: crypto.createPublicKey(privateKey) };
}

/** Generates material for a version the emulator creates itself (CreateCryptoKey / CreateCryptoKeyVersion). */
export function generateMaterial(spec: AlgorithmSpec): Buffer {
  switch (spec.kind) {
    case "aes":
      return crypto.randomBytes(spec.bytes);
    case "hmac":
      return crypto.randomBytes(32);
    case "rsa":
      return crypto.generateKeyPairSync("rsa", { modulusLength: spec.bits }).privateKey.export({ format: "der", type: "pkcs8" });
    case "ec":
      return crypto.generateKeyPairSync("ec", { namedCurve: spec.curve }).privateKey.export({ format: "der", type: "pkcs8" });
    case "ed25519":
      return crypto.generateKeyPairSync("ed25519").privateKey.export({ format: "der", type: "pkcs8" });
  }
}

export type KcvMethod = "aes-enc-zero" | "hmac-empty" | "spki-sha256";

/** KCV per DESIGN.md: AES first 3 bytes of AES-ECB(key, 0^16); HMAC first 3 bytes of HMAC(key, ""); asymmetric SHA-256(SPKI DER). */
export function kcvOf(algorithm: string, material: Material): { method: KcvMethod; kcv: string } {
  const spec = ALGORITHMS[algorithm];
  if (material.kind === "private") return { method: "spki-sha256", kcv: kcvPublicKey(material.publicKey) };
  if (spec?.kind === "hmac") return { method: "hmac-empty", kcv: kcvHmac(material.bytes, spec.hash as HmacHash) };
  return { method: "aes-enc-zero", kcv: kcvAes(material.bytes) };
}

// Encrypt ciphertext layout (documented in README.md; tests decrypt it with the vault's copy):
//   0x01 ‖ version id (uint32 BE) ‖ IV (12 bytes) ‖ AES-256-GCM ciphertext ‖ tag (16 bytes); AAD = additional_authenticated_data.
const LAYOUT_V1 = 0x01;

export function symmetricEncrypt(versionId: number, key: Buffer, plaintext: Buffer, aad: Buffer): Buffer {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv(`aes-${key.length * 8}-gcm` as crypto.CipherGCMTypes, key, iv);
  c.setAAD(aad);
  const body = Buffer.concat([c.update(plaintext), c.final()]);
  const header = Buffer.alloc(5);
  header[0] = LAYOUT_V1;
  header.writeUInt32BE(versionId, 1);
  return Buffer.concat([header, iv, body, c.getAuthTag()]);
}

/** The version id a ciphertext names, or undefined when it is not one of ours. */
export function ciphertextVersion(ciphertext: Buffer): number | undefined {
  if (ciphertext.length < 5 + 12 + 16 || ciphertext[0] !== LAYOUT_V1) return undefined;
  return ciphertext.readUInt32BE(1);
}

export function symmetricDecrypt(key: Buffer, ciphertext: Buffer, aad: Buffer): Buffer | undefined {
  const iv = ciphertext.subarray(5, 17);
  const tag = ciphertext.subarray(ciphertext.length - 16);
  const body = ciphertext.subarray(17, ciphertext.length - 16);
  try {
    const d = crypto.createDecipheriv(`aes-${key.length * 8}-gcm` as crypto.CipherGCMTypes, key, iv);
    d.setAAD(aad);
    d.setAuthTag(tag);
    return Buffer.concat([d.update(body), d.final()]);
  } catch {
    return undefined;
  }
}

const DIGEST_INFO_PREFIX: Readonly<Record<string, string>> = {
  sha256: "3031300d060960864801650304020105000420",
  sha384: "3041300d060960864801650304020205000430",
  sha512: "3051300d060960864801650304020305000440",
};

const DIGEST_BYTES: Readonly<Record<string, number>> = { sha256: 32, sha384: 48, sha512: 64 };

function mgf1(hash: string, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  for (let counter = 0; out.length * DIGEST_BYTES[hash]! < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    out.push(crypto.createHash(hash).update(seed).update(c).digest());
  }
  return Buffer.concat(out).subarray(0, length);
}

/** EMSA-PSS (RFC 8017 §9.1.1) over a precomputed digest, salt length = digest length, as Cloud KMS signs. */
function pssEncode(hash: string, digest: Buffer, modBits: number): Buffer {
  const hLen = digest.length;
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = crypto.randomBytes(hLen);
  const h = crypto.createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - 2 * hLen - 2), Buffer.from([0x01]), salt]);
  const mask = mgf1(hash, h, db.length);
  const masked = Buffer.from(db.map((b, i) => b ^ (mask[i] ?? 0)));
  masked[0] = (masked[0] ?? 0) & (0xff >> (8 * emLen - emBits));
  return Buffer.concat([masked, h, Buffer.from([0xbc])]);
}

function bigFrom(b: Buffer): bigint {
  return b.length === 0 ? 0n : BigInt(`0x${b.toString("hex")}`);
}

function modPow(base: bigint, exp: bigint, mod: bigint): bigint {
  let r = 1n;
  let b = base % mod;
  for (let e = exp; e > 0n; e >>= 1n) {
    if (e & 1n) r = (r * b) % mod;
    b = (b * b) % mod;
  }
  return r;
}

const CURVE_ORDER: Readonly<Record<string, bigint>> = {
  prime256v1: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
  secp384r1: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
  secp256k1: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
};

function derInt(n: bigint): Buffer {
  let hex = n.toString(16);
  if (hex.length % 2) hex = `0${hex}`;
  let b = Buffer.from(hex, "hex");
  if ((b[0] ?? 0) & 0x80) b = Buffer.concat([Buffer.from([0]), b]);
  return Buffer.concat([Buffer.from([0x02, b.length]), b]);
}

/**
 * ECDSA over a precomputed digest (Node signs only messages). k·G comes from ECDH (public key of private k); the
 * rest is modular arithmetic. Output is DER, as Cloud KMS returns.
 */
function ecdsaSignDigest(privateKey: KeyObject, curve: string, digest: Buffer): Buffer {
  const n = CURVE_ORDER[curve];
  const jwk = privateKey.export({ format: "jwk" });
  if (!n || !jwk.d) throw new Error("unsupported curve");
  const d = bigFrom(Buffer.from(jwk.d, "base64url"));
  const nBytes = Math.ceil(n.toString(16).length / 2);
  let z = bigFrom(digest.subarray(0, nBytes));
  if (digest.length * 8 > n.toString(2).length) z >>= BigInt(Math.min(digest.length, nBytes) * 8 - n.toString(2).length);
  for (;;) {
    const k = (bigFrom(crypto.randomBytes(nBytes + 8)) % (n - 1n)) + 1n;
    const ecdh = crypto.createECDH(curve);
    ecdh.setPrivateKey(Buffer.from(k.toString(16).padStart(nBytes * 2, "0"), "hex"));
    const point = ecdh.getPublicKey();
    const r = bigFrom(point.subarray(1, 1 + nBytes)) % n;
    if (r === 0n) continue;
    const s = (modPow(k, n - 2n, n) * ((z + r * d) % n)) % n;
    if (s === 0n) continue;
    const body = Buffer.concat([derInt(r), derInt(s)]);
    return Buffer.concat([Buffer.from([0x30, body.length]), body]);
  }
}

/** AsymmetricSign: `data` is signed as a message; otherwise `digest` is a precomputed hash of the algorithm's kind. */
export function asymmetricSign(spec: AlgorithmSpec, privateKey: KeyObject, input: { data?: Buffer; digest?: Buffer }): Buffer {
  if (spec.kind === "ed25519") return crypto.sign(null, input.data ?? Buffer.alloc(0), privateKey);
  if (spec.kind === "rsa" && spec.padding === "raw") {
    return crypto.privateEncrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING }, input.data ?? Buffer.alloc(0));
  }
  if (spec.kind === "rsa" && spec.padding !== "oaep") {
    const hash = spec.hash ?? "sha256";
    if (input.data) {
      return crypto.sign(hash, input.data, spec.padding === "pss"
        ? { key: privateKey, padding: crypto.constants.RSA_PKCS1_PSS_PADDING, saltLength: DIGEST_BYTES[hash] }
        : privateKey);
    }
    const digest = input.digest ?? Buffer.alloc(0);
    if (spec.padding === "pkcs1") {
      const info = Buffer.concat([Buffer.from(DIGEST_INFO_PREFIX[hash] ?? "", "hex"), digest]);
      return crypto.privateEncrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_PADDING }, info);
    }
    const em = pssEncode(hash, digest, spec.bits);
    return crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_NO_PADDING }, Buffer.concat([Buffer.alloc(spec.bits / 8 - em.length), em]));
  }
  if (spec.kind === "ec") {
    const digest = input.data ? crypto.createHash(spec.hash).update(input.data).digest() : input.digest ?? Buffer.alloc(0);
    return ecdsaSignDigest(privateKey, spec.curve, digest);
  }
  throw new Error("not a signing algorithm");
}

export function digestLength(hash: string): number | undefined {
  return DIGEST_BYTES[hash];
}
