/**
 * Where the CLI finds the daemon and its certificates: flags first, then MCKO_ADDR / MCKO_CA_CERT /
 * MCKO_CLIENT_CERT / MCKO_CLIENT_KEY (the same variables the Terraform provider reads), then the `client.json`
 * that `mcko init` wrote into the home folder (--home, MCKO_HOME, or ./.mcko).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";

export interface ClientConnection {
  readonly address: string;
  readonly caPem: Buffer;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
}

export interface ConnectionFlags {
  readonly home?: string;
  readonly addr?: string;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
}

export class CliConfigError extends Error {
  override name = "CliConfigError";
}

export function defaultHome(flag: string | undefined): string {
  return resolve(flag ?? process.env.MCKO_HOME ?? ".mcko");
}

export function resolveConnection(flags: ConnectionFlags): ClientConnection {
  const home = defaultHome(flags.home);
  const clientFile = resolve(home, "client.json");
  let fromFile: { address?: string; caCertFile?: string; certFile?: string; keyFile?: string } = {};
  if (existsSync(clientFile)) {
    fromFile = JSON.parse(readFileSync(clientFile, "utf8")) as typeof fromFile;
  }
  const rel = (p: string | undefined) => (p === undefined ? undefined : resolve(dirname(clientFile), p));
  const address = flags.addr ?? process.env.MCKO_ADDR ?? fromFile.address;
  const ca = flags.ca ?? process.env.MCKO_CA_CERT ?? rel(fromFile.caCertFile);
  const cert = flags.cert ?? process.env.MCKO_CLIENT_CERT ?? rel(fromFile.certFile);
  const key = flags.key ?? process.env.MCKO_CLIENT_KEY ?? rel(fromFile.keyFile);
  if (!address || !ca || !cert || !key) {
    throw new CliConfigError(
      `no daemon connection configured: run \`mcko init DIR\` and pass --home DIR (or set MCKO_HOME), or give --addr, --ca, --cert and --key (looked for ${clientFile})`,
    );
  }
  const read = (what: string, v: string) => {
    if (v.includes("-----BEGIN")) return Buffer.from(v);
    try {
      return readFileSync(v);
    } catch {
      throw new CliConfigError(`cannot read the ${what} file ${v}`);
    }
  };
  return { address, caPem: read("CA certificate", ca), certPem: read("client certificate", cert), keyPem: read("client key", key) };
}
