/**
 * Certificate serials: DER encodes a serial as an INTEGER, and OpenSSL refuses one whose first content byte is 0x00
 * followed by a byte below 0x80 ("illegal padding"). node-forge drops one such zero but not two, so the generator
 * must never start with a zero byte, or now and then `mcko init` (or an emulator start) makes a certificate nobody
 * can load.
 */
import test from "ava";
import { X509Certificate } from "node:crypto";
import forge from "node-forge";
import { certificateSerial, createCa } from "../../../daemon/src/pki/certificates.js";

test("certificateSerial: 16 bytes, first byte 0x01-0x7f (positive, minimal DER) in 200,000 draws", (t) => {
  let low = 0x7f;
  let high = 0x01;
  for (let i = 0; i < 200_000; i++) {
    const s = certificateSerial();
    if (!/^[0-9a-f]{32}$/.test(s)) t.fail(`not 32 hex digits: ${s}`);
    const first = parseInt(s.slice(0, 2), 16);
    if (first < 0x01 || first > 0x7f) t.fail(`first byte ${first.toString(16)} in ${s}`);
    low = Math.min(low, first);
    high = Math.max(high, first);
  }
  t.is(low, 0x01, "the whole range is drawn");
  t.is(high, 0x7f);
});

test("a serial with two leading zero bytes makes a certificate OpenSSL refuses; ours load", (t) => {
  const keys = forge.pki.rsa.generateKeyPair({ bits: 1024, e: 0x10001 });
  const make = (serial: string): string => {
    const cert = forge.pki.createCertificate();
    cert.publicKey = keys.publicKey;
    cert.serialNumber = serial;
    cert.validity.notBefore = new Date();
    cert.validity.notAfter = new Date(Date.now() + 86_400_000);
    cert.setSubject([{ name: "commonName", value: "t" }]);
    cert.setIssuer([{ name: "commonName", value: "t" }]);
    cert.sign(keys.privateKey, forge.md.sha256.create());
    return forge.pki.certificateToPem(cert);
  };
  t.throws(() => new X509Certificate(make("00000b19c594f33dcb713c6d8e06ca0b")), { message: /illegal padding/ });
  for (let i = 0; i < 20; i++) t.notThrows(() => new X509Certificate(make(certificateSerial())));
  const ca = createCa({ commonName: "serial test CA", validityDays: 1 });
  t.regex(new X509Certificate(ca.certPem).serialNumber, /^[0-9A-F]{32}$/);
});
