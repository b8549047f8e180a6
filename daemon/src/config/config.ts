/**
 * The daemon's configuration: read once from a JSON file plus explicit environment overrides, validated, fully
 * defaulted and frozen. This module and the CLI's entry point are the only places that read `process.env`.
 * Relative paths in the file are relative to the file's folder. Errors name the key and where it came from.
 *
 * Environment overrides (disable them all with `"allowEnvOverrides": false` in the file):
 *   MCKO_LISTEN=host:port      listen address
 *   MCKO_DATA_DIR=dir          data folder (vault store, internal store, audit log)
 *   MCKO_LOG_LEVEL=level       trace|debug|info|warn|error|fatal|silent
 *   MCKO_HSM_PIN=pin           PKCS#11 user PIN (preferred: hsm.pinFile); never on the command line or in the file
 */
import { readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";

export type LogLevel = "trace" | "debug" | "info" | "warn" | "error" | "fatal" | "silent";
const LOG_LEVELS: readonly LogLevel[] = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];

export interface SoftwareHsmConfig {
  readonly backend: "software";
  /** AES-256 master key file (0600), made by `mcko init`. */
  readonly masterKeyFile: string;
}

export interface Pkcs11HsmConfig {
  readonly backend: "pkcs11";
  readonly modulePath: string;
  readonly tokenLabel: string;
  readonly masterKeyLabel: string;
  /** File holding the user PIN (0600). Alternatively the MCKO_HSM_PIN environment variable. */
  readonly pinFile?: string;
  /** Extra environment for the module (e.g. SOFTHSM2_CONF), applied before C_Initialize. */
  readonly moduleEnv: Readonly<Record<string, string>>;
  /** Sessions the backend keeps open (its pool); unset = the backend's default. */
  readonly sessions?: number;
}

export type HsmConfig = SoftwareHsmConfig | Pkcs11HsmConfig;

export interface DaemonConfig {
  readonly configFile: string;
  readonly listen: { readonly host: string; readonly port: number };
  readonly tls: { readonly caCertFile: string; readonly certFile: string; readonly keyFile: string };
  readonly dataDir: string;
  readonly hsm: HsmConfig;
  readonly logLevel: LogLevel;
  /** Largest request message accepted, bytes. Larger ones get RESOURCE_EXHAUSTED. */
  readonly maxRequestBytes: number;
  /** How long SIGTERM waits for in-flight calls before cancelling them. */
  readonly shutdownGraceMs: number;
  /** How often scheduled activation, deactivation and rotation are checked. */
  readonly schedulerIntervalMs: number;
  /** The PKCS#11 PIN when it came from the environment (never from the file). */
  readonly hsmPinFromEnv: string | undefined;
  /** Timeout of one cloud call attempt (keystore connectors). */
  readonly cloudAttemptTimeoutMs: number;
  /** Bound of one cloud call including retries with backoff. */
  readonly cloudDeadlineMs: number;
  /** How often the distribution reconciler finishes pending pushes and catches up with key changes. */
  readonly reconcileIntervalMs: number;
  /** Master-key rotation (`masterKeyRotation` in the file). */
  readonly masterKeyRotation: MasterKeyRotationConfig;
}

export interface MasterKeyRotationConfig {
  /** Key records re-wrapped between two progress commits. Default 50. */
  readonly batchSize: number;
  /** Test hook for crash tests: halt the re-wrap after this many keys, leaving the rotation pending. Unset in production. */
  readonly haltAfterKeys?: number;
}

export class ConfigError extends Error {
  override name = "ConfigError";
}

type Raw = Record<string, unknown>;

function isObject(v: unknown): v is Raw {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Loads and validates a config file. `env` defaults to the process environment. */
export function loadConfig(configFile: string, env: NodeJS.ProcessEnv = process.env): DaemonConfig {
  const file = resolve(configFile);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, "utf8"));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : (e as Error).message;
    throw new ConfigError(`cannot read config file ${file}: ${why}`);
  }
  if (!isObject(raw)) throw new ConfigError(`config file ${file}: the top level must be a JSON object`);
  return compileConfig(raw, file, env);
}

export function compileConfig(raw: Raw, file: string, env: NodeJS.ProcessEnv): DaemonConfig {
  const base = dirname(file);
  const problems: string[] = [];
  const where = (key: string) => `${key} (in ${file})`;
  const path = (v: unknown, key: string): string => {
    if (typeof v !== "string" || v === "") {
      problems.push(`${where(key)} must be a non-empty path`);
      return "";
    }
    return isAbsolute(v) ? v : resolve(base, v);
  };
  const known = new Set(["listen", "tls", "dataDir", "hsm", "logLevel", "maxRequestBytes", "shutdownGraceMs", "schedulerIntervalMs", "allowEnvOverrides", "cloudAttemptTimeoutMs", "cloudDeadlineMs", "reconcileIntervalMs", "masterKeyRotation", "$comment"]);
  for (const k of Object.keys(raw)) if (!known.has(k)) problems.push(`${where(k)}: unknown key`);

  const allowEnv = raw.allowEnvOverrides === undefined ? true : raw.allowEnvOverrides === true;
  const fromEnv = (name: string): string | undefined => (allowEnv ? env[name] : undefined);

  let listenRaw = typeof raw.listen === "string" ? raw.listen : "127.0.0.1:7443";
  if (raw.listen !== undefined && typeof raw.listen !== "string") problems.push(`${where("listen")} must be "host:port"`);
  const envListen = fromEnv("MCKO_LISTEN");
  if (envListen) listenRaw = envListen;
  const lm = /^(.+):(\d{1,5})$/.exec(listenRaw);
  const port = lm ? Number(lm[2]) : NaN;
  if (!lm || port > 65535) problems.push(`listen${envListen ? " (from MCKO_LISTEN)" : ` (in ${file})`} must be "host:port", got ${JSON.stringify(listenRaw)}`);
  const host = lm ? lm[1]!.replace(/^\[(.*)\]$/, "$1") : "127.0.0.1";

  const tlsRaw = isObject(raw.tls) ? raw.tls : (problems.push(`${where("tls")} must be an object with caCertFile, certFile, keyFile`), {});
  const tls = {
    caCertFile: path(tlsRaw.caCertFile, "tls.caCertFile"),
    certFile: path(tlsRaw.certFile, "tls.certFile"),
    keyFile: path(tlsRaw.keyFile, "tls.keyFile"),
  };

  const envDataDir = fromEnv("MCKO_DATA_DIR");
  const dataDir = envDataDir ? resolve(envDataDir) : path(raw.dataDir, "dataDir");

  let hsm: HsmConfig = { backend: "software", masterKeyFile: "" };
  if (!isObject(raw.hsm)) problems.push(`${where("hsm")} must be an object with "backend": "software" or "pkcs11"`);
  else if (raw.hsm.backend === "software") {
    hsm = { backend: "software", masterKeyFile: path(raw.hsm.masterKeyFile, "hsm.masterKeyFile") };
  } else if (raw.hsm.backend === "pkcs11") {
    const h = raw.hsm;
    if ("pin" in h) problems.push(`${where("hsm.pin")}: a PIN must not be written in the config file; use hsm.pinFile or MCKO_HSM_PIN`);
    const str = (v: unknown, key: string) => {
      if (typeof v !== "string" || v === "") problems.push(`${where(key)} must be a non-empty string`);
      return typeof v === "string" ? v : "";
    };
    const moduleEnv: Record<string, string> = {};
    if (h.moduleEnv !== undefined) {
      if (!isObject(h.moduleEnv)) problems.push(`${where("hsm.moduleEnv")} must be an object of strings`);
      else for (const [k, v] of Object.entries(h.moduleEnv)) {
        if (typeof v === "string") moduleEnv[k] = isAbsolute(v) || !v.includes("/") ? v : resolve(base, v);
        else problems.push(`${where(`hsm.moduleEnv.${k}`)} must be a string`);
      }
    }
    const sessions = h.sessions;
    if (sessions !== undefined && (typeof sessions !== "number" || !Number.isInteger(sessions) || sessions < 1 || sessions > 256)) {
      problems.push(`${where("hsm.sessions")} must be an integer from 1 to 256`);
    }
    hsm = {
      backend: "pkcs11",
      modulePath: str(h.modulePath, "hsm.modulePath"),
      tokenLabel: str(h.tokenLabel, "hsm.tokenLabel"),
      masterKeyLabel: typeof h.masterKeyLabel === "string" && h.masterKeyLabel ? h.masterKeyLabel : "mcko-master",
      ...(h.pinFile !== undefined ? { pinFile: path(h.pinFile, "hsm.pinFile") } : {}),
      moduleEnv,
      ...(typeof sessions === "number" ? { sessions } : {}),
    };
  } else problems.push(`${where("hsm.backend")} must be "software" or "pkcs11"`);

  let logLevel: LogLevel = "info";
  const lv = fromEnv("MCKO_LOG_LEVEL") ?? raw.logLevel;
  if (lv !== undefined) {
    if (LOG_LEVELS.includes(lv as LogLevel)) logLevel = lv as LogLevel;
    else problems.push(`logLevel must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(lv)}`);
  }

  const int = (v: unknown, key: string, def: number, min: number, max: number): number => {
    if (v === undefined) return def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${where(key)} must be an integer from ${min} to ${max}`);
      return def;
    }
    return v;
  };
  const maxRequestBytes = int(raw.maxRequestBytes, "maxRequestBytes", 4 * 1024 * 1024, 64 * 1024, 64 * 1024 * 1024);
  const shutdownGraceMs = int(raw.shutdownGraceMs, "shutdownGraceMs", 10_000, 0, 600_000);
  const schedulerIntervalMs = int(raw.schedulerIntervalMs, "schedulerIntervalMs", 1_000, 50, 3_600_000);
  const cloudAttemptTimeoutMs = int(raw.cloudAttemptTimeoutMs, "cloudAttemptTimeoutMs", 15_000, 100, 600_000);
  const cloudDeadlineMs = int(raw.cloudDeadlineMs, "cloudDeadlineMs", 60_000, 100, 3_600_000);
  const reconcileIntervalMs = int(raw.reconcileIntervalMs, "reconcileIntervalMs", 60_000, 50, 86_400_000);

  const mkrRaw: Raw = raw.masterKeyRotation === undefined ? {} : isObject(raw.masterKeyRotation) ? raw.masterKeyRotation : (problems.push(`${where("masterKeyRotation")} must be an object`), {});
  for (const k of Object.keys(mkrRaw)) if (k !== "batchSize" && k !== "haltAfterKeys") problems.push(`${where(`masterKeyRotation.${k}`)}: unknown key`);
  const masterKeyRotation: MasterKeyRotationConfig = {
    batchSize: int(mkrRaw.batchSize, "masterKeyRotation.batchSize", 50, 1, 1000),
    ...(mkrRaw.haltAfterKeys !== undefined ? { haltAfterKeys: int(mkrRaw.haltAfterKeys, "masterKeyRotation.haltAfterKeys", 0, 0, 1_000_000_000) } : {}),
  };

  if (problems.length > 0) throw new ConfigError(`invalid configuration:\n  - ${problems.join("\n  - ")}`);

  if (hsm.backend === "software") checkPrivateFile(hsm.masterKeyFile, "hsm.masterKeyFile");
  return deepFreeze({
    configFile: file,
    listen: { host, port },
    tls,
    dataDir,
    hsm,
    logLevel,
    maxRequestBytes,
    shutdownGraceMs,
    schedulerIntervalMs,
    hsmPinFromEnv: hsm.backend === "pkcs11" ? fromEnv("MCKO_HSM_PIN") : undefined,
    cloudAttemptTimeoutMs,
    cloudDeadlineMs,
    reconcileIntervalMs,
    masterKeyRotation,
  });
}

/** Refuses secret files that group or others can read. */
export function checkPrivateFile(file: string, key: string): void {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch {
    throw new ConfigError(`${key}: ${file} does not exist (run \`mcko init\` first?)`);
  }
  if ((mode & 0o077) !== 0) {
    throw new ConfigError(`${key}: ${file} is readable by group or others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`);
  }
}

function deepFreeze<T>(o: T): T {
  if (typeof o === "object" && o !== null) {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}
