/** Call log, captured imports and the adjustable clock that every emulator keeps. */
import type { FaultKind } from "./faults.js";

/** One call as the emulator saw it, in arrival order. */
export interface CallRecord {
  seq: number;
  /** The cloud's operation name (AWS: the X-Amz-Target operation; Azure: the REST operation id, e.g. "ImportKey"). */
  operation: string;
  /** The key the call named (AWS KeyId/alias as sent; Azure key name), when there is one. */
  target?: string;
  /** HTTP status answered; 0 when the call was held open as a timeout. */
  status: number;
  /** The cloud error code answered, if any (e.g. "NotFoundException", "KeyNotFound"). */
  error?: string;
  /** The fault injected into this call, if any. */
  fault?: FaultKind;
  /** Whether the call took effect (false for calls refused by auth, validation, state or a before-commit fault). */
  committed: boolean;
  /** Wall time of arrival, ISO 8601 (the emulator clock). */
  time: string;
}

/** A key import as received on the wire, kept so a test can unwrap it independently (e.g. with OpenSSL). */
export interface CapturedImport {
  seq: number;
  time: string;
  /** AWS: key id; Azure: key name. */
  keyRef: string;
  /** Azure: the version the import created (when accepted). */
  version?: string;
  /** AWS WrappingAlgorithm (e.g. "RSA_AES_KEY_WRAP_SHA_256") or Azure "CKM_RSA_AES_KEY_WRAP". */
  wrappingAlgorithm: string;
  /** AWS WrappingKeySpec (e.g. "RSA_4096") or the Azure KEK's "RSA_<bits>". */
  wrappingKeySpec: string;
  /** The wrapped key material exactly as received (AWS EncryptedKeyMaterial; Azure the .byok `ciphertext`). */
  wrappedBlob: Buffer;
  /** Azure only: the whole .byok JSON document as received in `key_hsm`. */
  transferBlobJson?: string;
  /** The wrapping (KEK) private key, PKCS#8 PEM, so that a test can run `openssl pkeyutl` on the blob. */
  wrappingPrivateKeyPem: string;
  /** The wrapping public key, SPKI PEM. */
  wrappingPublicKeyPem: string;
  /** Whether the emulator accepted the import, and the error code when it did not. */
  accepted: boolean;
  error?: string;
  /** KCV of the material the emulator recovered (see kcv.ts), when it could unwrap it. */
  materialKcv?: string;
}

/** A bounded, append-only log with a running sequence number. */
export class BoundedLog<T extends { seq: number }> {
  private items: T[] = [];
  private nextSeq = 1;
  private waiters = new Set<{ predicate: (item: T) => boolean; resolve: (item: T) => void }>();
  constructor(private readonly capacity: number) {}

  append(item: Omit<T, "seq">): T {
    const full = { ...item, seq: this.nextSeq++ } as T;
    this.items.push(full);
    if (this.items.length > this.capacity) this.items.splice(0, this.items.length - this.capacity);
    for (const w of this.waiters) {
      if (w.predicate(full)) {
        this.waiters.delete(w);
        w.resolve({ ...full });
      }
    }
    return full;
  }

  /** Resolves with the first entry (already kept, or appended later) that matches; lets tests wait on events, not time. */
  waitFor(predicate: (item: T) => boolean): Promise<T> {
    const found = this.items.find(predicate);
    if (found) return Promise.resolve({ ...found });
    return new Promise((resolve) => this.waiters.add({ predicate, resolve }));
  }

  /** The last `limit` entries (all when absent), oldest first. */
  list(limit?: number): T[] {
    const out = limit === undefined ? this.items : this.items.slice(Math.max(0, this.items.length - limit));
    return out.map((i) => ({ ...i }));
  }

  clear(): void {
    this.items = [];
  }
}

/** Wall clock plus an offset that tests and the admin API move forward (expiry, scheduled deletion). */
export class EmulatorClock {
  private offsetMs = 0;
  nowMs(): number {
    return Date.now() + this.offsetMs;
  }
  nowSeconds(): number {
    return Math.floor(this.nowMs() / 1000);
  }
  advance(seconds: number): void {
    if (!(seconds >= 0)) throw new RangeError("seconds must be >= 0");
    this.offsetMs += seconds * 1000;
  }
  reset(): void {
    this.offsetMs = 0;
  }
}
