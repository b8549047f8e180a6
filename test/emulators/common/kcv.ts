/**
 * Key check values, as MCKO defines them (DESIGN.md, BYOK.md §7). The formats must never change: tests compare them
 * with the vault's.
 * - AES ("enc-zero"): first 3 bytes of AES-ECB(key, one zero block), hex.
 * - HMAC: first 3 bytes of HMAC(key, empty message), hex, with the key's own hash (HMAC_256 → SHA-256, …).
 * - RSA / EC: SHA-256 of the DER SubjectPublicKeyInfo, hex (64 chars).
 */
import { createCipheriv, createHash, createHmac, createPublicKey, type KeyObject } from "node:crypto";

export function kcvAes(key: Buffer): string {
  if (![16, 24, 32].includes(key.length)) throw new RangeError(`AES key of ${key.length} bytes`);
  const c = createCipheriv(`aes-${key.length * 8}-ecb`, key, null);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(Buffer.alloc(16)), c.final()]).subarray(0, 3).toString("hex");
}

export type HmacHash = "sha224" | "sha256" | "sha384" | "sha512";

export function kcvHmac(key: Buffer, hash: HmacHash): string {
  return createHmac(hash, key).digest().subarray(0, 3).toString("hex");
}

/** Accepts a private or a public key. */
export function kcvPublicKey(key: KeyObject): string {
  const pub = key.type === "private" ? createPublicKey(key) : key;
  return createHash("sha256").update(pub.export({ format: "der", type: "spki" })).digest("hex");
}
