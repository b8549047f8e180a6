/**
 * The `Hsm` interface: every operation on key material goes through it. Two backends implement it:
 * `software` (Node crypto; development and the quick test path) and `pkcs11` (any PKCS#11 module; SoftHSM2 in
 * tests). Backends never import `core/`; core depends on this file only.
 *
 * Invariants every backend keeps (the contract suite in test/contract/hsm.ts checks them):
 * - Material is generated inside the backend and leaves it only wrapped under the master key with AES key wrap
 *   with padding (RFC 5649, CKM_AES_KEY_WRAP_PAD, OpenSSL `id-aes256-wrap-pad`). Wrapped plaintext is the raw key
 *   bytes for AES and HMAC keys and the PKCS#8 DER `PrivateKeyInfo` for RSA and EC keys, so a blob made by one
 *   backend unwraps in the other under the same master key.
 * - KCVs (hex, lower case) follow DESIGN.md and never change: AES = first 3 bytes of AES-ECB(key, zero block)
 *   (method `enc-zero`); HMAC = first 3 bytes of HMAC(key, empty message) with the key's own hash (HMAC_SHA384
 *   → HMAC-SHA-384) (method `hmac-empty`); RSA/EC = SHA-256 of the public key's DER SPKI (method `spki-sha256`). kcv.ts computes
 *   them in Node for anyone who must check material that arrived somewhere (emulators, tests).
 * - Every method is safe to call concurrently.
 * - Failures are `HsmError`s with a stable `reason`; nothing else is thrown across this seam.
 */
import type { Secret } from "../util/secret.js";

/** Algorithms a vault key can have. The names are the API's enum names without the `KEY_ALGORITHM_` prefix. */
export const KEY_ALGORITHMS = [
  "AES_128",
  "AES_192",
  "AES_256",
  "RSA_2048",
  "RSA_3072",
  "RSA_4096",
  "EC_P256",
  "EC_P384",
  "HMAC_SHA256",
  "HMAC_SHA384",
  "HMAC_SHA512",
] as const;
export type KeyAlgorithm = (typeof KEY_ALGORITHMS)[number];

export type KeyFamily = "AES" | "HMAC" | "RSA" | "EC";

export function keyFamily(algorithm: KeyAlgorithm): KeyFamily {
  if (algorithm.startsWith("AES_")) return "AES";
  if (algorithm.startsWith("HMAC_")) return "HMAC";
  if (algorithm.startsWith("RSA_")) return "RSA";
  return "EC";
}

/** Key length in bytes of symmetric algorithms; HMAC keys are as long as the hash output. */
export function symmetricKeyBytes(algorithm: KeyAlgorithm): number | undefined {
  switch (algorithm) {
    case "AES_128":
      return 16;
    case "AES_192":
      return 24;
    case "AES_256":
    case "HMAC_SHA256":
      return 32;
    case "HMAC_SHA384":
      return 48;
    case "HMAC_SHA512":
      return 64;
    default:
      return undefined;
  }
}

export type KcvMethod = "enc-zero" | "hmac-empty" | "spki-sha256";

export function kcvMethod(algorithm: KeyAlgorithm): KcvMethod {
  const family = keyFamily(algorithm);
  return family === "AES" ? "enc-zero" : family === "HMAC" ? "hmac-empty" : "spki-sha256";
}

/** A key version as the vault stores it: never plaintext. */
export interface WrappedKey {
  readonly algorithm: KeyAlgorithm;
  /** RFC 5649 wrap of the material under the master key named by `masterKcv`. */
  readonly blob: Buffer;
  /** Hex KCV of the material (see the method per algorithm above). */
  readonly kcv: string;
  /** DER SPKI of the public key, for RSA and EC keys. */
  readonly publicKey?: Buffer;
  /** KCV of the master key the blob is wrapped under (enc-zero of the AES-256 master key). */
  readonly masterKcv: string;
}

/**
 * BYOK wrapping formats (BYOK.md §1–§5). `RSA_OAEP_*` RSA-encrypts the material itself; `RSA_AES_KWP_*` is the
 * RSA-AES key wrap (CKM_RSA_AES_KEY_WRAP): a fresh AES-256 key wraps the material with RFC 5649 and is itself
 * RSA-OAEP-encrypted; the blob is the RSA part followed by the KWP part. The hash names OAEP's hash and MGF1 hash.
 */
export const BYOK_FORMATS = ["RSA_OAEP_SHA1", "RSA_OAEP_SHA256", "RSA_AES_KWP_SHA1", "RSA_AES_KWP_SHA256"] as const;
export type ByokFormat = (typeof BYOK_FORMATS)[number];

export interface ByokWrapRequest {
  /** The keystore's RSA public wrapping key, DER SPKI. */
  readonly wrappingKeySpki: Buffer;
  readonly format: ByokFormat;
  /**
   * Whether the keystore allows an `RSA_OAEP_*` format whose hash the token lacks to run in software over the
   * material itself (DESIGN.md "allow_software_wrap"). Without it the pkcs11 backend refuses with
   * `HSM_MECHANISM_UNSUPPORTED`. Ignored by the software backend, where everything is software.
   */
  readonly allowSoftwareWrap: boolean;
}

/** Where the RSA step of a BYOK wrap ran; audit events record it. */
export type ByokSoftwareStep = "none" | "rsa-over-ephemeral-key" | "rsa-over-material";

export interface ByokBlob {
  readonly format: ByokFormat;
  readonly blob: Buffer;
  readonly softwareStep: ByokSoftwareStep;
}

/**
 * AES-GCM under an AES key version itself (IBM Key Protect's import-token `encryptedNonce`: the token's nonce sealed
 * with the material being imported, BYOK.md §5.3). The plaintext is not secret; the key never leaves the backend
 * (pkcs11: CKM_AES_GCM inside the token).
 */
export interface AesGcmRequest {
  /** 12 bytes. */
  readonly iv: Buffer;
  /** 1-1024 bytes of non-secret data (e.g. an import token's nonce). */
  readonly plaintext: Buffer;
}

export type HsmErrorReason =
  | "HSM_UNAVAILABLE"
  | "HSM_LOGIN_FAILED"
  | "HSM_TOKEN_NOT_FOUND"
  | "HSM_MASTER_KEY_NOT_FOUND"
  | "HSM_MASTER_KEY_MISMATCH"
  | "HSM_MECHANISM_UNSUPPORTED"
  | "HSM_UNWRAP_FAILED"
  | "HSM_INVALID_INPUT"
  | "HSM_INTERNAL";

export class HsmError extends Error {
  override readonly name = "HsmError";
  constructor(
    readonly reason: HsmErrorReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export interface Hsm {
  /** `software` or `pkcs11`. */
  readonly kind: "software" | "pkcs11";

  /** KCV (enc-zero) of the current master key. */
  masterKeyCheckValue(): Promise<string>;

  /** Generates a key of `algorithm` inside the backend and returns it wrapped under the current master key. */
  generateKey(algorithm: KeyAlgorithm): Promise<WrappedKey>;

  /** Unwraps inside the backend and recomputes the KCV; `HSM_UNWRAP_FAILED` if the blob does not unwrap. */
  checkValue(key: WrappedKey): Promise<string>;

  /** Re-wraps `key` for a keystore (BYOK) without the material leaving the backend where the token allows it. */
  wrapForKeystore(key: WrappedKey, request: ByokWrapRequest): Promise<ByokBlob>;

  /**
   * Encrypts `request.plaintext` with AES-GCM (no AAD, 128-bit tag) under the AES key version `key`; returns
   * ciphertext ‖ tag. `HSM_INVALID_INPUT` for non-AES keys or a bad IV/plaintext length.
   */
  aesGcmEncrypt(key: WrappedKey, request: AesGcmRequest): Promise<Buffer>;

  /**
   * Wraps a daemon-internal secret (audit signing key, credential-encryption key) under the master key. The
   * secret's buffer is not disposed; the caller owns it.
   */
  wrapSecret(secret: Secret): Promise<Buffer>;

  /** Reverses `wrapSecret`. The caller disposes the returned secret. */
  unwrapSecret(blob: Buffer): Promise<Secret>;

  /** Cryptographically strong random bytes from the backend's generator (not secret-bearing). */
  randomBytes(length: number): Promise<Buffer>;

  /** Releases sessions and handles; the backend is unusable afterwards. */
  close(): Promise<void>;
}

/** Optional capability: master-key rotation (`mcko hsm rotate-master`). Found by `isMasterRotatable`. */
export interface MasterRotatableHsm extends Hsm {
  /** Creates a new master key and makes it current for new wraps; returns its KCV. Old masters stay usable. */
  createMasterKey(): Promise<string>;
  /** Re-wraps `key` (wrapped under any master this backend still holds) under the current master. */
  rewrapToCurrentMaster(key: WrappedKey): Promise<WrappedKey>;
  /** Destroys the master key with this KCV; refuses the current one. */
  destroyMasterKey(masterKcv: string): Promise<void>;
  /**
   * KCVs of every master key this backend holds, the current one first (during a rotation: the old and the new;
   * after a crash: also a master whose creation the vault never recorded).
   */
  masterKeyCheckValues(): Promise<string[]>;
}

export function isMasterRotatable(hsm: Hsm): hsm is MasterRotatableHsm {
  return typeof (hsm as Partial<MasterRotatableHsm>).rewrapToCurrentMaster === "function";
}
