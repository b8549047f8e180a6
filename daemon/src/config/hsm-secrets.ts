/**
 * Reads the PKCS#11 PIN (from `hsm.pinFile`, a 0600 file, or MCKO_HSM_PIN captured by config) and applies the
 * module's environment (e.g. SOFTHSM2_CONF) before the module is loaded. Kept in config/ because it touches the
 * process environment.
 */
import { readFileSync } from "node:fs";
import { Secret } from "../util/secret.js";
import { ConfigError, checkPrivateFile, type DaemonConfig, type Pkcs11HsmConfig } from "./config.js";

export function readHsmPin(hsm: Pkcs11HsmConfig, pinFromEnv: string | undefined): Secret {
  if (hsm.pinFile) {
    checkPrivateFile(hsm.pinFile, "hsm.pinFile");
    const raw = readFileSync(hsm.pinFile);
    const end = raw.length - (raw[raw.length - 1] === 0x0a ? 1 : 0);
    const pin = Secret.copyOf(raw.subarray(0, end));
    raw.fill(0);
    return pin;
  }
  if (pinFromEnv) return Secret.copyOf(Buffer.from(pinFromEnv, "utf8"));
  throw new ConfigError("hsm: the PKCS#11 user PIN is missing: set hsm.pinFile (a 0600 file) or the MCKO_HSM_PIN environment variable");
}

export function applyModuleEnv(config: DaemonConfig): void {
  if (config.hsm.backend === "pkcs11") applyEnv(config.hsm.moduleEnv);
}

/** Sets environment variables a PKCS#11 module reads at C_Initialize (e.g. SOFTHSM2_CONF). */
export function applyEnv(env: Readonly<Record<string, string>>): void {
  for (const [k, v] of Object.entries(env)) process.env[k] = v;
}

/** The PKCS#11 PIN from MCKO_HSM_PIN, if set (for `mcko init --hsm pkcs11`). */
export function pinFromEnvironment(): string | undefined {
  return process.env.MCKO_HSM_PIN;
}
