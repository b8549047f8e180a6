// Key Protect cryptography: the import-token check (BYOK.md §5.3) and the wrap ciphertext layout (README.md).
import crypto, { type KeyObject } from "node:crypto";
import { kcvAes } from "../common/kcv.js";

/** RSA-OAEP-SHA256 (MGF1-SHA256, empty label) with the import token's private key; throws when it does not decrypt. */
export function decryptTokenPayload(privateKey: KeyObject, payload: Buffer): Buffer {
  return crypto.privateDecrypt({ key: privateKey, padding: crypto.constants.RSA_PKCS1_OAEP_PADDING, oaepHash: "sha256" }, payload);
}

const gcm = (key: Buffer): crypto.CipherGCMTypes => `aes-${key.length * 8}-gcm` as crypto.CipherGCMTypes;

/**
 * encryptedNonce = AES-GCM(key = the imported material, iv, plaintext = the token's nonce) with the 16-byte tag appended.
 * "iv" when the GCM check fails (wrong material or IV), "nonce" when it decrypts to another nonce, "ok" otherwise.
 */
export function checkEncryptedNonce(material: Buffer, iv: Buffer, encryptedNonce: Buffer, nonce: Buffer): "ok" | "iv" | "nonce" {
  if (![16, 24, 32].includes(material.length) || encryptedNonce.length < 16 || iv.length === 0) return "iv";
  try {
    const d = crypto.createDecipheriv(gcm(material), material, iv);
    d.setAuthTag(encryptedNonce.subarray(encryptedNonce.length - 16));
    const plain = Buffer.concat([d.update(encryptedNonce.subarray(0, encryptedNonce.length - 16)), d.final()]);
    return plain.equals(nonce) ? "ok" : "nonce";
  } catch {
    return "iv";
  }
}

/** KCV of a version's material: AES enc-zero for 16/24/32-byte material, none otherwise (standard keys of other sizes). */
export function kcvOf(material: Buffer): string | undefined {
  return [16, 24, 32].includes(material.length) ? kcvAes(material) : undefined;
}

const aadBytes = (aad: readonly string[] | undefined): Buffer | undefined =>
  aad && aad.length > 0 ? Buffer.from(JSON.stringify(aad), "utf8") : undefined;

// Wrap ciphertext layout (README.md):
//   base64( JSON {"ciphertext": b64(AES-GCM(ct) ‖ tag16), "iv": b64(12 bytes), "version": "4.0.0",
//                 "handle": <key id>, "keyVersion": <version id>} )
//   key = the key version's material (AES-128/192/256 by its length); AAD = UTF-8 of JSON.stringify(aad) when aad is given.
export function wrap(keyId: string, versionId: string, material: Buffer, plaintext: Buffer, aad?: readonly string[]): string {
  const iv = crypto.randomBytes(12);
  const c = crypto.createCipheriv(gcm(material), material, iv);
  const a = aadBytes(aad);
  if (a) c.setAAD(a);
  const body = Buffer.concat([c.update(plaintext), c.final(), c.getAuthTag()]);
  const doc = { ciphertext: body.toString("base64"), iv: iv.toString("base64"), version: "4.0.0", handle: keyId, keyVersion: versionId };
  return Buffer.from(JSON.stringify(doc)).toString("base64");
}

export interface ParsedCiphertext {
  handle: string;
  keyVersion: string;
  iv: Buffer;
  body: Buffer;
}

export function parseCiphertext(ciphertext: string): ParsedCiphertext | undefined {
  try {
    const doc = JSON.parse(Buffer.from(ciphertext, "base64").toString("utf8")) as Record<string, unknown>;
    const { handle, keyVersion, iv, ciphertext: body } = doc;
    if (typeof handle !== "string" || typeof keyVersion !== "string" || typeof iv !== "string" || typeof body !== "string") return undefined;
    return { handle, keyVersion, iv: Buffer.from(iv, "base64"), body: Buffer.from(body, "base64") };
  } catch {
    return undefined;
  }
}

export function unwrap(material: Buffer, parsed: ParsedCiphertext, aad?: readonly string[]): Buffer | undefined {
  if (parsed.body.length < 16) return undefined;
  try {
    const d = crypto.createDecipheriv(gcm(material), material, parsed.iv);
    const a = aadBytes(aad);
    if (a) d.setAAD(a);
    d.setAuthTag(parsed.body.subarray(parsed.body.length - 16));
    return Buffer.concat([d.update(parsed.body.subarray(0, parsed.body.length - 16)), d.final()]);
  } catch {
    return undefined;
  }
}
