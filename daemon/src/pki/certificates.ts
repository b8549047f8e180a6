/**
 * Certificate issuance for MCKO's mutual TLS (node-forge). `mcko init` makes a CA, a server certificate and an
 * admin client certificate; `mcko cert issue` makes more client certificates. A client certificate names its
 * principal in the subject CN and carries its role grants as subjectAltName URIs
 * `urn:mcko:grant:<role>:<vault>` (vault `*` = every vault), so the grants are signed by the CA and cannot be
 * changed by the holder. A customer CA can replace ours as long as it issues the same URIs.
 */
import forge from "node-forge";
import { X509Certificate, randomBytes } from "node:crypto";

export interface PemPair {
  readonly certPem: string;
  /** PKCS#8 private key PEM. Written only to 0600 files. */
  readonly keyPem: string;
}

export interface Grant {
  readonly role: string;
  readonly vault: string;
}

const GRANT_URI = /^urn:mcko:grant:([a-z-]+):(\*|[a-z][a-z0-9-]*)$/;

export function grantUri(grant: Grant): string {
  return `urn:mcko:grant:${grant.role}:${grant.vault}`;
}

export function parseGrantUri(uri: string): Grant | undefined {
  const m = GRANT_URI.exec(uri);
  return m ? { role: m[1]!, vault: m[2]! } : undefined;
}

/** Grants from a certificate's subjectAltName string as Node prints it (`URI:urn:mcko:grant:admin:*, DNS:…`). */
export function grantsFromSubjectAltName(san: string | undefined): Grant[] {
  if (!san) return [];
  const grants: Grant[] = [];
  for (const part of san.split(/,\s*/)) {
    if (!part.startsWith("URI:")) continue;
    const g = parseGrantUri(part.slice(4));
    if (g) grants.push(g);
  }
  return grants;
}

interface IssueOptions {
  readonly commonName: string;
  readonly validityDays: number;
}

function newKeyPair(): forge.pki.rsa.KeyPair {
  // node-forge uses Node's native key generation when it is available.
  return forge.pki.rsa.generateKeyPair({ bits: 2048, e: 0x10001 });
}

/**
 * A random 16-byte certificate serial, written as node-forge takes it (hex of the DER INTEGER's content bytes). The
 * first byte is 0x01–0x7f: positive (high bit clear) and never 0x00. node-forge drops one leading 0x00 before a byte
 * below 0x80 but not a second, so two leading zero bytes came out as a padding zero that DER forbids; OpenSSL then
 * refuses the certificate ("illegal padding"), and as a trusted CA it is silently left out, so every peer fails with
 * "unable to verify the first certificate" (one serial in 65,536 here before; one in 512 in the test emulators).
 */
export function certificateSerial(): string {
  const b = randomBytes(16);
  b[0] = (b[0]! & 0x7f) | 0x01;
  return b.toString("hex");
}

function baseCert(publicKey: forge.pki.PublicKey, options: IssueOptions): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = publicKey;
  cert.serialNumber = certificateSerial();
  const now = new Date();
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + options.validityDays * 86_400_000);
  cert.setSubject([{ name: "commonName", value: options.commonName }]);
  return cert;
}

function toPair(cert: forge.pki.Certificate, keys: forge.pki.rsa.KeyPair): PemPair {
  const keyAsn1 = forge.pki.privateKeyToAsn1(keys.privateKey);
  const p8 = forge.pki.wrapRsaPrivateKey(keyAsn1);
  return { certPem: forge.pki.certificateToPem(cert), keyPem: forge.pki.privateKeyInfoToPem(p8) };
}

export function createCa(options: IssueOptions): PemPair {
  const keys = newKeyPair();
  const cert = baseCert(keys.publicKey, options);
  cert.setIssuer(cert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: true, pathLenConstraint: 0, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  cert.sign(keys.privateKey, forge.md.sha256.create());
  return toPair(cert, keys);
}

function signedBy(ca: PemPair, cert: forge.pki.Certificate): void {
  const caCert = forge.pki.certificateFromPem(ca.certPem);
  const caKey = forge.pki.privateKeyFromPem(ca.keyPem);
  cert.setIssuer(caCert.subject.attributes);
  cert.sign(caKey, forge.md.sha256.create());
}

export interface ServerCertOptions extends IssueOptions {
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export function issueServerCert(ca: PemPair, options: ServerCertOptions): PemPair {
  const keys = newKeyPair();
  const cert = baseCert(keys.publicKey, options);
  cert.setExtensions([
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: [
        ...options.dnsNames.map((value) => ({ type: 2 as const, value })),
        ...options.ipAddresses.map((ip) => ({ type: 7 as const, ip })),
      ],
    },
  ]);
  signedBy(ca, cert);
  return toPair(cert, keys);
}

export interface ClientCertOptions extends IssueOptions {
  readonly grants: readonly Grant[];
}

export function issueClientCert(ca: PemPair, options: ClientCertOptions): PemPair {
  const keys = newKeyPair();
  const cert = baseCert(keys.publicKey, options);
  const extensions: object[] = [
    { name: "basicConstraints", cA: false, critical: true },
    { name: "keyUsage", digitalSignature: true, critical: true },
    { name: "extKeyUsage", clientAuth: true },
  ];
  if (options.grants.length > 0) {
    extensions.push({ name: "subjectAltName", altNames: options.grants.map((g) => ({ type: 6 as const, value: grantUri(g) })) });
  }
  cert.setExtensions(extensions);
  signedBy(ca, cert);
  return toPair(cert, keys);
}

/** Subject CN and grants of a PEM certificate (for `mcko cert show` and tests). */
export function describeCertificate(certPem: string): { commonName: string; grants: Grant[]; notAfter: Date } {
  const x = new X509Certificate(certPem);
  const cn = /(?:^|\n)CN=([^\n]*)/.exec(x.subject)?.[1] ?? "";
  return { commonName: cn, grants: grantsFromSubjectAltName(x.subjectAltName), notAfter: new Date(x.validTo) };
}
