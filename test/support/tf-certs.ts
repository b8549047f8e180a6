// A throwaway PKI for provider tests, made with the openssl CLI (independent of the daemon's pki/ and of the
// provider's own certificate code): a CA, a server certificate for 127.0.0.1/localhost, a client certificate, and a
// client certificate from a foreign CA.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export interface TestPki {
  readonly caPem: string;
  readonly serverCertPem: string;
  readonly serverKeyPem: string;
  readonly clientCertPem: string;
  readonly clientKeyPem: string;
  readonly foreignClientCertPem: string;
  readonly foreignClientKeyPem: string;
  /** A directory holding ca.pem, client.pem and client-key.pem (for file-path config); removed by `cleanup`. */
  readonly dir: string;
  cleanup(): void;
}

export function makeTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "mcko-test-pki-"));
  const f = (n: string) => join(dir, n);
  const ossl = (...args: string[]) => execFileSync("openssl", args, { stdio: "ignore" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  ossl("req", "-x509", ...ec, "-keyout", f("ca-key.pem"), "-out", f("ca.pem"), "-days", "2", "-subj", "/CN=test-ca",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign");
  const leaf = (name: string, cn: string, ext: string, ca: string, caKey: string) => {
    ossl("req", ...ec, "-keyout", f(`${name}-key.pem`), "-out", f(`${name}.csr`), "-subj", `/CN=${cn}`);
    writeFileSync(f(`${name}.ext`), ext);
    ossl("x509", "-req", "-in", f(`${name}.csr`), "-CA", ca, "-CAkey", caKey, "-CAcreateserial", "-out", f(`${name}.pem`),
      "-days", "2", "-extfile", f(`${name}.ext`));
  };
  leaf("server", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n", f("ca.pem"), f("ca-key.pem"));
  leaf("client", "mcko-admin", "extendedKeyUsage=clientAuth\n", f("ca.pem"), f("ca-key.pem"));
  ossl("req", "-x509", ...ec, "-keyout", f("rogue-ca-key.pem"), "-out", f("rogue-ca.pem"), "-days", "2", "-subj", "/CN=rogue-ca",
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign");
  leaf("rogue", "mcko-admin", "extendedKeyUsage=clientAuth\n", f("rogue-ca.pem"), f("rogue-ca-key.pem"));
  const r = (n: string) => readFileSync(f(n), "utf8");
  return {
    caPem: r("ca.pem"),
    serverCertPem: r("server.pem"),
    serverKeyPem: r("server-key.pem"),
    clientCertPem: r("client.pem"),
    clientKeyPem: r("client-key.pem"),
    foreignClientCertPem: r("rogue.pem"),
    foreignClientKeyPem: r("rogue-key.pem"),
    dir,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}
