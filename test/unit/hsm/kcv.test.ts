import test from "ava";
import { createHmac, generateKeyPairSync } from "node:crypto";
import { HsmError } from "../../../daemon/src/hsm/hsm.js";
import {
  aesKcv,
  frameSecret,
  hmacKcv,
  kcvOfMaterial,
  kwpUnwrap,
  kwpWrap,
  spkiKcv,
  trimDerPadding,
  unframeSecret,
} from "../../../daemon/src/hsm/kcv.js";

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s/g, ""), "hex");

test("RFC 5649 §6 test vectors (192-bit KEK, 20- and 7-byte keys)", (t) => {
  const kek = hex("5840df6e29b02af1 ab493b705bf16ea1 ae8338f4dcc176a8");
  const cases: Array<[string, string]> = [
    ["c37b7e6492584340 bed1220780894115 5068f738", "138bdeaa9b8fa7fc 61f97742e72248ee 5ae6ae5360d1ae6a 5f54f373fa543b6a"],
    ["466f7250617369", "afbeb0f07dfbf541 9200f2ccb50bb24f"],
  ];
  for (const [key, wrapped] of cases) {
    t.deepEqual(kwpWrap(kek, hex(key)), hex(wrapped));
    t.deepEqual(kwpUnwrap(kek, hex(wrapped)), hex(key));
  }
});

test("kwpUnwrap refuses a wrong key, a corrupted or a malformed blob with HSM_UNWRAP_FAILED", (t) => {
  const kek = Buffer.alloc(32, 1);
  const blob = kwpWrap(kek, Buffer.alloc(32, 2));
  const reason = (fn: () => unknown): string | undefined => (t.throws(fn, { instanceOf: HsmError }) as HsmError).reason;
  t.is(reason(() => kwpUnwrap(Buffer.alloc(32, 3), blob)), "HSM_UNWRAP_FAILED");
  const bad = Buffer.from(blob);
  bad[0] = (bad[0] ?? 0) ^ 1;
  t.is(reason(() => kwpUnwrap(kek, bad)), "HSM_UNWRAP_FAILED");
  t.is(reason(() => kwpUnwrap(kek, blob.subarray(0, 20))), "HSM_UNWRAP_FAILED");
  t.is(reason(() => kwpWrap(Buffer.alloc(31), Buffer.alloc(8))), "HSM_INVALID_INPUT");
});

test("enc-zero KCV: the all-zero AES-256 key gives dc95c0 (BYOK.md §7)", (t) => {
  t.is(aesKcv(Buffer.alloc(32)), "dc95c0");
  t.is(kcvOfMaterial("AES_256", Buffer.alloc(32)), "dc95c0");
  t.throws(() => kcvOfMaterial("AES_256", Buffer.alloc(16)), { instanceOf: HsmError });
});

test("hmac-empty KCV is HMAC with the key's own hash over the empty message", (t) => {
  for (const [algorithm, hash, bytes] of [
    ["HMAC_SHA256", "sha256", 32],
    ["HMAC_SHA384", "sha384", 48],
    ["HMAC_SHA512", "sha512", 64],
  ] as const) {
    const key = Buffer.alloc(bytes, 0x5a);
    const expected = createHmac(hash, key).update("").digest("hex").slice(0, 6);
    t.is(hmacKcv(key, hash), expected);
    t.is(kcvOfMaterial(algorithm, key), expected);
  }
});

test("spki-sha256 KCV of PKCS#8 material equals SHA-256 of the public SPKI, also with SoftHSM's zero padding", (t) => {
  const { publicKey, privateKey } = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const spki = publicKey.export({ type: "spki", format: "der" });
  const pkcs8 = privateKey.export({ type: "pkcs8", format: "der" });
  t.is(kcvOfMaterial("EC_P384", pkcs8), spkiKcv(spki));
  const padded = Buffer.concat([pkcs8, Buffer.alloc(8 - (pkcs8.length % 8 || 8))]);
  t.is(kcvOfMaterial("EC_P384", padded), spkiKcv(spki));
  t.deepEqual(trimDerPadding(padded), pkcs8);
  t.is(trimDerPadding(Buffer.concat([pkcs8, Buffer.from([0, 1])])).length, pkcs8.length + 2, "non-zero tail kept");
  const error = t.throws(() => kcvOfMaterial("EC_P256", pkcs8), { instanceOf: HsmError }) as HsmError;
  t.is(error.reason, "HSM_UNWRAP_FAILED");
});

test("internal secret framing round-trips every length and refuses a frameless buffer", (t) => {
  for (let n = 1; n <= 33; n++) {
    const secret = Buffer.alloc(n, 0);
    const framed = frameSecret(secret);
    t.is(framed.length % 8, 0);
    t.deepEqual(unframeSecret(framed), secret);
  }
  t.throws(() => unframeSecret(Buffer.alloc(16)), { instanceOf: HsmError });
  t.throws(() => unframeSecret(Buffer.alloc(16, 0x41)), { instanceOf: HsmError });
});
