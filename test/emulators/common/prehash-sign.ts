/**
 * Signatures over a digest the caller computed (AWS Sign with MessageType DIGEST, Azure sign/verify, which always take a
 * digest). Node's crypto.sign always hashes its input, so RSA goes through the raw RSA operation with the encodings of
 * RFC 8017 (EMSA-PKCS1-v1_5, EMSA-PSS with salt length = hash length) and ECDSA is done with bigint arithmetic.
 * The results verify with crypto.verify(hash, message, key, signature) on the original message.
 */
import { constants, createHash, privateDecrypt, privateEncrypt, publicDecrypt, publicEncrypt, randomBytes } from "node:crypto";
import type { KeyObject } from "node:crypto";

export type DigestHash = "sha256" | "sha384" | "sha512";

const DIGEST_INFO: Record<DigestHash, string> = {
  sha256: "3031300d060960864801650304020105000420",
  sha384: "3041300d060960864801650304020205000430",
  sha512: "3051300d060960864801650304020305000440",
};
const HASH_LEN: Record<DigestHash, number> = { sha256: 32, sha384: 48, sha512: 64 };

function checkDigest(hash: DigestHash, digest: Buffer): void {
  if (digest.length !== HASH_LEN[hash]) throw new RangeError(`a ${hash} digest has ${HASH_LEN[hash]} bytes, got ${digest.length}`);
}

export function signDigestRsaPkcs1(privateKey: KeyObject, hash: DigestHash, digest: Buffer): Buffer {
  checkDigest(hash, digest);
  const t = Buffer.concat([Buffer.from(DIGEST_INFO[hash], "hex"), digest]);
  return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, t);
}

export function verifyDigestRsaPkcs1(publicKey: KeyObject, hash: DigestHash, digest: Buffer, signature: Buffer): boolean {
  try {
    const t = publicDecrypt({ key: publicKey, padding: constants.RSA_PKCS1_PADDING }, signature);
    return t.equals(Buffer.concat([Buffer.from(DIGEST_INFO[hash], "hex"), digest]));
  } catch {
    return false;
  }
}

function mgf1(hash: DigestHash, seed: Buffer, length: number): Buffer {
  const out: Buffer[] = [];
  let total = 0;
  for (let counter = 0; total < length; counter++) {
    const c = Buffer.alloc(4);
    c.writeUInt32BE(counter);
    const block = createHash(hash).update(seed).update(c).digest();
    out.push(block);
    total += block.length;
  }
  return Buffer.concat(out).subarray(0, length);
}

function modulusBits(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new TypeError("not an RSA key");
  return bits;
}

export function signDigestRsaPss(privateKey: KeyObject, hash: DigestHash, digest: Buffer): Buffer {
  checkDigest(hash, digest);
  const modBits = modulusBits(privateKey);
  const k = Math.ceil(modBits / 8);
  const emBits = modBits - 1;
  const emLen = Math.ceil(emBits / 8);
  const hLen = HASH_LEN[hash];
  const salt = randomBytes(hLen);
  const h = createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
  const db = Buffer.concat([Buffer.alloc(emLen - 2 * hLen - 2), Buffer.from([1]), salt]);
  const masked = mgf1(hash, h, emLen - hLen - 1);
  for (let i = 0; i < db.length; i++) masked[i] = (masked[i] ?? 0) ^ (db[i] ?? 0);
  masked[0] = (masked[0] ?? 0) & (0xff >> (8 * emLen - emBits));
  const em = Buffer.concat([Buffer.alloc(k - emLen), masked, h, Buffer.from([0xbc])]);
  return privateDecrypt({ key: privateKey, padding: constants.RSA_NO_PADDING }, em);
}

/** EMSA-PSS verification; accepts any salt length (AWS and Azure use the hash length). */
export function verifyDigestRsaPss(publicKey: KeyObject, hash: DigestHash, digest: Buffer, signature: Buffer): boolean {
  try {
    const modBits = modulusBits(publicKey);
    const k = Math.ceil(modBits / 8);
    if (signature.length !== k || digest.length !== HASH_LEN[hash]) return false;
    const emBits = modBits - 1;
    const emLen = Math.ceil(emBits / 8);
    const hLen = HASH_LEN[hash];
    const m = publicEncrypt({ key: publicKey, padding: constants.RSA_NO_PADDING }, signature);
    const em = m.subarray(k - emLen);
    if (em[em.length - 1] !== 0xbc) return false;
    const maskedDb = em.subarray(0, emLen - hLen - 1);
    const h = em.subarray(emLen - hLen - 1, emLen - 1);
    const db = mgf1(hash, h, emLen - hLen - 1);
    for (let i = 0; i < db.length; i++) db[i] = (db[i] ?? 0) ^ (maskedDb[i] ?? 0);
    db[0] = (db[0] ?? 0) & (0xff >> (8 * emLen - emBits));
    const one = db.indexOf(1);
    if (one < 0 || db.subarray(0, one).some((b) => b !== 0)) return false;
    const salt = db.subarray(one + 1);
    const h2 = createHash(hash).update(Buffer.alloc(8)).update(digest).update(salt).digest();
    return h2.equals(h);
  } catch {
    return false;
  }
}

// ---- ECDSA over P-256 / P-384 with bigints (affine coordinates; slow but only used by tests and emulators) ----

interface Curve {
  p: bigint;
  n: bigint;
  a: bigint;
  gx: bigint;
  gy: bigint;
  bytes: number;
}

const CURVES: Record<string, Curve> = {
  "P-256": {
    p: 0xffffffff00000001000000000000000000000000ffffffffffffffffffffffffn,
    n: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
    a: -3n,
    gx: 0x6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296n,
    gy: 0x4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5n,
    bytes: 32,
  },
  "P-384": {
    p: 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffeffffffff0000000000000000ffffffffn,
    n: 0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
    a: -3n,
    gx: 0xaa87ca22be8b05378eb1c71ef320ad746e1d3b628ba79b9859f741e082542a385502f25dbf55296c3a545e3872760ab7n,
    gy: 0x3617de4a96262c6f5d9e98bf9292dc29f8f41dbd289a147ce9da3113b5f0b8c00a60b1ce1d7e819d7a431d7c90ea0e5fn,
    bytes: 48,
  },
};

type Point = { x: bigint; y: bigint } | null;

function mod(a: bigint, m: bigint): bigint {
  const r = a % m;
  return r < 0n ? r + m : r;
}

function inv(a: bigint, m: bigint): bigint {
  let [oldR, r] = [mod(a, m), m];
  let [oldS, s] = [1n, 0n];
  while (r !== 0n) {
    const q = oldR / r;
    [oldR, r] = [r, oldR - q * r];
    [oldS, s] = [s, oldS - q * s];
  }
  return mod(oldS, m);
}

function add(c: Curve, P: Point, Q: Point): Point {
  if (!P) return Q;
  if (!Q) return P;
  let l: bigint;
  if (P.x === Q.x) {
    if (mod(P.y + Q.y, c.p) === 0n) return null;
    l = mod((3n * P.x * P.x + c.a) * inv(2n * P.y, c.p), c.p);
  } else {
    l = mod((Q.y - P.y) * inv(Q.x - P.x, c.p), c.p);
  }
  const x = mod(l * l - P.x - Q.x, c.p);
  return { x, y: mod(l * (P.x - x) - P.y, c.p) };
}

function mul(c: Curve, k: bigint, P: Point): Point {
  let R: Point = null;
  let A = P;
  while (k > 0n) {
    if (k & 1n) R = add(c, R, A);
    A = add(c, A, A);
    k >>= 1n;
  }
  return R;
}

const big = (b: Buffer): bigint => (b.length === 0 ? 0n : BigInt("0x" + b.toString("hex")));
const toBuf = (v: bigint, len: number): Buffer => Buffer.from(v.toString(16).padStart(len * 2, "0"), "hex");
const b64u = (s: string | undefined): bigint => big(Buffer.from(s ?? "", "base64url"));

function curveOf(key: KeyObject): Curve {
  const name = key.asymmetricKeyDetails?.namedCurve;
  const c = name === "prime256v1" ? CURVES["P-256"] : name === "secp384r1" ? CURVES["P-384"] : undefined;
  if (!c) throw new TypeError(`unsupported curve ${name ?? "(none)"}`);
  return c;
}

function digestScalar(c: Curve, digest: Buffer): bigint {
  const z = big(digest);
  const excess = digest.length * 8 - c.bytes * 8;
  return excess > 0 ? z >> BigInt(excess) : z;
}

/** ECDSA over a digest; the signature is r ‖ s (IEEE P1363 / JWS form), each the field size. */
export function signDigestEcdsa(privateKey: KeyObject, digest: Buffer): Buffer {
  const c = curveOf(privateKey);
  const d = b64u(privateKey.export({ format: "jwk" }).d);
  const z = digestScalar(c, digest);
  for (;;) {
    const k = mod(big(randomBytes(c.bytes + 8)), c.n - 1n) + 1n;
    const R = mul(c, k, { x: c.gx, y: c.gy });
    if (!R) continue;
    const r = mod(R.x, c.n);
    if (r === 0n) continue;
    const s = mod(inv(k, c.n) * (z + r * d), c.n);
    if (s === 0n) continue;
    return Buffer.concat([toBuf(r, c.bytes), toBuf(s, c.bytes)]);
  }
}

export function verifyDigestEcdsa(publicKey: KeyObject, digest: Buffer, signature: Buffer): boolean {
  const c = curveOf(publicKey);
  if (signature.length !== 2 * c.bytes) return false;
  const r = big(signature.subarray(0, c.bytes));
  const s = big(signature.subarray(c.bytes));
  if (r <= 0n || r >= c.n || s <= 0n || s >= c.n) return false;
  const jwk = publicKey.export({ format: "jwk" });
  const Q = { x: b64u(jwk.x), y: b64u(jwk.y) };
  const w = inv(s, c.n);
  const z = digestScalar(c, digest);
  const X = add(c, mul(c, mod(z * w, c.n), { x: c.gx, y: c.gy }), mul(c, mod(r * w, c.n), Q));
  return X !== null && mod(X.x, c.n) === r;
}

/** r ‖ s → DER SEQUENCE { INTEGER r, INTEGER s } (the form AWS returns for ECDSA). */
export function p1363ToDer(sig: Buffer): Buffer {
  const half = sig.length / 2;
  const int = (b: Buffer): Buffer => {
    let i = 0;
    while (i < b.length - 1 && b[i] === 0) i++;
    let v = b.subarray(i);
    if ((v[0] ?? 0) & 0x80) v = Buffer.concat([Buffer.from([0]), v]);
    return Buffer.concat([Buffer.from([0x02, v.length]), v]);
  };
  const body = Buffer.concat([int(sig.subarray(0, half)), int(sig.subarray(half))]);
  const len = body.length < 0x80 ? Buffer.from([body.length]) : Buffer.from([0x81, body.length]);
  return Buffer.concat([Buffer.from([0x30]), len, body]);
}

/** DER → r ‖ s with each half `size` bytes; throws on malformed input. */
export function derToP1363(der: Buffer, size: number): Buffer {
  let o = 0;
  const take = (): number => {
    const v = der[o++];
    if (v === undefined) throw new RangeError("truncated DER signature");
    return v;
  };
  if (take() !== 0x30) throw new RangeError("not a DER sequence");
  let len = take();
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | take();
  }
  const ints: Buffer[] = [];
  for (let i = 0; i < 2; i++) {
    if (take() !== 0x02) throw new RangeError("not a DER integer");
    const l = take();
    let v = der.subarray(o, o + l);
    o += l;
    while (v.length > size && v[0] === 0) v = v.subarray(1);
    if (v.length > size) throw new RangeError("integer too long");
    ints.push(Buffer.concat([Buffer.alloc(size - v.length), v]));
  }
  return Buffer.concat(ints);
}
