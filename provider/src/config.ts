// The MCKO provider's configuration: the provider block's attributes, their environment defaults (MCKO_ADDR,
// MCKO_CA_CERT, MCKO_CLIENT_CERT, MCKO_CLIENT_KEY) and how they compile into a daemon connection. The only file of the
// provider that reads the environment (also the go-plugin variables, for the entry point).
import { readFileSync } from "node:fs";
import { isUnknown, type CtyValue, type ObjectValue } from "./plugin/cty.js";
import type { Diagnostics } from "./plugin/diagnostics.js";
import { readPluginEnv, type PluginEnv } from "./plugin/handshake.js";

/** The go-plugin variables Terraform set for this process (magic cookie, protocol versions, client certificate). */
export function pluginEnvFromProcess(): PluginEnv {
  return readPluginEnv(process.env);
}

export const ENV_ADDR = "MCKO_ADDR";
export const ENV_CA_CERT = "MCKO_CA_CERT";
export const ENV_CLIENT_CERT = "MCKO_CLIENT_CERT";
export const ENV_CLIENT_KEY = "MCKO_CLIENT_KEY";
export const DEFAULT_REQUEST_TIMEOUT = "60s";

/** Environment defaults for the provider block. */
export interface EnvDefaults {
  readonly address?: string;
  readonly caCert?: string;
  readonly clientCert?: string;
  readonly clientKey?: string;
}

export function readEnvDefaults(env: NodeJS.ProcessEnv = process.env): EnvDefaults {
  const pick = (k: string): string | undefined => (env[k] && env[k] !== "" ? env[k] : undefined);
  const out: { -readonly [K in keyof EnvDefaults]: EnvDefaults[K] } = {};
  const a = pick(ENV_ADDR);
  const ca = pick(ENV_CA_CERT);
  const c = pick(ENV_CLIENT_CERT);
  const k = pick(ENV_CLIENT_KEY);
  if (a) out.address = a;
  if (ca) out.caCert = ca;
  if (c) out.clientCert = c;
  if (k) out.clientKey = k;
  return out;
}

/** The provider block as decoded (attribute names as in the schema). */
export interface ProviderConfigModel {
  address: string | null;
  ca_cert: string | null;
  client_cert: string | null;
  client_key: string | null;
  request_timeout: string | null;
}

/** Everything needed to open the mTLS channel to the daemon. */
export interface DaemonConnection {
  /** host:port as the user wrote it (shown in errors). */
  readonly address: string;
  readonly caPem: Buffer;
  readonly certPem: Buffer;
  readonly keyPem: Buffer;
  readonly requestTimeoutMs: number;
}

/** Parses Go-style durations: "60s", "1m30s", "500ms", "2h". Returns milliseconds, or undefined when invalid. */
export function parseDuration(s: string): number | undefined {
  const t = s.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h))+$/.test(t)) return undefined;
  const unit: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  for (const m of t.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) total += Number(m[1]) * (unit[m[2] as string] as number);
  return total;
}

const str = (v: CtyValue | undefined): string | null | "unknown" =>
  v === undefined || v === null ? null : isUnknown(v) ? "unknown" : typeof v === "string" ? v : null;

/** Static checks of the provider block (ValidateProviderConfig): no environment, no files. */
export function validateProviderConfig(config: ObjectValue, diags: Diagnostics): void {
  const timeout = str(config["request_timeout"]);
  if (typeof timeout === "string" && timeout !== "unknown") {
    const ms = parseDuration(timeout);
    if (ms === undefined || ms <= 0) {
      diags.error("Invalid request_timeout", `"${timeout}" is not a positive duration such as "30s", "2m" or "1m30s".`, "request_timeout");
    }
  }
  const address = str(config["address"]);
  if (typeof address === "string" && address !== "unknown" && !isAddress(address)) {
    diags.error("Invalid address", `"${address}" is not a daemon address of the form host:port.`, "address");
  }
  for (const [attr, kind] of [
    ["ca_cert", "CERTIFICATE"],
    ["client_cert", "CERTIFICATE"],
    ["client_key", "PRIVATE KEY"],
  ] as const) {
    const v = str(config[attr]);
    if (typeof v === "string" && v !== "unknown" && v.includes("-----BEGIN") && !v.includes(kind)) {
      diags.error(`Invalid ${attr}`, `The inline PEM in ${attr} holds no ${kind} block.`, attr);
    }
  }
}

function isAddress(a: string): boolean {
  const m = /^(\[[0-9a-fA-F:]+\]|[^\s:/]+):(\d{1,5})$/.exec(a);
  return m !== null && Number(m[2]) > 0 && Number(m[2]) < 65536;
}

export interface ResolveDeps {
  readonly env: EnvDefaults;
  readonly readFile?: (path: string) => Buffer;
}

/**
 * Compiles the provider block plus environment defaults into a DaemonConnection. Each of ca_cert, client_cert and
 * client_key is inline PEM or a path to a PEM file. Problems are reported with the attribute's path; returns
 * undefined if there were any.
 */
export function resolveProviderConfig(config: ObjectValue, deps: ResolveDeps, diags: Diagnostics): DaemonConnection | undefined {
  const readFile = deps.readFile ?? ((p: string) => readFileSync(p));
  const start = diags.items.length;
  validateProviderConfig(config, diags);
  const value = (attr: keyof ProviderConfigModel, envName: string, fallback: string | undefined): string | undefined => {
    const v = str(config[attr]);
    if (v === "unknown") {
      diags.error(`${attr} is not known yet`, `The provider's ${attr} depends on a value known only after apply.`, attr);
      return undefined;
    }
    if (v !== null && v !== "") return v;
    if (fallback !== undefined) return fallback;
    diags.error(`Missing ${attr}`, `Set ${attr} in the provider block or the ${envName} environment variable.`, attr);
    return undefined;
  };
  const pem = (attr: "ca_cert" | "client_cert" | "client_key", envName: string, fallback: string | undefined, kind: string): Buffer | undefined => {
    const v = value(attr, envName, fallback);
    if (v === undefined) return undefined;
    let text: string;
    // Inline PEM of the wrong kind was already reported by validateProviderConfig.
    if (v.includes("-----BEGIN")) {
      if (!v.includes(kind)) return undefined;
      text = v;
    } else {
      try {
        text = readFile(v).toString("utf8");
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
        diags.error(`Cannot read ${attr}`, `${attr} names the file "${v}", which cannot be read (${code}). Give a PEM file path or inline PEM.`, attr);
        return undefined;
      }
    }
    if (!text.includes(`-----BEGIN`) || !text.includes(kind)) {
      diags.error(`Invalid ${attr}`, `${attr} holds no PEM ${kind} block.`, attr);
      return undefined;
    }
    return Buffer.from(text);
  };
  const address = value("address", ENV_ADDR, deps.env.address);
  if (address !== undefined && !isAddress(address) && diags.items.length === start) {
    diags.error("Invalid address", `"${address}" (from ${ENV_ADDR}) is not a daemon address of the form host:port.`, "address");
  }
  const caPem = pem("ca_cert", ENV_CA_CERT, deps.env.caCert, "CERTIFICATE");
  const certPem = pem("client_cert", ENV_CLIENT_CERT, deps.env.clientCert, "CERTIFICATE");
  const keyPem = pem("client_key", ENV_CLIENT_KEY, deps.env.clientKey, "PRIVATE KEY");
  const timeout = str(config["request_timeout"]);
  const requestTimeoutMs = parseDuration(typeof timeout === "string" && timeout !== "unknown" && timeout !== "" ? timeout : DEFAULT_REQUEST_TIMEOUT);
  if (diags.items.length > start || !address || !caPem || !certPem || !keyPem || requestTimeoutMs === undefined) return undefined;
  return { address, caPem, certPem, keyPem, requestTimeoutMs };
}
