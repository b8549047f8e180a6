// CryptoKeyVersionAlgorithm facts the emulator needs: which purpose an algorithm belongs to and what its
// key material looks like (BYOK.md §4.3/§4.4; googleapis resources.proto).

export type Purpose = "ENCRYPT_DECRYPT" | "ASYMMETRIC_SIGN" | "ASYMMETRIC_DECRYPT" | "RAW_ENCRYPT_DECRYPT" | "MAC" | "AES_WRAPPING";

export type AlgorithmSpec =
  | { purpose: "ENCRYPT_DECRYPT" | "RAW_ENCRYPT_DECRYPT" | "AES_WRAPPING"; kind: "aes"; bytes: 16 | 32 }
  | { purpose: "MAC"; kind: "hmac"; hash: string; minBytes: number }
  | { purpose: "ASYMMETRIC_SIGN"; kind: "rsa"; bits: number; hash: string | null; padding: "pss" | "pkcs1" | "raw" }
  | { purpose: "ASYMMETRIC_DECRYPT"; kind: "rsa"; bits: number; hash: string; padding: "oaep" }
  | { purpose: "ASYMMETRIC_SIGN"; kind: "ec"; curve: string; hash: string }
  | { purpose: "ASYMMETRIC_SIGN"; kind: "ed25519" };

const rsaSign = (bits: number, hash: string | null, padding: "pss" | "pkcs1" | "raw"): AlgorithmSpec => ({
  purpose: "ASYMMETRIC_SIGN", kind: "rsa", bits, hash, padding,
});
const rsaDecrypt = (bits: number, hash: string): AlgorithmSpec => ({ purpose: "ASYMMETRIC_DECRYPT", kind: "rsa", bits, hash, padding: "oaep" });

export const ALGORITHMS: Readonly<Record<string, AlgorithmSpec>> = {
  GOOGLE_SYMMETRIC_ENCRYPTION: { purpose: "ENCRYPT_DECRYPT", kind: "aes", bytes: 32 },
  AES_128_GCM: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 16 },
  AES_256_GCM: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 32 },
  AES_128_CBC: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 16 },
  AES_256_CBC: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 32 },
  AES_128_CTR: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 16 },
  AES_256_CTR: { purpose: "RAW_ENCRYPT_DECRYPT", kind: "aes", bytes: 32 },
  AES_256_KWP: { purpose: "AES_WRAPPING", kind: "aes", bytes: 32 },
  RSA_SIGN_PSS_2048_SHA256: rsaSign(2048, "sha256", "pss"),
  RSA_SIGN_PSS_3072_SHA256: rsaSign(3072, "sha256", "pss"),
  RSA_SIGN_PSS_4096_SHA256: rsaSign(4096, "sha256", "pss"),
  RSA_SIGN_PSS_4096_SHA512: rsaSign(4096, "sha512", "pss"),
  RSA_SIGN_PKCS1_2048_SHA256: rsaSign(2048, "sha256", "pkcs1"),
  RSA_SIGN_PKCS1_3072_SHA256: rsaSign(3072, "sha256", "pkcs1"),
  RSA_SIGN_PKCS1_4096_SHA256: rsaSign(4096, "sha256", "pkcs1"),
  RSA_SIGN_PKCS1_4096_SHA512: rsaSign(4096, "sha512", "pkcs1"),
  RSA_SIGN_RAW_PKCS1_2048: rsaSign(2048, null, "raw"),
  RSA_SIGN_RAW_PKCS1_3072: rsaSign(3072, null, "raw"),
  RSA_SIGN_RAW_PKCS1_4096: rsaSign(4096, null, "raw"),
  RSA_DECRYPT_OAEP_2048_SHA256: rsaDecrypt(2048, "sha256"),
  RSA_DECRYPT_OAEP_3072_SHA256: rsaDecrypt(3072, "sha256"),
  RSA_DECRYPT_OAEP_4096_SHA256: rsaDecrypt(4096, "sha256"),
  RSA_DECRYPT_OAEP_4096_SHA512: rsaDecrypt(4096, "sha512"),
  RSA_DECRYPT_OAEP_2048_SHA1: rsaDecrypt(2048, "sha1"),
  RSA_DECRYPT_OAEP_3072_SHA1: rsaDecrypt(3072, "sha1"),
  RSA_DECRYPT_OAEP_4096_SHA1: rsaDecrypt(4096, "sha1"),
  EC_SIGN_P256_SHA256: { purpose: "ASYMMETRIC_SIGN", kind: "ec", curve: "prime256v1", hash: "sha256" },
  EC_SIGN_P384_SHA384: { purpose: "ASYMMETRIC_SIGN", kind: "ec", curve: "secp384r1", hash: "sha384" },
  EC_SIGN_SECP256K1_SHA256: { purpose: "ASYMMETRIC_SIGN", kind: "ec", curve: "secp256k1", hash: "sha256" },
  EC_SIGN_ED25519: { purpose: "ASYMMETRIC_SIGN", kind: "ed25519" },
  // Google does not publish minimum HMAC import lengths; the emulator accepts 16..1024 bytes.
  HMAC_SHA1: { purpose: "MAC", kind: "hmac", hash: "sha1", minBytes: 16 },
  HMAC_SHA224: { purpose: "MAC", kind: "hmac", hash: "sha224", minBytes: 16 },
  HMAC_SHA256: { purpose: "MAC", kind: "hmac", hash: "sha256", minBytes: 16 },
  HMAC_SHA384: { purpose: "MAC", kind: "hmac", hash: "sha384", minBytes: 16 },
  HMAC_SHA512: { purpose: "MAC", kind: "hmac", hash: "sha512", minBytes: 16 },
};

export type ImportMethod =
  | "RSA_OAEP_3072_SHA1_AES_256"
  | "RSA_OAEP_4096_SHA1_AES_256"
  | "RSA_OAEP_3072_SHA256_AES_256"
  | "RSA_OAEP_4096_SHA256_AES_256"
  | "RSA_OAEP_3072_SHA256"
  | "RSA_OAEP_4096_SHA256";

export interface ImportMethodSpec {
  bits: 3072 | 4096;
  oaepHash: "sha1" | "sha256";
  /** true: RSA-OAEP(ephemeral AES-256) ‖ KWP(material); false: RSA-OAEP(material) directly. */
  rsaAes: boolean;
}

export const IMPORT_METHODS: Readonly<Record<ImportMethod, ImportMethodSpec>> = {
  RSA_OAEP_3072_SHA1_AES_256: { bits: 3072, oaepHash: "sha1", rsaAes: true },
  RSA_OAEP_4096_SHA1_AES_256: { bits: 4096, oaepHash: "sha1", rsaAes: true },
  RSA_OAEP_3072_SHA256_AES_256: { bits: 3072, oaepHash: "sha256", rsaAes: true },
  RSA_OAEP_4096_SHA256_AES_256: { bits: 4096, oaepHash: "sha256", rsaAes: true },
  RSA_OAEP_3072_SHA256: { bits: 3072, oaepHash: "sha256", rsaAes: false },
  RSA_OAEP_4096_SHA256: { bits: 4096, oaepHash: "sha256", rsaAes: false },
};

export function isImportMethod(s: string): s is ImportMethod {
  return Object.prototype.hasOwnProperty.call(IMPORT_METHODS, s);
}
