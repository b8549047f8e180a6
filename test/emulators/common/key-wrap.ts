/**
 * The wrapping primitives the clouds use for BYOK (BYOK.md §1): RSA-OAEP with an empty label and MGF1 = the OAEP hash,
 * AES key wrap with padding (RFC 5649, OpenSSL `id-aesN-wrap-pad`), AES key wrap (RFC 3394), and their composition
 * CKM_RSA_AES_KEY_WRAP = OAEP(ephemeral AES key) ‖ KWP(material). Used by the emulators to unwrap and by tests to wrap
 * as a real client would.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from "node:crypto";

export type OaepHash = "sha1" | "sha256" | "sha384" | "sha512";

/** Raised when a blob cannot be unwrapped (bad padding, wrong key, integrity check failed). */
export class UnwrapError extends Error {
  override readonly name = "UnwrapError";
}

const KWP_IV = Buffer.from("A65959A6", "hex");
const KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

function aesBits(kek: Buffer): number {
  if (![16, 24, 32].includes(kek.length)) throw new UnwrapError(`AES key wrap key of ${kek.length} bytes`);
  return kek.length * 8;
}

/** RFC 5649 wrap. */
export function kwpWrap(kek: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(`id-aes${aesBits(kek)}-wrap-pad`, kek, KWP_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

/** RFC 5649 unwrap; throws UnwrapError when the integrity check fails. */
export function kwpUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(`id-aes${aesBits(kek)}-wrap-pad`, kek, KWP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (e) {
    if (e instanceof UnwrapError) throw e;
    throw new UnwrapError("AES key unwrap (RFC 5649) failed");
  }
}

/** RFC 3394 wrap (data a multiple of 8 bytes, at least 16). */
export function kwWrap(kek: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(`id-aes${aesBits(kek)}-wrap`, kek, KW_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

export function kwUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(`id-aes${aesBits(kek)}-wrap`, kek, KW_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (e) {
    if (e instanceof UnwrapError) throw e;
    throw new UnwrapError("AES key unwrap (RFC 3394) failed");
  }
}

export function oaepEncrypt(publicKey: KeyObject, hash: OaepHash, data: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
}

export function oaepDecrypt(privateKey: KeyObject, hash: OaepHash, data: Buffer): Buffer {
  try {
    return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
  } catch {
    throw new UnwrapError("RSA-OAEP decryption failed");
  }
}

export function rsaModulusBytes(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new UnwrapError("not an RSA key");
  return Math.ceil(bits / 8);
}

/** CKM_RSA_AES_KEY_WRAP: OAEP(ephemeral AES key) ‖ KWP(material). A fresh 32-byte ephemeral key unless one is given. */
export function rsaAesKeyWrap(publicKey: KeyObject, hash: OaepHash, material: Buffer, ephemeral?: Buffer): Buffer {
  const aes = ephemeral ?? randomBytes(32);
  return Buffer.concat([oaepEncrypt(publicKey, hash, aes), kwpWrap(aes, material)]);
}

/** Splits at the modulus length, OAEP-decrypts the ephemeral key, KWP-unwraps the rest (what the clouds do). */
export function rsaAesKeyUnwrap(privateKey: KeyObject, hash: OaepHash, blob: Buffer): Buffer {
  const n = rsaModulusBytes(privateKey);
  if (blob.length <= n + 8) throw new UnwrapError(`wrapped blob of ${blob.length} bytes is too short for RSA-${n * 8}`);
  const aes = oaepDecrypt(privateKey, hash, blob.subarray(0, n));
  try {
    return kwpUnwrap(aes, blob.subarray(n));
  } finally {
    aes.fill(0);
  }
}
