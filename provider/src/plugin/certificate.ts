// The AutoMTLS server certificate (TFPLUGIN.md §1.4): self-signed ECDSA P-256, SAN DNS:localhost (Go ignores the
// CN), validity from 30 s in the past (clock skew), EKU serverAuth+clientAuth (Go checks serverAuth on the leaf).
// node-forge builds the ASN.1 but can only sign with RSA, and an RSA-2048 key costs about half a second per provider
// process (Terraform starts 3–4 per command), so the TBSCertificate is signed with node:crypto's ECDSA instead.
import { generateKeyPairSync, randomBytes, sign } from "node:crypto";
import forge from "node-forge";

export interface ServerCertificate {
  readonly certPem: string;
  readonly keyPem: string;
  /** The DER bytes that go (base64, unpadded) into the handshake line. */
  readonly certDer: Buffer;
}

const ECDSA_WITH_SHA256 = "1.2.840.10045.4.3.2";

export function makeServerCertificate(now: Date = new Date()): ServerCertificate {
  const { privateKey, publicKey } = generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const asn1 = forge.asn1;
  const cert = forge.pki.createCertificate();
  // A placeholder RSA key lets forge emit the TBSCertificate; its SubjectPublicKeyInfo is replaced below.
  cert.publicKey = forge.pki.setRsaPublicKey(new forge.jsbn.BigInteger("3"), new forge.jsbn.BigInteger("3"));
  const serial = randomBytes(16);
  serial[0] = (serial[0] ?? 0) & 0x7f; // positive
  cert.serialNumber = serial.toString("hex");
  cert.validity.notBefore = new Date(now.getTime() - 30_000);
  cert.validity.notAfter = new Date(now.getTime() + 30 * 24 * 3600_000);
  const name = [
    { name: "commonName", value: "localhost" },
    { name: "organizationName", value: "MCKO terraform-provider-mcko" },
  ];
  cert.setSubject(name);
  cert.setIssuer(name);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
    { name: "extKeyUsage", serverAuth: true, clientAuth: true },
    { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] },
  ]);
  (cert.siginfo as { algorithmOid?: string }).algorithmOid = forge.pki.oids["sha256WithRSAEncryption"] as string; // replaced below
  // getTBSCertificate exists in node-forge but is missing from @types/node-forge.
  const tbs = (forge.pki as unknown as { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  const fields = tbs.value as forge.asn1.Asn1[];
  const sigAlg = (): forge.asn1.Asn1 =>
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
      asn1.create(asn1.Class.UNIVERSAL, asn1.Type.OID, false, asn1.oidToDer(ECDSA_WITH_SHA256).getBytes()),
    ]);
  // TBSCertificate: [0] version, serial, signature alg, issuer, validity, subject, subjectPublicKeyInfo, [3] extensions
  fields[2] = sigAlg();
  fields[6] = asn1.fromDer(publicKey.export({ type: "spki", format: "der" }).toString("binary"));
  const tbsDer = Buffer.from(asn1.toDer(tbs).getBytes(), "binary");
  const signature = sign("sha256", tbsDer, privateKey);
  const certAsn1 = asn1.create(asn1.Class.UNIVERSAL, asn1.Type.SEQUENCE, true, [
    tbs,
    sigAlg(),
    asn1.create(asn1.Class.UNIVERSAL, asn1.Type.BITSTRING, false, "\x00" + signature.toString("binary")),
  ]);
  const certDer = Buffer.from(asn1.toDer(certAsn1).getBytes(), "binary");
  const certPem = `-----BEGIN CERTIFICATE-----\n${certDer.toString("base64").replace(/(.{64})/g, "$1\n").replace(/\n?$/, "\n")}-----END CERTIFICATE-----\n`;
  return { certPem, keyPem: privateKey.export({ type: "pkcs8", format: "pem" }).toString(), certDer };
}
