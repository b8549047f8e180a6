/**
 * A throw-away CA and a server certificate for 127.0.0.1 / localhost, made per emulator start (no committed private
 * keys, STYLE.md §10). Keys come from node:crypto; node-forge builds and signs the X.509 certificates.
 */
import { generateKeyPair } from "node:crypto";
import { promisify } from "node:util";
import forge from "node-forge";
// The daemon's serial generator: 16 random bytes, a DER INTEGER that OpenSSL accepts (see its comment; the "0" + 30 hex
// digits used here before made one certificate in 512 unreadable, and a connector test failed now and then with
// "unable to verify the first certificate").
import { certificateSerial } from "../../../daemon/src/pki/certificates.js";

const generateKeyPairAsync = promisify(generateKeyPair);

export interface TlsMaterial {
  caCertPem: string;
  certPem: string;
  keyPem: string;
}

async function rsaKeyPair(): Promise<{ privatePem: string; publicPem: string }> {
  const { privateKey, publicKey } = await generateKeyPairAsync("rsa", { modulusLength: 2048 });
  return {
    privatePem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicPem: publicKey.export({ format: "pem", type: "spki" }).toString(),
  };
}

export async function makeTlsMaterial(
  opts: { commonName?: string; hosts?: string[]; ips?: string[]; validDays?: number } = {},
): Promise<TlsMaterial> {
  const hosts = opts.hosts ?? ["localhost"];
  const ips = opts.ips ?? ["127.0.0.1", "::1"];
  const validDays = opts.validDays ?? 30;
  const [ca, leaf] = await Promise.all([rsaKeyPair(), rsaKeyPair()]);
  const now = new Date(Date.now() - 60_000);
  const until = new Date(now.getTime() + validDays * 86_400_000);

  const caKey = forge.pki.privateKeyFromPem(ca.privatePem);
  const caCert = forge.pki.createCertificate();
  caCert.publicKey = forge.pki.publicKeyFromPem(ca.publicPem);
  caCert.serialNumber = certificateSerial();
  caCert.validity.notBefore = now;
  caCert.validity.notAfter = until;
  const caName = [{ name: "commonName", value: `${opts.commonName ?? "MCKO emulator"} CA` }];
  caCert.setSubject(caName);
  caCert.setIssuer(caName);
  caCert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  caCert.sign(caKey, forge.md.sha256.create());

  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(leaf.publicPem);
  cert.serialNumber = certificateSerial();
  cert.validity.notBefore = now;
  cert.validity.notAfter = until;
  cert.setSubject([{ name: "commonName", value: hosts[0] ?? "localhost" }]);
  cert.setIssuer(caName);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [...hosts.map((value) => ({ type: 2, value })), ...ips.map((ip) => ({ type: 7, ip }))],
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());

  return {
    caCertPem: forge.pki.certificateToPem(caCert),
    certPem: forge.pki.certificateToPem(cert),
    keyPem: leaf.privatePem,
  };
}
