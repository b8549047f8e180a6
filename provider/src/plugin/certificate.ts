// The AutoMTLS server certificate (TFPLUGIN.md §1.4): self-signed ECDSA P-256, SAN DNS:localhost (Go ignores the
// CN), validity from 30 s in the past (clock skew), EKU serverAuth+clientAuth (Go checks serverAuth on the leaf).
// The key and the signature come from node:crypto; the X.509 structure is written here as DER by hand (a dozen
// fixed fields). node-forge did this before, but loading and parsing it cost about a third of the provider's
// start-up, which Terraform pays 3–4 times per command.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";

export interface ServerCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** The DER bytes that go (base64, unpadded) into the handshake line. */
  readonly certDer: Buffer;
}

// ---------------------------------------------------------------------- DER (X.690) encoding

function tlv(tag: number, content: Buffer): Buffer {
  const n = content.length;
  let len: Buffer;
  if (n < 0x80) len = Buffer.from([n]);
  else {
    const bytes: number[] = [];
    for (let x = n; x > 0; x = Math.floor(x / 256)) bytes.unshift(x & 0xff);
    len = Buffer.from([0x80 | bytes.length, ...bytes]);
  }
  return Buffer.concat([Buffer.from([tag]), len, content]);
}

const seq = (...items: Buffer[]): Buffer => tlv(0x30, Buffer.concat(items));
const set = (...items: Buffer[]): Buffer => tlv(0x31, Buffer.concat(items));
const explicit = (n: number, inner: Buffer): Buffer => tlv(0xa0 | n, inner);
const octets = (b: Buffer): Buffer => tlv(0x04, b);
const utf8 = (s: string): Buffer => tlv(0x0c, Buffer.from(s, "utf8"));
const bool = (v: boolean): Buffer => tlv(0x01, Buffer.from([v ? 0xff : 0x00]));
/** BIT STRING with no unused bits. */
const bits = (b: Buffer): Buffer => tlv(0x03, Buffer.concat([Buffer.from([0]), b]));

/** A non-negative INTEGER from big-endian bytes (minimal, with a leading 0 when the high bit is set). */
function integer(b: Buffer): Buffer {
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && ((b[i + 1] as number) & 0x80) === 0) i++;
  const v = b.subarray(i);
  return tlv(0x02, ((v[0] ?? 0) & 0x80) !== 0 ? Buffer.concat([Buffer.from([0]), v]) : v);
}

function oid(dotted: string): Buffer {
  const parts = dotted.split(".").map(Number);
  const out: number[] = [40 * (parts[0] as number) + (parts[1] as number)];
  for (const p of parts.slice(2)) {
    const chunk: number[] = [p & 0x7f];
    for (let x = Math.floor(p / 128); x > 0; x = Math.floor(x / 128)) chunk.unshift(0x80 | (x & 0x7f));
    out.push(...chunk);
  }
  return tlv(0x06, Buffer.from(out));
}

/** RFC 5280 §4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050. */
function time(d: Date): Buffer {
  const p = (n: number, w = 2): string => String(n).padStart(w, "0");
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  return y < 2050 ? tlv(0x17, Buffer.from(`${p(y % 100)}${rest}`, "ascii")) : tlv(0x18, Buffer.from(`${p(y, 4)}${rest}`, "ascii"));
}

const extension = (id: string, critical: boolean, value: Buffer): Buffer => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));

const OID = {
  ecdsaWithSha256: "1.2.840.10045.4.3.2",
  commonName: "2.5.4.3",
  organizationName: "2.5.4.10",
  basicConstraints: "2.5.29.19",
  keyUsage: "2.5.29.15",
  extKeyUsage: "2.5.29.37",
  subjectAltName: "2.5.29.17",
  serverAuth: "1.3.6.1.5.5.7.3.1",
  clientAuth: "1.3.6.1.5.5.7.3.2",
} as const;

// ---------------------------------------------------------------------- the certificate

export function makeServerCertificate(now: Date = new Date()): ServerCertificate {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const serial = randomBytes(16);
  serial[0] = ((serial[0] ?? 0) & 0x7f) | 0x01; // positive, and 16 bytes long
  const name = seq(
    set(seq(oid(OID.commonName), utf8("localhost"))),
    set(seq(oid(OID.organizationName), utf8("MCKO terraform-provider-mcko"))),
  );
  const sigAlg = seq(oid(OID.ecdsaWithSha256)); // ECDSA: no parameters (RFC 5758 §3.2)
  // keyUsage digitalSignature (bit 0), keyEncipherment (bit 2), keyCertSign (bit 5): 10100100, the 2 low bits unused.
  const keyUsage = tlv(0x03, Buffer.from([0x02, 0xa4]));
  const san = seq(tlv(0x82, Buffer.from("localhost", "ascii")), tlv(0x87, Buffer.from([127, 0, 0, 1])));
  const tbs = seq(
    explicit(0, integer(Buffer.from([2]))), // v3
    integer(serial),
    sigAlg,
    name,
    seq(time(new Date(now.getTime() - 30_000)), time(new Date(now.getTime() + 30 * 24 * 3600_000))),
    name,
    publicKey.export({ type: "spki", format: "der" }),
    explicit(
      3,
      seq(
        extension(OID.basicConstraints, true, seq(bool(true))),
        extension(OID.keyUsage, true, keyUsage),
        extension(OID.extKeyUsage, false, seq(oid(OID.serverAuth), oid(OID.clientAuth))),
        extension(OID.subjectAltName, false, san),
      ),
    ),
  );
  const certDer = seq(tbs, sigAlg, bits(sign("sha256", tbs, privateKey)));
  const certPem = `-----BEGIN CERTIFICATE-----\n${certDer.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`;
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), certDer };
}
