/** The shared emulator kit: seeded faults, KCV formats, RFC 5649 wrap, pre-hashed signatures, the call log. */
import test from "ava";
import { constants, createHash, generateKeyPairSync, sign, verify } from "node:crypto";
import { FaultInjector } from "./common/faults.js";
import { kcvAes, kcvHmac, kcvPublicKey } from "./common/kcv.js";
import { kwpUnwrap, kwpWrap, rsaAesKeyUnwrap, rsaAesKeyWrap, UnwrapError } from "./common/key-wrap.js";
import { derToP1363, p1363ToDer, signDigestEcdsa, signDigestRsaPss, verifyDigestEcdsa, verifyDigestRsaPss } from "./common/prehash-sign.js";
import { BoundedLog, type CallRecord } from "./common/records.js";

test("the same seed gives the same faults; rates, scripted faults and operation filters apply", (t) => {
  const draw = (seed: number): string[] => {
    const f = new FaultInjector();
    f.set({ throttleRate: 0.3, serverErrorRate: 0.05, timeoutRate: 0.05, seed });
    return Array.from({ length: 200 }, () => f.decide("Op").kind ?? "ok");
  };
  const a = draw(7);
  t.deepEqual(draw(7), a);
  t.notDeepEqual(draw(8), a);
  const throttles = a.filter((k) => k === "throttle").length;
  t.true(throttles > 30 && throttles < 90, `about 30% throttled, got ${throttles}/200`);

  const f = new FaultInjector();
  f.set({ throttleRate: 1, onlyOperations: ["Encrypt"], latencyMs: 5 });
  t.deepEqual(f.decide("Decrypt"), { latencyMs: 0, afterCommit: false });
  t.is(f.decide("Encrypt").kind, "throttle");
  f.failNext({ operation: "Decrypt", kind: "server-error", count: 2, afterCommit: true });
  t.deepEqual(f.decide("Decrypt"), { latencyMs: 0, kind: "server-error", afterCommit: true });
  t.is(f.decide("Decrypt").kind, "server-error");
  t.is(f.decide("Decrypt").kind, undefined);
  t.throws(() => f.set({ throttleRate: 0.8, serverErrorRate: 0.5 }), { instanceOf: RangeError });
  f.clear();
  t.is(f.decide("Encrypt").kind, undefined);
});

test("KCV formats: AES enc-zero vector, HMAC over the empty message, SHA-256 of the SPKI", (t) => {
  t.is(kcvAes(Buffer.alloc(32)), "dc95c0");
  t.is(kcvHmac(Buffer.alloc(32, 1), "sha256"), createHashHmac(Buffer.alloc(32, 1)));
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "P-256" });
  const expected = createHash("sha256").update(publicKey.export({ format: "der", type: "spki" })).digest("hex");
  t.is(kcvPublicKey(privateKey), expected);
  t.is(kcvPublicKey(publicKey), expected);
});

function createHashHmac(key: Buffer): string {
  // Independent of kcv.ts: HMAC-SHA256(key, "") computed by hand from its definition.
  const block = Buffer.alloc(64);
  key.copy(block);
  const ipad = Buffer.from(block.map((b) => b ^ 0x36));
  const opad = Buffer.from(block.map((b) => b ^ 0x5c));
  const inner = createHash("sha256").update(ipad).digest();
  return createHash("sha256").update(opad).update(inner).digest().subarray(0, 3).toString("hex");
}

test("AES key wrap with padding matches RFC 5649 §6 and detects tampering; RSA-AES wrap round-trips", (t) => {
  const kek = Buffer.from("5840df6e29b02af1ab493b705bf16ea1ae8338f4dcc176a8", "hex");
  const data = Buffer.from("c37b7e6492584340bed12207808941155068f738", "hex");
  const wrapped = kwpWrap(kek, data);
  t.is(wrapped.toString("hex"), "138bdeaa9b8fa7fc61f97742e72248ee5ae6ae5360d1ae6a5f54f373fa543b6a");
  t.deepEqual(kwpUnwrap(kek, wrapped), data);
  const tampered = Buffer.from(wrapped);
  tampered[3] = (tampered[3] ?? 0) ^ 1;
  t.throws(() => kwpUnwrap(kek, tampered), { instanceOf: UnwrapError });

  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const material = Buffer.alloc(32, 0x11);
  const blob = rsaAesKeyWrap(publicKey, "sha256", material);
  t.is(blob.length, 256 + 40);
  t.deepEqual(rsaAesKeyUnwrap(privateKey, "sha256", blob), material);
  t.throws(() => rsaAesKeyUnwrap(privateKey, "sha1", blob), { instanceOf: UnwrapError });
});

test("signatures over a digest verify with node:crypto over the message, and the reverse", (t) => {
  const message = Buffer.from("digest me");
  const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const d256 = createHash("sha256").update(message).digest();
  const pss = signDigestRsaPss(rsa.privateKey, "sha256", d256);
  t.true(verify("sha256", message, { key: rsa.publicKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 }, pss));
  t.true(verifyDigestRsaPss(rsa.publicKey, "sha256", d256, sign("sha256", message, { key: rsa.privateKey, padding: constants.RSA_PKCS1_PSS_PADDING, saltLength: 32 })));
  t.false(verifyDigestRsaPss(rsa.publicKey, "sha256", createHash("sha256").update("other").digest(), pss));

  const ec = generateKeyPairSync("ec", { namedCurve: "P-384" });
  const d384 = createHash("sha384").update(message).digest();
  const raw = signDigestEcdsa(ec.privateKey, d384);
  t.true(verify("sha384", message, { key: ec.publicKey, dsaEncoding: "ieee-p1363" }, raw));
  t.true(verify("sha384", message, ec.publicKey, p1363ToDer(raw)));
  t.deepEqual(derToP1363(p1363ToDer(raw), 48), raw);
  t.true(verifyDigestEcdsa(ec.publicKey, d384, sign("sha384", message, { key: ec.privateKey, dsaEncoding: "ieee-p1363" })));
  t.false(verifyDigestEcdsa(ec.publicKey, createHash("sha384").update("other").digest(), raw));
});

test("the call log is bounded, numbered, and waitFor resolves on past and future entries", async (t) => {
  const log = new BoundedLog<CallRecord>(3);
  const entry = (operation: string): Omit<CallRecord, "seq"> => ({ operation, status: 200, committed: true, time: "t" });
  for (const op of ["A", "B", "C", "D"]) log.append(entry(op));
  t.deepEqual(log.list().map((c) => [c.seq, c.operation]), [[2, "B"], [3, "C"], [4, "D"]]);
  t.deepEqual(log.list(1).map((c) => c.operation), ["D"]);
  t.is((await log.waitFor((c) => c.operation === "C")).seq, 3);
  const later = log.waitFor((c) => c.operation === "E");
  log.append(entry("E"));
  t.is((await later).seq, 5);
});
