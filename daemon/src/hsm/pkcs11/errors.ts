/** PKCS#11 return values → `HsmError`, at the pkcs11 backend's edge. Messages name the call and the CKR, never data. */
import pkcs11js from "pkcs11js";
import { HsmError, type HsmErrorReason } from "../hsm.js";

/**
 * The CKR code of a pkcs11js error, or undefined for anything else. A few pkcs11js paths throw a plain Error whose
 * message is "CKR_NAME:code", so the message is parsed too.
 */
export function ckrCode(e: unknown): number | undefined {
  if (e instanceof pkcs11js.Pkcs11Error) return e.code;
  if (e instanceof Error) {
    const match = /^(CKR_[A-Z0-9_]+):(\d+)/.exec(e.message);
    if (match?.[2] !== undefined) return Number(match[2]);
  }
  return undefined;
}

const CKR_NAMES = new Map<number, string>();
for (const [name, value] of Object.entries(pkcs11js)) {
  if (name.startsWith("CKR_") && typeof value === "number" && !CKR_NAMES.has(value)) CKR_NAMES.set(value, name);
}

export function ckrName(code: number): string {
  return CKR_NAMES.get(code) ?? `CKR_0x${code.toString(16)}`;
}

/** The token or the session went away (also used by the pkcs11-token keystore connector). */
export const CKR_TOKEN_GONE: ReadonlySet<number> = new Set<number>([
  pkcs11js.CKR_DEVICE_ERROR,
  pkcs11js.CKR_DEVICE_MEMORY,
  pkcs11js.CKR_DEVICE_REMOVED,
  pkcs11js.CKR_TOKEN_NOT_PRESENT,
  pkcs11js.CKR_TOKEN_NOT_RECOGNIZED,
  pkcs11js.CKR_SESSION_CLOSED,
  pkcs11js.CKR_SESSION_HANDLE_INVALID,
  pkcs11js.CKR_CRYPTOKI_NOT_INITIALIZED,
  pkcs11js.CKR_USER_NOT_LOGGED_IN,
]);

/** The PIN was refused or cannot be used. */
export const CKR_PIN_REFUSED: ReadonlySet<number> = new Set<number>([
  pkcs11js.CKR_PIN_INCORRECT,
  pkcs11js.CKR_PIN_INVALID,
  pkcs11js.CKR_PIN_LEN_RANGE,
  pkcs11js.CKR_PIN_LOCKED,
  pkcs11js.CKR_PIN_EXPIRED,
  pkcs11js.CKR_USER_PIN_NOT_INITIALIZED,
]);

/** Return values by which a token says it lacks a mechanism or a parameter of it (SoftHSM: ARGUMENTS_BAD). */
export const UNSUPPORTED = new Set<number>([
  pkcs11js.CKR_MECHANISM_INVALID,
  pkcs11js.CKR_MECHANISM_PARAM_INVALID,
  pkcs11js.CKR_ARGUMENTS_BAD,
]);

/**
 * Maps an error from a PKCS#11 call. `unwrapping`: the call was C_UnwrapKey of a blob from outside, where any
 * non-device failure means the blob does not unwrap (SoftHSM reports a bad integrity check as CKR_GENERAL_ERROR).
 */
export function toHsmError(e: unknown, call: string, unwrapping = false): HsmError {
  if (e instanceof HsmError) return e;
  const code = ckrCode(e);
  if (code === undefined) {
    return new HsmError("HSM_INTERNAL", `${call} failed: ${e instanceof Error ? e.message : "unknown error"}`, {
      cause: e,
    });
  }
  let reason: HsmErrorReason;
  if (CKR_TOKEN_GONE.has(code)) reason = "HSM_UNAVAILABLE";
  else if (CKR_PIN_REFUSED.has(code)) reason = "HSM_LOGIN_FAILED";
  else if (unwrapping) reason = "HSM_UNWRAP_FAILED";
  else if (code === pkcs11js.CKR_MECHANISM_INVALID || code === pkcs11js.CKR_MECHANISM_PARAM_INVALID) {
    reason = "HSM_MECHANISM_UNSUPPORTED";
  } else reason = "HSM_INTERNAL";
  return new HsmError(reason, `${call} failed with ${ckrName(code)}`, { cause: e });
}

/** Runs a PKCS#11 call and maps its failure. */
export async function pkcs11Call<T>(call: string, fn: () => T | Promise<T>, unwrapping = false): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toHsmError(e, call, unwrapping);
  }
}
