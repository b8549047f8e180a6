/**
 * The wrapping primitives the clouds use for BYOK (BYOK.md §1): RSA-OAEP with an empty label and MGF1 = the OAEP hash,
 * AES key wrap with padding (RFC 5649, OpenSSL `id-aesN-wrap-pad`), AES key wrap (RFC 3394), and their composition
 * CKM_RSA_AES_KEY_WRAP = OAEP(ephemeral AES key) ‖ KWP(material). Used by the emulators to unwrap and by tests to wrap
 * as a real client would.
 */
import {
  constants,
  createCipheriv,
  createDecipheriv,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
  type KeyObject,
} from "node:crypto";
import { Worker } from "node:worker_threads";

export type OaepHash = "sha1" | "sha256" | "sha384" | "sha512";

/** Raised when a blob cannot be unwrapped (bad padding, wrong key, integrity check failed). */
export class UnwrapError extends Error {
  override readonly name = "UnwrapError";
}

const KWP_IV = Buffer.from("A65959A6", "hex");
const KW_IV = Buffer.from("A6A6A6A6A6A6A6A6", "hex");

function aesBits(kek: Buffer): number {
  if (![16, 24, 32].includes(kek.length)) throw new UnwrapError(`AES key wrap key of ${kek.length} bytes`);
  return kek.length * 8;
}

/** RFC 5649 wrap. */
export function kwpWrap(kek: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(`id-aes${aesBits(kek)}-wrap-pad`, kek, KWP_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

/** RFC 5649 unwrap; throws UnwrapError when the integrity check fails. */
export function kwpUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(`id-aes${aesBits(kek)}-wrap-pad`, kek, KWP_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (e) {
    if (e instanceof UnwrapError) throw e;
    throw new UnwrapError("AES key unwrap (RFC 5649) failed");
  }
}

/** RFC 3394 wrap (data a multiple of 8 bytes, at least 16). */
export function kwWrap(kek: Buffer, data: Buffer): Buffer {
  const c = createCipheriv(`id-aes${aesBits(kek)}-wrap`, kek, KW_IV);
  return Buffer.concat([c.update(data), c.final()]);
}

export function kwUnwrap(kek: Buffer, wrapped: Buffer): Buffer {
  try {
    const d = createDecipheriv(`id-aes${aesBits(kek)}-wrap`, kek, KW_IV);
    return Buffer.concat([d.update(wrapped), d.final()]);
  } catch (e) {
    if (e instanceof UnwrapError) throw e;
    throw new UnwrapError("AES key unwrap (RFC 3394) failed");
  }
}

export function oaepEncrypt(publicKey: KeyObject, hash: OaepHash, data: Buffer): Buffer {
  return publicEncrypt({ key: publicKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
}

export function oaepDecrypt(privateKey: KeyObject, hash: OaepHash, data: Buffer): Buffer {
  try {
    return privateDecrypt({ key: privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
  } catch {
    throw new UnwrapError("RSA-OAEP decryption failed");
  }
}

export function rsaModulusBytes(key: KeyObject): number {
  const bits = key.asymmetricKeyDetails?.modulusLength;
  if (!bits) throw new UnwrapError("not an RSA key");
  return Math.ceil(bits / 8);
}

/** CKM_RSA_AES_KEY_WRAP: OAEP(ephemeral AES key) ‖ KWP(material). A fresh 32-byte ephemeral key unless one is given. */
export function rsaAesKeyWrap(publicKey: KeyObject, hash: OaepHash, material: Buffer, ephemeral?: Buffer): Buffer {
  const aes = ephemeral ?? randomBytes(32);
  return Buffer.concat([oaepEncrypt(publicKey, hash, aes), kwpWrap(aes, material)]);
}

/** Splits at the modulus length, OAEP-decrypts the ephemeral key, KWP-unwraps the rest (what the clouds do). */
export function rsaAesKeyUnwrap(privateKey: KeyObject, hash: OaepHash, blob: Buffer): Buffer {
  const n = rsaModulusBytes(privateKey);
  if (blob.length <= n + 8) throw new UnwrapError(`wrapped blob of ${blob.length} bytes is too short for RSA-${n * 8}`);
  const aes = oaepDecrypt(privateKey, hash, blob.subarray(0, n));
  try {
    return kwpUnwrap(aes, blob.subarray(n));
  } finally {
    aes.fill(0);
  }
}

// ---- RSA private-key operations off the event loop ---------------------------------------------------------------
//
// An emulator stands for a remote cloud whose CPU is not ours. An RSA-4096 private-key decryption takes ~5 ms of
// synchronous CPU; run on the emulator's event loop it would hold up every other request in flight (their injected
// latency timers, their answers) for that long. One worker thread per process does them instead; the event loop
// stays free while it works.

const OAEP_WORKER_SOURCE = `
const { parentPort } = require("node:worker_threads");
const { privateDecrypt, constants } = require("node:crypto");
parentPort.on("message", ({ id, key, hash, data }) => {
  try {
    const out = privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: hash }, data);
    parentPort.postMessage({ id, out });
    out.fill(0);
  } catch {
    parentPort.postMessage({ id, error: true });
  }
});
`;

interface OaepReply {
  id: number;
  out?: Uint8Array;
  error?: boolean;
}

let oaepWorker: Worker | undefined;
let nextRequest = 0;
const pending = new Map<number, { resolve: (b: Buffer) => void; reject: (e: Error) => void }>();

function worker(): Worker {
  if (oaepWorker) return oaepWorker;
  const w = new Worker(OAEP_WORKER_SOURCE, { eval: true });
  w.unref();
  w.on("message", (m: OaepReply) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (pending.size === 0) w.unref();
    if (m.error || !m.out) p.reject(new UnwrapError("RSA-OAEP decryption failed"));
    else p.resolve(Buffer.from(m.out.buffer, m.out.byteOffset, m.out.byteLength));
  });
  const fail = (e: Error): void => {
    if (oaepWorker === w) oaepWorker = undefined;
    for (const p of pending.values()) p.reject(e);
    pending.clear();
  };
  w.on("error", fail);
  w.on("exit", (code) => fail(new Error(`RSA worker thread exited with ${code}`)));
  oaepWorker = w;
  return w;
}

/** oaepDecrypt on the worker thread (same result and UnwrapError on failure). */
export function oaepDecryptOffThread(privateKey: KeyObject, hash: OaepHash, data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const w = worker();
    const id = nextRequest++;
    pending.set(id, { resolve, reject });
    w.ref();
    w.postMessage({ id, key: privateKey, hash, data });
  });
}

/** rsaAesKeyUnwrap with its RSA step on the worker thread. */
export async function rsaAesKeyUnwrapOffThread(privateKey: KeyObject, hash: OaepHash, blob: Buffer): Promise<Buffer> {
  const n = rsaModulusBytes(privateKey);
  if (blob.length <= n + 8) throw new UnwrapError(`wrapped blob of ${blob.length} bytes is too short for RSA-${n * 8}`);
  const aes = await oaepDecryptOffThread(privateKey, hash, blob.subarray(0, n));
  try {
    return kwpUnwrap(aes, blob.subarray(n));
  } finally {
    aes.fill(0);
  }
}
