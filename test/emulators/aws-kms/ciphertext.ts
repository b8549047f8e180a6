/**
 * The emulator's symmetric CiphertextBlob (the real AWS layout is undocumented, BYOK.md §2.8). Documented here and in
 * README.md so that a test can decrypt, with the vault's copy of the key, what the emulator encrypted, and the reverse:
 *
 *   offset  size  field
 *   0       1     version, 0x01
 *   1       36    key id (the UUID, ASCII)
 *   37      32    KeyMaterialId (the 64-hex id, as 32 raw bytes)
 *   69      12    AES-GCM IV
 *   81      16    AES-GCM tag
 *   97      n     AES-256-GCM ciphertext of the plaintext
 *
 * Key = the 32-byte key material; AAD = encodeEncryptionContext(EncryptionContext).
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";

export const BLOB_VERSION = 1;
const HEADER = 1 + 36 + 32 + 12 + 16;

/**
 * AAD for an encryption context: empty for no context; otherwise, for each pair in ascending order of the key's UTF-8
 * bytes: u16 big-endian length of key ‖ key ‖ u16 big-endian length of value ‖ value (UTF-8).
 */
export function encodeEncryptionContext(context: Record<string, string> | undefined): Buffer {
  if (!context) return Buffer.alloc(0);
  const entries = Object.entries(context).map(([k, v]) => [Buffer.from(k, "utf8"), Buffer.from(v, "utf8")] as const);
  entries.sort((a, b) => Buffer.compare(a[0], b[0]));
  const parts: Buffer[] = [];
  for (const [k, v] of entries) {
    const kl = Buffer.alloc(2);
    kl.writeUInt16BE(k.length);
    const vl = Buffer.alloc(2);
    vl.writeUInt16BE(v.length);
    parts.push(kl, k, vl, v);
  }
  return Buffer.concat(parts);
}

export interface ParsedBlob {
  keyId: string;
  keyMaterialId: string;
  iv: Buffer;
  tag: Buffer;
  ciphertext: Buffer;
}

/** Throws RangeError when the blob is not in this layout. */
export function parseCiphertextBlob(blob: Buffer): ParsedBlob {
  if (blob.length < HEADER || blob[0] !== BLOB_VERSION) throw new RangeError("not an MCKO emulator ciphertext blob");
  return {
    keyId: blob.subarray(1, 37).toString("ascii"),
    keyMaterialId: blob.subarray(37, 69).toString("hex"),
    iv: blob.subarray(69, 81),
    tag: blob.subarray(81, 97),
    ciphertext: blob.subarray(97),
  };
}

export function encryptBlob(
  keyId: string,
  keyMaterialId: string,
  material: Buffer,
  plaintext: Buffer,
  context?: Record<string, string>,
): Buffer {
  if (keyId.length !== 36) throw new RangeError("key id must be a 36-character UUID");
  const iv = randomBytes(12);
  const c = createCipheriv("aes-256-gcm", material, iv);
  c.setAAD(encodeEncryptionContext(context));
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return Buffer.concat([
    Buffer.from([BLOB_VERSION]),
    Buffer.from(keyId, "ascii"),
    Buffer.from(keyMaterialId, "hex"),
    iv,
    c.getAuthTag(),
    ct,
  ]);
}

/** Throws when the blob is malformed, the material is wrong or the context differs. */
export function decryptBlob(blob: Buffer, material: Buffer, context?: Record<string, string>): Buffer {
  const p = parseCiphertextBlob(blob);
  const d = createDecipheriv("aes-256-gcm", material, p.iv);
  d.setAAD(encodeEncryptionContext(context));
  d.setAuthTag(p.tag);
  return Buffer.concat([d.update(p.ciphertext), d.final()]);
}
