/**
 * The software `Hsm` backend: Node crypto over a master keyring file (./keyring.ts). For development and the quick
 * test path: the master keys sit in process memory and in a 0600 file. Blobs and KCVs have exactly the pkcs11
 * backend's form, so a vault moves between the two under the same master key.
 */
import { constants as cryptoConstants, createCipheriv, generateKeyPair, publicEncrypt, randomBytes } from "node:crypto";
import { promisify } from "node:util";
import {
  HsmError,
  keyFamily,
  symmetricKeyBytes,
  type AesGcmRequest,
  type ByokBlob,
  type ByokWrapRequest,
  type KeyAlgorithm,
  type MasterRotatableHsm,
  type WrappedKey,
} from "../hsm.js";
import {
  aesKcv,
  asymmetricParams,
  assertKeyAlgorithm,
  assertRandomLength,
  checkAesGcmRequest,
  checkByokRequest,
  kcvOfMaterial,
  kwpUnwrap,
  kwpWrap,
  publicSpkiFromPkcs8,
  rsaSpkiFromParts,
  spkiKcv,
  frameSecret,
  trimDerPadding,
  unframeSecret,
} from "../kcv.js";
import { Secret } from "../../util/secret.js";
import { MASTER_KEY_BYTES, readKeyring, writeKeyring } from "./keyring.js";

const randomBytesAsync = promisify(randomBytes);

export interface SoftwareHsmOptions {
  /** The keyring file (mode 0600) made by `SoftwareHsm.initMasterKeyFile`. */
  readonly masterKeyFile: string;
  /** The master KCV the vault recorded; start is refused with `HSM_MASTER_KEY_MISMATCH` if the file's differs. */
  readonly expectedMasterKcv?: string;
}

export class SoftwareHsm implements MasterRotatableHsm {
  readonly kind = "software" as const;
  readonly #file: string;
  readonly #masters: Map<string, Buffer>;
  #current: string;
  #closed = false;
  /** Serialises keyring rewrites (createMasterKey, destroyMasterKey). */
  #keyringWrite: Promise<unknown> = Promise.resolve();

  private constructor(file: string, masters: Map<string, Buffer>, current: string) {
    this.#file = file;
    this.#masters = masters;
    this.#current = current;
  }

  static async create(options: SoftwareHsmOptions): Promise<SoftwareHsm> {
    const keyring = await readKeyring(options.masterKeyFile);
    if (options.expectedMasterKcv !== undefined && options.expectedMasterKcv !== keyring.current) {
      for (const key of keyring.keys.values()) key.fill(0);
      throw new HsmError(
        "HSM_MASTER_KEY_MISMATCH",
        `the current master key in ${options.masterKeyFile} has KCV ${keyring.current}, but the vault was made ` +
          `under master KCV ${options.expectedMasterKcv}: this is the wrong key file (or it was replaced)`,
      );
    }
    return new SoftwareHsm(options.masterKeyFile, keyring.keys, keyring.current);
  }

  /**
   * Creates a keyring file at `path` (O_EXCL, mode 0600) holding one new AES-256 master key; returns its KCV for the
   * vault to record. Refuses (`HSM_INVALID_INPUT`) if the file exists.
   */
  static async initMasterKeyFile(path: string): Promise<string> {
    const key = await randomBytesAsync(MASTER_KEY_BYTES);
    try {
      const kcv = aesKcv(key);
      await writeKeyring(path, { current: kcv, keys: new Map([[kcv, key]]) }, true);
      return kcv;
    } finally {
      key.fill(0);
    }
  }

  async masterKeyCheckValue(): Promise<string> {
    this.#assertOpen();
    return this.#current;
  }

  async generateKey(algorithm: KeyAlgorithm): Promise<WrappedKey> {
    this.#assertOpen();
    assertKeyAlgorithm(algorithm);
    const masterKcv = this.#current;
    const master = this.#master(masterKcv);
    const length = symmetricKeyBytes(algorithm);
    if (length !== undefined) {
      // Synchronous on purpose: drawing 16–64 bytes costs microseconds, while the async form waits in libuv's
      // thread pool behind the store's fsyncs and adds milliseconds to every CreateKey under load.
      const material = randomBytes(length);
      try {
        return { algorithm, blob: kwpWrap(master, material), kcv: kcvOfMaterial(algorithm, material), masterKcv };
      } finally {
        material.fill(0);
      }
    }
    const params = asymmetricParams(algorithm);
    if (params === undefined) throw new HsmError("HSM_INTERNAL", `no parameters for ${algorithm}`);
    const { publicKey, privateKey } = await generateDerKeyPair(params);
    try {
      return { algorithm, blob: kwpWrap(master, privateKey), kcv: spkiKcv(publicKey), publicKey, masterKcv };
    } finally {
      privateKey.fill(0);
    }
  }

  async checkValue(key: WrappedKey): Promise<string> {
    this.#assertOpen();
    assertKeyAlgorithm(key.algorithm);
    const material = kwpUnwrap(this.#master(key.masterKcv), key.blob);
    try {
      if (keyFamily(key.algorithm) === "AES" || keyFamily(key.algorithm) === "HMAC") {
        return kcvOfMaterial(key.algorithm, material);
      }
      const spki = publicSpkiFromPkcs8(key.algorithm, material);
      if (key.publicKey !== undefined && !spki.equals(key.publicKey)) {
        throw new HsmError("HSM_INVALID_INPUT", "the stored public key does not belong to the wrapped private key");
      }
      return spkiKcv(spki);
    } finally {
      material.fill(0);
    }
  }

  /**
   * Everything runs in software here, so `softwareStep` says where the RSA step ran: over the material for
   * `RSA_OAEP_*`, over the ephemeral AES key for `RSA_AES_KWP_*`. `allowSoftwareWrap` is ignored.
   */
  async wrapForKeystore(key: WrappedKey, request: ByokWrapRequest): Promise<ByokBlob> {
    this.#assertOpen();
    const target = checkByokRequest(key, request);
    const rsaKey = {
      key: rsaSpkiFromParts(target.modulus, target.publicExponent),
      format: "der",
      type: "spki",
      padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: target.hash,
    } as const;
    const unwrapped = kwpUnwrap(this.#master(key.masterKcv), key.blob);
    const material = trimDerPadding(unwrapped);
    try {
      if (!target.isKwp) {
        kcvOfMaterial(key.algorithm, material); // checks the length matches the algorithm
        return { format: request.format, blob: publicEncrypt(rsaKey, material), softwareStep: "rsa-over-material" };
      }
      const ephemeral = randomBytes(32);
      try {
        const blob = Buffer.concat([publicEncrypt(rsaKey, ephemeral), kwpWrap(ephemeral, material)]);
        return { format: request.format, blob, softwareStep: "rsa-over-ephemeral-key" };
      } finally {
        ephemeral.fill(0);
      }
    } finally {
      unwrapped.fill(0);
    }
  }

  async aesGcmEncrypt(key: WrappedKey, request: AesGcmRequest): Promise<Buffer> {
    this.#assertOpen();
    checkAesGcmRequest(key, request);
    const material = kwpUnwrap(this.#master(key.masterKcv), key.blob);
    try {
      kcvOfMaterial(key.algorithm, material); // checks the length matches the algorithm
      const cipher = createCipheriv(`aes-${material.length * 8}-gcm` as "aes-256-gcm", material, request.iv);
      const body = Buffer.concat([cipher.update(request.plaintext), cipher.final()]);
      return Buffer.concat([body, cipher.getAuthTag()]);
    } finally {
      material.fill(0);
    }
  }

  async wrapSecret(secret: Secret): Promise<Buffer> {
    this.#assertOpen();
    if (secret.length === 0) throw new HsmError("HSM_INVALID_INPUT", "cannot wrap an empty secret");
    const framed = frameSecret(secret.expose());
    try {
      return kwpWrap(this.#master(this.#current), framed);
    } finally {
      framed.fill(0);
    }
  }

  async unwrapSecret(blob: Buffer): Promise<Secret> {
    this.#assertOpen();
    // The blob does not name its master: try the current one first, then the others (rotation in progress).
    const kcvs = [this.#current, ...[...this.#masters.keys()].filter((k) => k !== this.#current)];
    for (const kcv of kcvs) {
      try {
        const framed = kwpUnwrap(this.#master(kcv), blob);
        try {
          return Secret.adopt(unframeSecret(framed));
        } finally {
          framed.fill(0);
        }
      } catch (e) {
        if (!(e instanceof HsmError && e.reason === "HSM_UNWRAP_FAILED")) throw e;
      }
    }
    throw new HsmError("HSM_UNWRAP_FAILED", "the secret does not unwrap under any master key this backend holds");
  }

  async randomBytes(length: number): Promise<Buffer> {
    this.#assertOpen();
    assertRandomLength(length);
    return randomBytesAsync(length);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#keyringWrite.catch(() => undefined);
    for (const key of this.#masters.values()) key.fill(0);
    this.#masters.clear();
  }

  async createMasterKey(): Promise<string> {
    this.#assertOpen();
    return this.#serialiseKeyringWrite(async () => {
      let key = await randomBytesAsync(MASTER_KEY_BYTES);
      while (this.#masters.has(aesKcv(key))) key = await randomBytesAsync(MASTER_KEY_BYTES);
      const kcv = aesKcv(key);
      const keys = new Map(this.#masters);
      keys.set(kcv, key);
      try {
        await writeKeyring(this.#file, { current: kcv, keys }, false);
      } catch (e) {
        key.fill(0);
        throw e;
      }
      this.#masters.set(kcv, key);
      this.#current = kcv;
      return kcv;
    });
  }

  async masterKeyCheckValues(): Promise<string[]> {
    this.#assertOpen();
    return [this.#current, ...[...this.#masters.keys()].filter((k) => k !== this.#current)];
  }

  async rewrapToCurrentMaster(key: WrappedKey): Promise<WrappedKey> {
    this.#assertOpen();
    assertKeyAlgorithm(key.algorithm);
    const masterKcv = this.#current;
    if (key.masterKcv === masterKcv) return key;
    const material = kwpUnwrap(this.#master(key.masterKcv), key.blob);
    try {
      return { ...key, blob: kwpWrap(this.#master(masterKcv), trimDerPadding(material)), masterKcv };
    } finally {
      material.fill(0);
    }
  }

  async destroyMasterKey(masterKcv: string): Promise<void> {
    this.#assertOpen();
    await this.#serialiseKeyringWrite(async () => {
      if (masterKcv === this.#current) {
        throw new HsmError("HSM_INVALID_INPUT", `master key ${masterKcv} is the current master and cannot be destroyed`);
      }
      const key = this.#master(masterKcv);
      const keys = new Map(this.#masters);
      keys.delete(masterKcv);
      await writeKeyring(this.#file, { current: this.#current, keys }, false);
      this.#masters.delete(masterKcv);
      key.fill(0);
    });
  }

  #serialiseKeyringWrite<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#keyringWrite.then(fn, fn);
    this.#keyringWrite = run.catch(() => undefined);
    return run;
  }

  #master(kcv: string): Buffer {
    const key = this.#masters.get(kcv);
    if (key === undefined) {
      throw new HsmError(
        "HSM_MASTER_KEY_NOT_FOUND",
        `no master key with KCV ${kcv} in ${this.#file} (it holds ${[...this.#masters.keys()].join(", ") || "none"})`,
      );
    }
    return key;
  }

  #assertOpen(): void {
    if (this.#closed) throw new HsmError("HSM_UNAVAILABLE", "the software HSM backend is closed");
  }
}

/** A fresh RSA (e = 65537) or EC key pair: public key as DER SPKI, private key as PKCS#8 DER (the caller zeroes it). */
function generateDerKeyPair(
  params: { type: "rsa"; modulusBits: number } | { type: "ec"; namedCurve: "P-256" | "P-384" },
): Promise<{ publicKey: Buffer; privateKey: Buffer }> {
  const encoding = {
    publicKeyEncoding: { type: "spki", format: "der" },
    privateKeyEncoding: { type: "pkcs8", format: "der" },
  } as const;
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, publicKey: Buffer, privateKey: Buffer): void => {
      if (err !== null) reject(new HsmError("HSM_INTERNAL", "key pair generation failed", { cause: err }));
      else resolve({ publicKey, privateKey });
    };
    if (params.type === "rsa") {
      generateKeyPair("rsa", { modulusLength: params.modulusBits, publicExponent: 0x10001, ...encoding }, done);
    } else {
      generateKeyPair("ec", { namedCurve: params.namedCurve, ...encoding }, done);
    }
  });
}
