/**
 * Key check values and the RFC 5649 wrap, computed in Node. Shared by the software backend (which does everything
 * here) and the pkcs11 backend (which uses only the public-key parts: SPKI building and hashing, and the RSA step of
 * a BYOK wrap over an ephemeral key). Also usable by emulators and tests to prove that material which arrived
 * somewhere is the vault's key.
 *
 * The KCV formats are an invariant: they are stored in the vault and shown to people, so they must never change.
 * - `enc-zero` (AES): first 3 bytes of AES-ECB(key, 16 zero bytes) — PKCS#11 `CKA_CHECK_VALUE`.
 * - `hmac-empty` (HMAC keys): first 3 bytes of HMAC(key, empty message) with the key's own hash (HMAC_SHA256 →
 *   SHA-256, HMAC_SHA384 → SHA-384, HMAC_SHA512 → SHA-512), as the emulators (test/emulators/common/kcv.ts) do.
 * - `spki-sha256` (RSA, EC): SHA-256 of the public key's DER SubjectPublicKeyInfo, 32 bytes.
 * All are lower-case hex.
 */
import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  createPrivateKey,
  createPublicKey,
  type KeyObject,
} from "node:crypto";
import {
  BYOK_FORMATS,
  HsmError,
  KEY_ALGORITHMS,
  keyFamily,
  symmetricKeyBytes,
  type AesGcmRequest,
  type ByokFormat,
  type ByokWrapRequest,
  type KeyAlgorithm,
  type WrappedKey,
} from "./hsm.js";

/** RFC 5649 §3 alternative initial value (the 32-bit MLI is appended by the cipher). */
export const KWP_IV = Buffer.from("A65959A6", "hex");

function kwpCipherName(kek: Buffer): string {
  switch (kek.length) {
    case 16:
      return "id-aes128-wrap-pad";
    case 24:
      return "id-aes192-wrap-pad";
    case 32:
      return "id-aes256-wrap-pad";
    default:
      throw new HsmError("HSM_INVALID_INPUT", `an AES key-wrapping key must be 16, 24 or 32 bytes, got ${kek.length}`);
  }
}

/** AES key wrap with padding (RFC 5649) of `plaintext` under `kek`. */
export function kwpWrap(kek: Buffer, plaintext: Buffer): Buffer {
  if (plaintext.length === 0) throw new HsmError("HSM_INVALID_INPUT", "cannot wrap an empty key");
  const cipher = createCipheriv(kwpCipherName(kek), kek, KWP_IV);
  return Buffer.concat([cipher.update(plaintext), cipher.final()]);
}

/**
 * Reverses `kwpWrap`. The returned buffer holds plaintext: the caller zeroes it. A blob that does not unwrap under
 * `kek` (wrong key, corrupted, truncated) is `HSM_UNWRAP_FAILED`.
 */
export function kwpUnwrap(kek: Buffer, blob: Buffer): Buffer {
  const cipherName = kwpCipherName(kek);
  if (blob.length < 16 || blob.length % 8 !== 0) {
    throw new HsmError("HSM_UNWRAP_FAILED", `a wrapped key is a multiple of 8 bytes and at least 16, got ${blob.length}`);
  }
  const decipher = createDecipheriv(cipherName, kek, KWP_IV);
  const parts: Buffer[] = [];
  try {
    parts.push(decipher.update(blob));
    parts.push(decipher.final());
    return Buffer.concat(parts);
  } catch (cause) {
    throw new HsmError("HSM_UNWRAP_FAILED", "the blob does not unwrap under this key (integrity check failed)", { cause });
  } finally {
    for (const p of parts) p.fill(0);
  }
}

/** `enc-zero` KCV of an AES key (16, 24 or 32 bytes). */
export function aesKcv(key: Buffer): string {
  if (key.length !== 16 && key.length !== 24 && key.length !== 32) {
    throw new HsmError("HSM_INVALID_INPUT", `an AES key is 16, 24 or 32 bytes, got ${key.length}`);
  }
  const cipher = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  cipher.setAutoPadding(false);
  const block = Buffer.concat([cipher.update(Buffer.alloc(16)), cipher.final()]);
  return block.subarray(0, 3).toString("hex");
}

export type HmacHash = "sha256" | "sha384" | "sha512";

/** The hash an HMAC algorithm's KCV (and use) goes with. */
export function hmacHash(algorithm: KeyAlgorithm): HmacHash {
  switch (algorithm) {
    case "HMAC_SHA384":
      return "sha384";
    case "HMAC_SHA512":
      return "sha512";
    case "HMAC_SHA256":
      return "sha256";
    default:
      throw new HsmError("HSM_INVALID_INPUT", `${algorithm} is not an HMAC algorithm`);
  }
}

/** `hmac-empty` KCV of an HMAC key: HMAC with `hash` over the empty message, first 3 bytes. */
export function hmacKcv(key: Buffer, hash: HmacHash): string {
  return createHmac(hash, key).update(Buffer.alloc(0)).digest().subarray(0, 3).toString("hex");
}

/** `spki-sha256` KCV of a public key given as DER SPKI. */
export function spkiKcv(spkiDer: Buffer): string {
  return createHash("sha256").update(spkiDer).digest("hex");
}

/** Which Node key type and size/curve each asymmetric algorithm has. */
export function asymmetricParams(
  algorithm: KeyAlgorithm,
): { type: "rsa"; modulusBits: number } | { type: "ec"; namedCurve: "P-256" | "P-384" } | undefined {
  switch (algorithm) {
    case "RSA_2048":
      return { type: "rsa", modulusBits: 2048 };
    case "RSA_3072":
      return { type: "rsa", modulusBits: 3072 };
    case "RSA_4096":
      return { type: "rsa", modulusBits: 4096 };
    case "EC_P256":
      return { type: "ec", namedCurve: "P-256" };
    case "EC_P384":
      return { type: "ec", namedCurve: "P-384" };
    default:
      return undefined;
  }
}

/**
 * Parses PKCS#8 DER material of an RSA or EC `algorithm`, checks that it is that algorithm (type, modulus size or
 * curve) and returns its public key as DER SPKI. `HSM_UNWRAP_FAILED` if the material is not such a key: an
 * integrity-checked unwrap that yields the wrong kind of key means the blob was not made for this algorithm.
 */
export function publicSpkiFromPkcs8(algorithm: KeyAlgorithm, pkcs8: Buffer): Buffer {
  const params = asymmetricParams(algorithm);
  if (params === undefined) throw new HsmError("HSM_INVALID_INPUT", `${algorithm} is not an asymmetric algorithm`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key: trimDerPadding(pkcs8), format: "der", type: "pkcs8" });
  } catch (cause) {
    throw new HsmError("HSM_UNWRAP_FAILED", `the unwrapped material is not a PKCS#8 private key (${algorithm})`, { cause });
  }
  const details = privateKey.asymmetricKeyDetails;
  const matches =
    params.type === "rsa"
      ? privateKey.asymmetricKeyType === "rsa" && details?.modulusLength === params.modulusBits
      : privateKey.asymmetricKeyType === "ec" && details?.namedCurve === nodeCurveName(params.namedCurve);
  if (!matches) {
    throw new HsmError("HSM_UNWRAP_FAILED", `the unwrapped material is not an ${algorithm} private key`);
  }
  return createPublicKey(privateKey).export({ type: "spki", format: "der" });
}

function nodeCurveName(curve: "P-256" | "P-384"): string {
  return curve === "P-256" ? "prime256v1" : "secp384r1";
}

/**
 * The KCV of plaintext material as the vault records it: raw key bytes for AES and HMAC, PKCS#8 DER for RSA and EC.
 * The caller still owns (and zeroes) `material`.
 */
export function kcvOfMaterial(algorithm: KeyAlgorithm, material: Buffer): string {
  const family = keyFamily(algorithm);
  if (family === "AES" || family === "HMAC") {
    const expected = symmetricKeyBytes(algorithm);
    if (material.length !== expected) {
      throw new HsmError("HSM_UNWRAP_FAILED", `${algorithm} material is ${expected} bytes, got ${material.length}`);
    }
    return family === "AES" ? aesKcv(material) : hmacKcv(material, hmacHash(algorithm));
  }
  return spkiKcv(publicSpkiFromPkcs8(algorithm, material));
}

export interface RsaPublicParts {
  readonly modulus: Buffer;
  readonly publicExponent: Buffer;
  readonly modulusBytes: number;
}

/** RSA public key parts (big-endian, no leading zeros as in JWK) of a DER SPKI; `HSM_INVALID_INPUT` if not RSA. */
export function rsaPublicParts(spkiDer: Buffer): RsaPublicParts {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: spkiDer, format: "der", type: "spki" });
  } catch (cause) {
    throw new HsmError("HSM_INVALID_INPUT", "the wrapping key is not a DER SubjectPublicKeyInfo", { cause });
  }
  if (key.asymmetricKeyType !== "rsa") {
    throw new HsmError("HSM_INVALID_INPUT", `the wrapping key must be RSA, got ${key.asymmetricKeyType ?? "unknown"}`);
  }
  const jwk = key.export({ format: "jwk" });
  if (typeof jwk.n !== "string" || typeof jwk.e !== "string") {
    throw new HsmError("HSM_INVALID_INPUT", "the RSA wrapping key has no modulus or exponent");
  }
  const modulus = Buffer.from(jwk.n, "base64url");
  return { modulus, publicExponent: Buffer.from(jwk.e, "base64url"), modulusBytes: modulus.length };
}

/** DER SPKI of an RSA public key from its modulus and public exponent (big-endian unsigned). */
export function rsaSpkiFromParts(modulus: Buffer, publicExponent: Buffer): Buffer {
  const key = createPublicKey({
    key: { kty: "RSA", n: stripZeros(modulus).toString("base64url"), e: stripZeros(publicExponent).toString("base64url") },
    format: "jwk",
  });
  return key.export({ type: "spki", format: "der" });
}

/** DER `OBJECT IDENTIFIER` of each curve, as PKCS#11 `CKA_EC_PARAMS` holds it. */
export const EC_PARAMS_DER = {
  "P-256": Buffer.from("06082a8648ce3d030107", "hex"),
  "P-384": Buffer.from("06052b81040022", "hex"),
} as const;

/**
 * DER SPKI of an EC public key from PKCS#11's `CKA_EC_POINT` (a DER OCTET STRING around the uncompressed point, or
 * the bare point, as some tokens return it).
 */
export function ecSpkiFromPoint(namedCurve: "P-256" | "P-384", ecPoint: Buffer): Buffer {
  const coordinateBytes = namedCurve === "P-256" ? 32 : 48;
  const pointLength = 1 + 2 * coordinateBytes;
  const point = ecPoint.length === pointLength ? ecPoint : ecPoint.subarray(ecPoint.length - pointLength);
  if (point.length !== pointLength || point[0] !== 0x04) {
    throw new HsmError("HSM_INTERNAL", `the token returned an EC point that is not an uncompressed ${namedCurve} point`);
  }
  const key = createPublicKey({
    key: {
      kty: "EC",
      crv: namedCurve,
      x: point.subarray(1, 1 + coordinateBytes).toString("base64url"),
      y: point.subarray(1 + coordinateBytes).toString("base64url"),
    },
    format: "jwk",
  });
  return key.export({ type: "spki", format: "der" });
}

function stripZeros(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0) i++;
  return b.subarray(i);
}

export type OaepHash = "sha1" | "sha256";

/** The OAEP hash (and MGF1 hash) of a BYOK format. */
export function byokOaepHash(format: ByokFormat): OaepHash {
  return format.endsWith("SHA1") ? "sha1" : "sha256";
}

/** Largest message RSA-OAEP can carry under a modulus of `modulusBytes` with `hash`. */
export function oaepCapacity(modulusBytes: number, hash: OaepHash): number {
  const hashBytes = hash === "sha1" ? 20 : 32;
  return modulusBytes - 2 * hashBytes - 2;
}

/** Input checks both backends apply the same way, so the contract suite sees the same errors. */
export function assertKeyAlgorithm(algorithm: unknown): asserts algorithm is KeyAlgorithm {
  if (typeof algorithm !== "string" || !(KEY_ALGORITHMS as readonly string[]).includes(algorithm)) {
    throw new HsmError("HSM_INVALID_INPUT", `unknown key algorithm ${JSON.stringify(algorithm)}`);
  }
}

export function assertByokFormat(format: unknown): asserts format is ByokFormat {
  if (typeof format !== "string" || !(BYOK_FORMATS as readonly string[]).includes(format)) {
    throw new HsmError("HSM_INVALID_INPUT", `unknown BYOK format ${JSON.stringify(format)}`);
  }
}

/** Largest `randomBytes` request; more is a caller bug, not a use case. */
export const MAX_RANDOM_BYTES = 65536;

export function assertRandomLength(length: number): void {
  if (!Number.isInteger(length) || length < 1 || length > MAX_RANDOM_BYTES) {
    throw new HsmError("HSM_INVALID_INPUT", `randomBytes length must be an integer from 1 to ${MAX_RANDOM_BYTES}`);
  }
}

/** Checks an `Hsm.aesGcmEncrypt` request: an AES key version, a 12-byte IV, 1-1024 bytes of plaintext. */
export function checkAesGcmRequest(key: WrappedKey, request: AesGcmRequest): void {
  assertKeyAlgorithm(key.algorithm);
  if (keyFamily(key.algorithm) !== "AES") throw new HsmError("HSM_INVALID_INPUT", `AES-GCM needs an AES key, not ${key.algorithm}`);
  if (!Buffer.isBuffer(request.iv) || request.iv.length !== 12) throw new HsmError("HSM_INVALID_INPUT", "the AES-GCM IV must be 12 bytes");
  if (!Buffer.isBuffer(request.plaintext) || request.plaintext.length < 1 || request.plaintext.length > 1024) {
    throw new HsmError("HSM_INVALID_INPUT", "the AES-GCM plaintext must be 1-1024 bytes");
  }
}

/** Smallest keystore RSA wrapping key accepted (every cloud's import key is 2048 bits or more). */
export const MIN_WRAPPING_KEY_BITS = 2048;

/**
 * Checks a BYOK request against the key to wrap and returns the wrapping key's parts. `RSA_OAEP_*` formats carry
 * only symmetric keys (PKCS#8 private keys do not fit in one RSA block; tokens refuse to RSA-wrap private keys).
 */
export function checkByokRequest(
  key: WrappedKey,
  request: ByokWrapRequest,
  parse: (spki: Buffer) => RsaPublicParts = rsaPublicParts,
): RsaPublicParts & { hash: OaepHash; isKwp: boolean } {
  assertKeyAlgorithm(key.algorithm);
  assertByokFormat(request.format);
  const parts = parse(request.wrappingKeySpki);
  if (parts.modulusBytes * 8 < MIN_WRAPPING_KEY_BITS) {
    throw new HsmError(
      "HSM_INVALID_INPUT",
      `the RSA wrapping key has ${parts.modulusBytes * 8} bits; at least ${MIN_WRAPPING_KEY_BITS} are required`,
    );
  }
  const hash = byokOaepHash(request.format);
  const isKwp = request.format.startsWith("RSA_AES_KWP_");
  if (!isKwp) {
    const family = keyFamily(key.algorithm);
    if (family !== "AES" && family !== "HMAC") {
      throw new HsmError(
        "HSM_INVALID_INPUT",
        `${request.format} can only carry AES and HMAC keys; use RSA_AES_KWP_* for ${key.algorithm}`,
      );
    }
    const bytes = symmetricKeyBytes(key.algorithm) ?? 0;
    if (bytes > oaepCapacity(parts.modulusBytes, hash)) {
      throw new HsmError("HSM_INVALID_INPUT", `${key.algorithm} does not fit in one ${request.format} block`);
    }
  }
  return { ...parts, hash, isKwp };
}

/**
 * SoftHSM2 2.6.1's C_WrapKey with CKM_AES_KEY_WRAP_PAD zero-pads the key data to a multiple of 8 bytes before
 * wrapping and records the padded length, so its blobs of PKCS#8 keys unwrap (correctly, per RFC 5649) to the DER
 * followed by up to 7 zero bytes. Returns the DER without that padding (a view of `material`); anything else is
 * returned unchanged.
 */
export function trimDerPadding(material: Buffer): Buffer {
  if (material.length < 2 || material[0] !== 0x30) return material;
  const first = material[1] ?? 0;
  let length: number;
  let header: number;
  if (first < 0x80) {
    length = first;
    header = 2;
  } else {
    const octets = first & 0x7f;
    if (octets < 1 || octets > 3 || material.length < 2 + octets) return material;
    length = 0;
    for (let i = 0; i < octets; i++) length = length * 256 + (material[2 + i] ?? 0);
    header = 2 + octets;
  }
  const total = header + length;
  if (total >= material.length || material.length - total > 7) return material;
  for (let i = total; i < material.length; i++) if (material[i] !== 0) return material;
  return material.subarray(0, total);
}

/**
 * Internal secrets (wrapSecret) are framed before the RFC 5649 wrap: the secret, 0x80, then zeros up to a multiple
 * of 8 bytes (ISO/IEC 7816-4 padding). The frame keeps the exact length through SoftHSM2's KWP wrap, which loses
 * it for lengths that are not a multiple of 8 (see trimDerPadding), and is the same in both backends.
 */
export function frameSecret(secret: Buffer): Buffer {
  const framed = Buffer.alloc(Math.floor(secret.length / 8) * 8 + 8);
  secret.copy(framed);
  framed[secret.length] = 0x80;
  return framed;
}

/** Reverses `frameSecret` into a new buffer; the caller zeroes both. `HSM_UNWRAP_FAILED` if there is no frame. */
export function unframeSecret(framed: Buffer): Buffer {
  let end = framed.length - 1;
  while (end >= 0 && framed[end] === 0) end--;
  if (end < 0 || framed[end] !== 0x80 || framed.length - end > 8 || framed.length % 8 !== 0) {
    throw new HsmError("HSM_UNWRAP_FAILED", "the blob is not a wrapped internal secret");
  }
  return Buffer.from(framed.subarray(0, end));
}
