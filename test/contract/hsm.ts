/**
 * The `Hsm` contract suite (STYLE.md §10, vault's ExerciseBackend): every backend's test file calls
 * `hsmContract(test, makeHsm, options)`. `makeHsm` returns a fresh backend with a master key of its own each time
 * (the rotation test needs one it can rotate without disturbing the others).
 */
import type { ExecutionContext, TestFn } from "ava";
import {
  constants as cryptoConstants,
  createDecipheriv,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import {
  BYOK_FORMATS,
  HsmError,
  KEY_ALGORITHMS,
  isMasterRotatable,
  keyFamily,
  type ByokBlob,
  type ByokFormat,
  type ByokSoftwareStep,
  type Hsm,
  type HsmErrorReason,
  type KeyAlgorithm,
  type WrappedKey,
} from "../../daemon/src/hsm/hsm.js";
import { asymmetricParams, byokOaepHash, kcvOfMaterial, kwpUnwrap, spkiKcv, type OaepHash } from "../../daemon/src/hsm/kcv.js";
import { Secret } from "../../daemon/src/util/secret.js";

export interface HsmContractOptions {
  /**
   * The OAEP hashes the backend runs inside the HSM (pkcs11 on SoftHSM2 2.6: ["sha1"]). Omit for the software
   * backend, where every RSA step runs in software.
   */
  readonly oaepHashesInHsm?: readonly OaepHash[];
}

/** RFC 5649 output length for `n` bytes of plaintext. */
export function kwpLength(n: number): number {
  return Math.ceil(n / 8) * 8 + 8;
}

export async function rejectsWith(
  t: ExecutionContext,
  promise: Promise<unknown>,
  reason: HsmErrorReason,
): Promise<HsmError | undefined> {
  const error = await t.throwsAsync(promise, { instanceOf: HsmError });
  t.is(error?.reason, reason, error?.message);
  return error;
}

/** What a keystore does with a BYOK blob: recover the material (RSA-OAEP, or split RSA part ‖ KWP part). */
export function openByokBlob(privateKey: KeyObject, byok: ByokBlob): Buffer {
  const hash = byokOaepHash(byok.format);
  const decrypt = (data: Buffer): Buffer =>
    privateDecrypt({ key: privateKey, padding: cryptoConstants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
  if (byok.format.startsWith("RSA_OAEP_")) return decrypt(byok.blob);
  const modulusBytes = (privateKey.asymmetricKeyDetails?.modulusLength ?? 0) / 8;
  const ephemeral = decrypt(byok.blob.subarray(0, modulusBytes));
  try {
    return kwpUnwrap(ephemeral, byok.blob.subarray(modulusBytes));
  } finally {
    ephemeral.fill(0);
  }
}

/** The software step a backend must report, or "refused" where it must refuse. */
export function expectedSoftwareStep(
  options: HsmContractOptions,
  format: ByokFormat,
  allowSoftwareWrap: boolean,
): ByokSoftwareStep | "refused" {
  const isKwp = format.startsWith("RSA_AES_KWP_");
  if (options.oaepHashesInHsm === undefined) return isKwp ? "rsa-over-ephemeral-key" : "rsa-over-material";
  if (options.oaepHashesInHsm.includes(byokOaepHash(format))) return "none";
  if (isKwp) return "rsa-over-ephemeral-key";
  return allowSoftwareWrap ? "rsa-over-material" : "refused";
}

const HEX6 = /^[0-9a-f]{6}$/;
const HEX64 = /^[0-9a-f]{64}$/;

export function hsmContract(test: TestFn, makeHsm: () => Promise<Hsm>, options: HsmContractOptions = {}): void {
  let hsm: Hsm | undefined;
  const keys = new Map<KeyAlgorithm, WrappedKey>();
  const rsa2048 = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const spki = (k: KeyObject): Buffer => k.export({ type: "spki", format: "der" });
  const backend = (): Hsm => {
    if (hsm === undefined) throw new Error("the backend was not created");
    return hsm;
  };
  const key = (algorithm: KeyAlgorithm): WrappedKey => {
    const k = keys.get(algorithm);
    if (k === undefined) throw new Error(`no ${algorithm} fixture`);
    return k;
  };

  test.before(async () => {
    hsm = await makeHsm();
    const generated = await Promise.all(KEY_ALGORITHMS.map((a) => backend().generateKey(a)));
    for (const k of generated) keys.set(k.algorithm, k);
  });
  test.after.always(async () => {
    await hsm?.close();
  });

  test("the master key check value is a 6-digit enc-zero KCV", async (t) => {
    t.regex(await backend().masterKeyCheckValue(), HEX6);
  });

  for (const algorithm of KEY_ALGORITHMS) {
    test(`generateKey ${algorithm}: blob, KCV and public key have the documented form`, async (t) => {
      const k = key(algorithm);
      const masterKcv = await backend().masterKeyCheckValue();
      t.is(k.algorithm, algorithm);
      t.is(k.masterKcv, masterKcv);
      const family = keyFamily(algorithm);
      if (family === "AES" || family === "HMAC") {
        const bytes = { AES_128: 16, AES_192: 24, AES_256: 32, HMAC_SHA256: 32, HMAC_SHA384: 48, HMAC_SHA512: 64 }[
          algorithm as "AES_128"
        ];
        t.is(k.blob.length, kwpLength(bytes));
        t.regex(k.kcv, HEX6);
        t.is(k.publicKey, undefined);
      } else {
        const params = asymmetricParams(algorithm);
        t.truthy(k.publicKey);
        const publicKey = createPublicKey({ key: k.publicKey as Buffer, format: "der", type: "spki" });
        if (params?.type === "rsa") {
          t.is(publicKey.asymmetricKeyType, "rsa");
          t.is(publicKey.asymmetricKeyDetails?.modulusLength, params.modulusBits);
          t.is(publicKey.asymmetricKeyDetails?.publicExponent, 65537n);
        } else {
          t.is(publicKey.asymmetricKeyType, "ec");
          t.is(publicKey.asymmetricKeyDetails?.namedCurve, params?.namedCurve === "P-256" ? "prime256v1" : "secp384r1");
        }
        t.regex(k.kcv, HEX64);
        t.is(k.kcv, spkiKcv(k.publicKey as Buffer));
        t.is(k.blob.length % 8, 0);
      }
      t.is(await backend().checkValue(k), k.kcv);
    });
  }

  test("two generated keys differ", async (t) => {
    const [a, b] = await Promise.all([backend().generateKey("AES_256"), backend().generateKey("AES_256")]);
    t.notDeepEqual(a.blob, b.blob);
    t.not(a.kcv, b.kcv);
  });

  test("generateKey refuses an unknown algorithm", async (t) => {
    await rejectsWith(t, backend().generateKey("DES_56" as KeyAlgorithm), "HSM_INVALID_INPUT");
  });

  test("wrapSecret/unwrapSecret round trip, without disposing the caller's secret", async (t) => {
    const bytes = Buffer.from("an internal 21-byte x", "latin1");
    const secret = Secret.copyOf(bytes);
    const blob = await backend().wrapSecret(secret);
    t.false(secret.isDisposed);
    t.is(blob.length, kwpLength(Math.floor(bytes.length / 8) * 8 + 8), "framed: secret, 0x80, zeros (kcv.ts)");
    t.false(blob.includes(bytes));
    const back = await backend().unwrapSecret(blob);
    try {
      t.deepEqual(back.expose(), bytes);
    } finally {
      back.dispose();
      secret.dispose();
    }
  });

  test("unwrapSecret of a corrupted blob fails with HSM_UNWRAP_FAILED", async (t) => {
    const blob = await backend().wrapSecret(Secret.copyOf(Buffer.alloc(32, 7)));
    blob[blob.length - 1] = (blob[blob.length - 1] ?? 0) ^ 1;
    await rejectsWith(t, backend().unwrapSecret(blob), "HSM_UNWRAP_FAILED");
  });

  test("checkValue: corrupted blob, wrong algorithm, unknown master, foreign public key", async (t) => {
    const aes = key("AES_256");
    const corrupted = Buffer.from(aes.blob);
    corrupted[3] = (corrupted[3] ?? 0) ^ 0x80;
    await rejectsWith(t, backend().checkValue({ ...aes, blob: corrupted }), "HSM_UNWRAP_FAILED");
    await rejectsWith(t, backend().checkValue({ ...aes, algorithm: "AES_128" }), "HSM_UNWRAP_FAILED");
    await rejectsWith(t, backend().checkValue({ ...aes, algorithm: "RSA_2048" }), "HSM_UNWRAP_FAILED");
    await rejectsWith(t, backend().checkValue({ ...aes, masterKcv: "000000" }), "HSM_MASTER_KEY_NOT_FOUND");
    const ec = key("EC_P256");
    const other = await backend().generateKey("EC_P256");
    await rejectsWith(t, backend().checkValue({ ...ec, publicKey: other.publicKey }), "HSM_INVALID_INPUT");
    const rsa = key("RSA_2048");
    await rejectsWith(t, backend().checkValue({ ...rsa, publicKey: spki(rsa2048.publicKey) }), "HSM_INVALID_INPUT");
  });

  const byokCases: Array<[ByokFormat, KeyAlgorithm]> = [];
  for (const format of BYOK_FORMATS) {
    const algorithms: KeyAlgorithm[] = format.startsWith("RSA_OAEP_")
      ? ["AES_128", "AES_256", "HMAC_SHA512"]
      : ["AES_256", "HMAC_SHA384", "RSA_2048", "EC_P256", "EC_P384"];
    for (const algorithm of algorithms) byokCases.push([format, algorithm]);
  }
  for (const [format, algorithm] of byokCases) {
    test(`wrapForKeystore ${format} of ${algorithm}: the keystore recovers the vault's key`, async (t) => {
      const k = key(algorithm);
      for (const allowSoftwareWrap of [false, true]) {
        const expected = expectedSoftwareStep(options, format, allowSoftwareWrap);
        const request = { wrappingKeySpki: spki(rsa2048.publicKey), format, allowSoftwareWrap };
        if (expected === "refused") {
          await rejectsWith(t, backend().wrapForKeystore(k, request), "HSM_MECHANISM_UNSUPPORTED");
          continue;
        }
        const byok = await backend().wrapForKeystore(k, request);
        t.is(byok.format, format);
        t.is(byok.softwareStep, expected);
        const material = openByokBlob(rsa2048.privateKey, byok);
        try {
          t.is(kcvOfMaterial(algorithm, material), k.kcv);
        } finally {
          material.fill(0);
        }
        if (format.startsWith("RSA_OAEP_")) t.is(byok.blob.length, 256);
      }
    });
  }

  test("wrapForKeystore under an RSA-3072 keystore key puts a 384-byte RSA part first", async (t) => {
    const rsa3072 = generateKeyPairSync("rsa", { modulusLength: 3072 });
    const k = key("AES_256");
    const byok = await backend().wrapForKeystore(k, {
      wrappingKeySpki: spki(rsa3072.publicKey),
      format: "RSA_AES_KWP_SHA1",
      allowSoftwareWrap: false,
    });
    t.is(byok.blob.length, 384 + kwpLength(32));
    const material = openByokBlob(rsa3072.privateKey, byok);
    t.is(kcvOfMaterial("AES_256", material), k.kcv);
    material.fill(0);
  });

  test("wrapForKeystore refuses bad requests with HSM_INVALID_INPUT", async (t) => {
    const aes = key("AES_256");
    const base = { wrappingKeySpki: spki(rsa2048.publicKey), format: "RSA_OAEP_SHA1" as ByokFormat, allowSoftwareWrap: true };
    await rejectsWith(t, backend().wrapForKeystore(key("RSA_2048"), base), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().wrapForKeystore(key("EC_P256"), base), "HSM_INVALID_INPUT");
    const ecKey = generateKeyPairSync("ec", { namedCurve: "P-256" }).publicKey;
    await rejectsWith(t, backend().wrapForKeystore(aes, { ...base, wrappingKeySpki: spki(ecKey) }), "HSM_INVALID_INPUT");
    await rejectsWith(
      t,
      backend().wrapForKeystore(aes, { ...base, wrappingKeySpki: Buffer.from("not a key") }),
      "HSM_INVALID_INPUT",
    );
    const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).publicKey;
    await rejectsWith(t, backend().wrapForKeystore(aes, { ...base, wrappingKeySpki: spki(small) }), "HSM_INVALID_INPUT");
    await rejectsWith(
      t,
      backend().wrapForKeystore(aes, { ...base, format: "RSA_PKCS1" as ByokFormat }),
      "HSM_INVALID_INPUT",
    );
  });

  for (const algorithm of ["AES_128", "AES_192", "AES_256"] as const) {
    test(`aesGcmEncrypt under ${algorithm}: the vault's material decrypts it (Key Protect encryptedNonce)`, async (t) => {
      const k = key(algorithm);
      const byok = await backend().wrapForKeystore(k, { wrappingKeySpki: spki(rsa2048.publicKey), format: "RSA_AES_KWP_SHA1", allowSoftwareWrap: false });
      const material = openByokBlob(rsa2048.privateKey, byok);
      try {
        const iv = randomBytes(12);
        const nonce = randomBytes(12);
        const sealed = await backend().aesGcmEncrypt(k, { iv, plaintext: nonce });
        t.is(sealed.length, 12 + 16);
        const decipher = createDecipheriv(`aes-${material.length * 8}-gcm` as "aes-256-gcm", material, iv);
        decipher.setAuthTag(sealed.subarray(12));
        t.deepEqual(Buffer.concat([decipher.update(sealed.subarray(0, 12)), decipher.final()]), nonce);
        // Another IV gives another ciphertext: the IV is used, not ignored.
        t.notDeepEqual(await backend().aesGcmEncrypt(k, { iv: randomBytes(12), plaintext: nonce }), sealed);
      } finally {
        material.fill(0);
      }
    });
  }

  test("aesGcmEncrypt refuses non-AES keys and bad IV or plaintext lengths with HSM_INVALID_INPUT", async (t) => {
    const plaintext = Buffer.alloc(12, 1);
    await rejectsWith(t, backend().aesGcmEncrypt(key("HMAC_SHA256"), { iv: Buffer.alloc(12), plaintext }), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().aesGcmEncrypt(key("RSA_2048"), { iv: Buffer.alloc(12), plaintext }), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().aesGcmEncrypt(key("AES_256"), { iv: Buffer.alloc(16), plaintext }), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().aesGcmEncrypt(key("AES_256"), { iv: Buffer.alloc(12), plaintext: Buffer.alloc(0) }), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().aesGcmEncrypt(key("AES_256"), { iv: Buffer.alloc(12), plaintext: Buffer.alloc(1025) }), "HSM_INVALID_INPUT");
  });

  test("randomBytes returns fresh bytes of the asked length and refuses bad lengths", async (t) => {
    const [a, b] = await Promise.all([backend().randomBytes(32), backend().randomBytes(32)]);
    t.is(a.length, 32);
    t.notDeepEqual(a, b);
    t.is((await backend().randomBytes(1)).length, 1);
    await rejectsWith(t, backend().randomBytes(0), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().randomBytes(1.5), "HSM_INVALID_INPUT");
    await rejectsWith(t, backend().randomBytes(1 << 20), "HSM_INVALID_INPUT");
  });

  test("64 concurrent operations of every kind all succeed with correct results", async (t) => {
    const aes = key("AES_256");
    const hmac = key("HMAC_SHA256");
    const ec = key("EC_P384");
    const ops = Array.from({ length: 64 }, async (_, i): Promise<void> => {
      switch (i % 8) {
        case 0: {
          const k = await backend().generateKey("AES_256");
          t.is(await backend().checkValue(k), k.kcv);
          return;
        }
        case 1: {
          const k = await backend().generateKey("HMAC_SHA256");
          t.is(k.blob.length, 40);
          return;
        }
        case 2: {
          const k = await backend().generateKey("EC_P256");
          t.is(k.kcv, spkiKcv(k.publicKey as Buffer));
          return;
        }
        case 3:
          t.is(await backend().checkValue(i % 16 === 3 ? ec : hmac), i % 16 === 3 ? ec.kcv : hmac.kcv);
          return;
        case 4: {
          const byok = await backend().wrapForKeystore(aes, {
            wrappingKeySpki: spki(rsa2048.publicKey),
            format: "RSA_AES_KWP_SHA1",
            allowSoftwareWrap: false,
          });
          t.is(kcvOfMaterial("AES_256", openByokBlob(rsa2048.privateKey, byok)), aes.kcv);
          return;
        }
        case 5: {
          const value = Buffer.alloc(32, i);
          const back = await backend().unwrapSecret(await backend().wrapSecret(Secret.copyOf(value)));
          t.deepEqual(back.expose(), value);
          back.dispose();
          return;
        }
        case 6:
          t.is((await backend().randomBytes(16)).length, 16);
          return;
        default: {
          const byok = await backend().wrapForKeystore(aes, {
            wrappingKeySpki: spki(rsa2048.publicKey),
            format: "RSA_OAEP_SHA1",
            allowSoftwareWrap: false,
          });
          t.is(kcvOfMaterial("AES_256", openByokBlob(rsa2048.privateKey, byok)), aes.kcv);
        }
      }
    });
    const results = await Promise.allSettled(ops);
    t.deepEqual(
      results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason)),
      [],
    );
  });

  test("master key rotation: create, rewrap, destroy", async (t) => {
    const own = await makeHsm();
    try {
      if (!isMasterRotatable(own)) {
        t.fail(`${own.kind} backend does not implement MasterRotatableHsm`);
        return;
      }
      const m1 = await own.masterKeyCheckValue();
      const k1 = await own.generateKey("AES_192");
      const e1 = await own.generateKey("EC_P256");
      const s1 = await own.wrapSecret(Secret.copyOf(Buffer.from("audit signing key")));

      const m2 = await own.createMasterKey();
      t.regex(m2, HEX6);
      t.not(m2, m1);
      t.is(await own.masterKeyCheckValue(), m2);
      t.deepEqual(await own.masterKeyCheckValues(), [m2, m1], "every master held, the current one first");
      t.is((await own.generateKey("AES_256")).masterKcv, m2);
      t.is(await own.checkValue(k1), k1.kcv, "keys under the old master stay usable");

      const r1 = await own.rewrapToCurrentMaster(k1);
      t.is(r1.masterKcv, m2);
      t.is(r1.kcv, k1.kcv);
      t.notDeepEqual(r1.blob, k1.blob);
      t.is(await own.checkValue(r1), k1.kcv);
      t.is(await own.rewrapToCurrentMaster(r1), r1, "a key under the current master is returned as is");
      const re1 = await own.rewrapToCurrentMaster(e1);
      t.is(await own.checkValue(re1), e1.kcv);
      t.deepEqual(re1.publicKey, e1.publicKey);
      const secret = await own.unwrapSecret(s1);
      t.is(secret.expose().toString(), "audit signing key");
      const s2 = await own.wrapSecret(secret);
      secret.dispose();

      await rejectsWith(t, own.destroyMasterKey(m2), "HSM_INVALID_INPUT");
      await rejectsWith(t, own.destroyMasterKey("abcdef"), "HSM_MASTER_KEY_NOT_FOUND");
      await own.destroyMasterKey(m1);
      t.deepEqual(await own.masterKeyCheckValues(), [m2]);
      await rejectsWith(t, own.checkValue(k1), "HSM_MASTER_KEY_NOT_FOUND");
      await rejectsWith(t, own.rewrapToCurrentMaster(k1), "HSM_MASTER_KEY_NOT_FOUND");
      await rejectsWith(t, own.unwrapSecret(s1), "HSM_UNWRAP_FAILED");
      t.is(await own.checkValue(r1), k1.kcv);
      const again = await own.unwrapSecret(s2);
      t.is(again.expose().toString(), "audit signing key");
      again.dispose();
    } finally {
      await own.close();
    }
  });

  test("after close every call fails with HSM_UNAVAILABLE", async (t) => {
    const own = await makeHsm();
    await own.close();
    await own.close();
    await rejectsWith(t, own.generateKey("AES_256"), "HSM_UNAVAILABLE");
    await rejectsWith(t, own.masterKeyCheckValue(), "HSM_UNAVAILABLE");
    await rejectsWith(t, own.randomBytes(8), "HSM_UNAVAILABLE");
  });
}
