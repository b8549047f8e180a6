/**
 * PKCS#11 failures at the target token → `ConnectorError`. The module registry (hsm/pkcs11/module.ts) reports a
 * library that does not load, an unknown token label and a refused PIN as `HsmError`s; they become field-naming
 * config errors here. Messages carry the CKR name, never data, and are scrubbed of the PIN as a backstop.
 */
import pkcs11js from "pkcs11js";
import { HsmError } from "../../hsm/hsm.js";
import { CKR_PIN_REFUSED, CKR_TOKEN_GONE, ckrCode, ckrName } from "../../hsm/pkcs11/errors.js";
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

/** PKCS#11 v2.40 return values pkcs11js 2.1.7 does not export. */
export const CKR_ACTION_PROHIBITED = 0x1b;

/** The token or the session went away: retry on a fresh connection. */
const GONE = new Set<number>([...CKR_TOKEN_GONE, pkcs11js.CKR_FUNCTION_FAILED]);

const PIN = CKR_PIN_REFUSED;

const UNSUPPORTED = new Set<number>([pkcs11js.CKR_MECHANISM_INVALID, pkcs11js.CKR_MECHANISM_PARAM_INVALID, pkcs11js.CKR_KEY_TYPE_INCONSISTENT]);

/** Whether the failure means the connection (sessions, login) should be thrown away before the next attempt. */
export function isConnectionLost(e: unknown): boolean {
  if (e instanceof ConnectorError) return e.kind === "UNAVAILABLE";
  const code = ckrCode(e);
  return code !== undefined && GONE.has(code);
}

export function translatePkcs11Error(e: unknown, operation: string, tokenLabel: string, credentials: ConnectorCredentials): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const clean = (text: string) => scrub(text, credentials).slice(0, 400);
  if (e instanceof HsmError) {
    const details = { cloudCode: e.reason, operation };
    switch (e.reason) {
      case "HSM_TOKEN_NOT_FOUND":
        return new ConnectorError("INVALID_CONFIG", clean(e.message), { ...details, field: "token_label" });
      case "HSM_LOGIN_FAILED": {
        // The registry's own message speaks of the daemon's PIN file; say which keystore field is wrong instead.
        const code = ckrCode(e.cause);
        const why = code !== undefined ? ckrName(code) : /different PIN/.test(e.message) ? "this daemon is already logged in to the token with another PIN" : "login refused";
        return new ConnectorError("CREDENTIALS_REJECTED", `pin: token "${tokenLabel}" refused the user PIN (${why})`, { ...details, cloudCode: code !== undefined ? ckrName(code) : e.reason, field: "pin" });
      }
      case "HSM_INVALID_INPUT":
        return new ConnectorError("INVALID_CONFIG", clean(e.message), { ...details, field: "token_label" });
      case "HSM_UNAVAILABLE":
        // acquireModule's "cannot load the PKCS#11 module": the file is there but is no usable PKCS#11 library.
        if (/cannot load the PKCS#11 module/.test(e.message)) return new ConnectorError("INVALID_CONFIG", clean(e.message), { ...details, field: "module_path" });
        return new ConnectorError("UNAVAILABLE", `PKCS#11 token "${tokenLabel}" ${operation}: ${clean(e.message)}`, { ...details, retryable: true });
      default:
        return new ConnectorError("REJECTED", `PKCS#11 token "${tokenLabel}" ${operation}: ${clean(e.message)}`, details);
    }
  }
  const code = ckrCode(e);
  if (code === undefined) {
    return new ConnectorError("REJECTED", `PKCS#11 token "${tokenLabel}" ${operation} failed: ${clean(e instanceof Error ? e.message : String(e))}`, { operation });
  }
  const name = code === CKR_ACTION_PROHIBITED ? "CKR_ACTION_PROHIBITED" : ckrName(code);
  const details = { cloudCode: name, operation };
  if (GONE.has(code)) return new ConnectorError("UNAVAILABLE", `PKCS#11 token "${tokenLabel}" ${operation} failed with ${name}`, { ...details, retryable: true });
  if (PIN.has(code)) return new ConnectorError("CREDENTIALS_REJECTED", `the token "${tokenLabel}" refused the pin (${name})`, { ...details, field: "pin" });
  if (UNSUPPORTED.has(code)) return new ConnectorError("UNSUPPORTED_ALGORITHM", `PKCS#11 token "${tokenLabel}" ${operation}: the token does not support it (${name})`, details);
  if (code === pkcs11js.CKR_OBJECT_HANDLE_INVALID || code === pkcs11js.CKR_KEY_HANDLE_INVALID) return new ConnectorError("NOT_FOUND", `PKCS#11 token "${tokenLabel}" ${operation}: the object is gone (${name})`, details);
  if (code === pkcs11js.CKR_GENERAL_ERROR) {
    // SoftHSM 2.6 returns it now and then when token objects are created from several threads at once (its object
    // store races: softhsm/SoftHSMv2#573). The connector creates token objects from one thread (token-connector.ts),
    // which stopped the failures we saw; this is the backstop for what remains (the transport key pair is generated
    // in the pool, and other tokens may have their own transient faults). Such a failure creates nothing, so the
    // push is retried until the call deadline; a cause that persists still ends the push with this error.
    return new ConnectorError("REJECTED", `PKCS#11 token "${tokenLabel}" ${operation} failed with ${name} (retried until the call deadline)`, { ...details, retryable: true });
  }
  return new ConnectorError("REJECTED", `PKCS#11 token "${tokenLabel}" refused ${operation} with ${name}`, details);
}
