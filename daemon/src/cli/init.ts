/**
 * `mcko init DIR`: a CA, a server certificate, an admin client certificate, the master key (a 0600 software key
 * file, or an AES-256 token object in a PKCS#11 HSM) and a config file — everything `mcko daemon` needs.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { createCa, issueClientCert, issueServerCert } from "../pki/certificates.js";
import { SoftwareHsm } from "../hsm/software/software-hsm.js";
import type { Secret } from "../util/secret.js";
import { applyEnv } from "../config/hsm-secrets.js";

export interface InitOptions {
  readonly dir: string;
  readonly listen: string;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  readonly hsm:
    | { readonly backend: "software" }
    | {
        readonly backend: "pkcs11";
        readonly modulePath: string;
        readonly tokenLabel: string;
        readonly masterKeyLabel: string;
        readonly pinFile?: string;
        readonly pin: Secret;
        readonly adopt: boolean;
        readonly moduleEnv: Record<string, string>;
      };
  readonly validityDays: number;
}

export interface InitResult {
  readonly configFile: string;
  readonly masterKcv: string;
  readonly files: readonly string[];
}

async function writePrivate(path: string, data: string): Promise<void> {
  await writeFile(path, data, { mode: 0o600, flag: "wx" });
  await chmod(path, 0o600);
}

export async function initHome(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.dir);
  const configFile = join(dir, "config.json");
  if (existsSync(configFile)) throw new Error(`${configFile} already exists: refusing to overwrite an initialised MCKO home`);
  await mkdir(join(dir, "tls"), { recursive: true, mode: 0o700 });
  await mkdir(join(dir, "data"), { recursive: true, mode: 0o700 });
  await chmod(dir, 0o700);

  const ca = createCa({ commonName: "MCKO CA", validityDays: options.validityDays * 5 });
  const server = issueServerCert(ca, { commonName: "mckod", dnsNames: options.dnsNames, ipAddresses: options.ipAddresses, validityDays: options.validityDays });
  const admin = issueClientCert(ca, { commonName: "admin", grants: [{ role: "admin", vault: "*" }], validityDays: options.validityDays });
  const files: string[] = [];
  const put = async (name: string, data: string, secret: boolean) => {
    const p = join(dir, name);
    if (secret) await writePrivate(p, data);
    else await writeFile(p, data, { flag: "wx" });
    files.push(p);
  };
  await put("tls/ca.pem", ca.certPem, false);
  await put("tls/ca.key", ca.keyPem, true);
  await put("tls/server.pem", server.certPem, false);
  await put("tls/server.key", server.keyPem, true);
  await put("admin.pem", admin.certPem, false);
  await put("admin.key", admin.keyPem, true);

  let masterKcv: string;
  let hsmConfig: Record<string, unknown>;
  if (options.hsm.backend === "software") {
    const keyFile = join(dir, "master.key");
    masterKcv = await SoftwareHsm.initMasterKeyFile(keyFile);
    files.push(keyFile);
    hsmConfig = { backend: "software", masterKeyFile: "master.key" };
  } else {
    const h = options.hsm;
    applyEnv(h.moduleEnv);
    const { Pkcs11Hsm } = await import("../hsm/pkcs11/pkcs11-hsm.js");
    masterKcv = await Pkcs11Hsm.initMasterKey({ modulePath: h.modulePath, tokenLabel: h.tokenLabel, masterKeyLabel: h.masterKeyLabel, pin: h.pin, adopt: h.adopt });
    hsmConfig = {
      backend: "pkcs11",
      modulePath: h.modulePath,
      tokenLabel: h.tokenLabel,
      masterKeyLabel: h.masterKeyLabel,
      ...(h.pinFile ? { pinFile: resolve(h.pinFile) } : {}),
      ...(Object.keys(h.moduleEnv).length ? { moduleEnv: h.moduleEnv } : {}),
    };
  }

  const config = {
    $comment: "MCKO daemon configuration, written by `mcko init`. Paths are relative to this file. See README.md, 'Configuration'.",
    listen: options.listen,
    tls: { caCertFile: "tls/ca.pem", certFile: "tls/server.pem", keyFile: "tls/server.key" },
    dataDir: "data",
    hsm: hsmConfig,
    logLevel: "info",
  };
  await put("config.json", JSON.stringify(config, null, 2) + "\n", false);
  const host = options.listen.replace(/:\d+$/, "");
  // "localhost" rather than 127.0.0.1: TLS clients must not send an IP address as server name (RFC 6066).
  const connectHost = ["0.0.0.0", "::", "[::]", "127.0.0.1"].includes(host) ? "localhost" : host;
  const client = { address: `${connectHost}:${options.listen.replace(/^.*:/, "")}`, caCertFile: "tls/ca.pem", certFile: "admin.pem", keyFile: "admin.key" };
  await put("client.json", JSON.stringify(client, null, 2) + "\n", false);
  return { configFile, masterKcv, files };
}
