/**
 * A PKCS#11 library is process-global: it is loaded and `C_Initialize`d once per process, and a token's login
 * state is shared by every session the process has on it. This registry (the one module-level state of the
 * backend, forced by PKCS#11 itself) counts users per library path and per slot, so several backends, the
 * `initMasterKey` helper, tests and the benchmark can share one library: the last user finalises it.
 *
 * Always `C_Initialize` with CKF_OS_LOCKING_OK: without it SoftHSM runs without mutexes and concurrent calls crash the
 * process (STACK.md gotcha 15).
 */
import { createHmac, randomBytes } from "node:crypto";
import pkcs11js from "pkcs11js";
import { HsmError } from "../hsm.js";
import type { Secret } from "../../util/secret.js";
import { ckrCode, ckrName, toHsmError } from "./errors.js";

export type Pkcs11 = pkcs11js.PKCS11;
export type Handle = Buffer;

interface ModuleEntry {
  readonly pkcs11: Pkcs11;
  readonly finalizeOnRelease: boolean;
  refs: number;
  /** Logins by slot (hex handle): how many users rely on it and a keyed digest of the PIN used. */
  readonly logins: Map<string, { users: number; pinDigest: Buffer }>;
}

const modules = new Map<string, ModuleEntry>();
/** Keys the PIN digests above; never leaves the process. */
const pinDigestKey = randomBytes(32);

/** One user's hold on a loaded, initialised library. `release()` exactly once. */
export interface Pkcs11Module {
  readonly pkcs11: Pkcs11;
  readonly modulePath: string;
  release(): void;
}

export function acquireModule(modulePath: string): Pkcs11Module {
  let entry = modules.get(modulePath);
  if (entry === undefined) {
    const pkcs11 = new pkcs11js.PKCS11();
    try {
      pkcs11.load(modulePath);
    } catch (cause) {
      throw new HsmError(
        "HSM_UNAVAILABLE",
        `cannot load the PKCS#11 module ${modulePath}: ${cause instanceof Error ? cause.message : "error"}`,
        { cause },
      );
    }
    let finalizeOnRelease = true;
    try {
      pkcs11.C_Initialize({ flags: pkcs11js.CKF_OS_LOCKING_OK });
    } catch (cause) {
      if (ckrCode(cause) === pkcs11js.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        finalizeOnRelease = false; // someone else in this process owns the library's lifetime
      } else {
        throw toHsmError(cause, `C_Initialize of ${modulePath}`);
      }
    }
    entry = { pkcs11, finalizeOnRelease, refs: 0, logins: new Map() };
    modules.set(modulePath, entry);
  }
  entry.refs++;
  const held = entry;
  let released = false;
  return {
    pkcs11: held.pkcs11,
    modulePath,
    release(): void {
      if (released) return;
      released = true;
      held.refs--;
      if (held.refs === 0) {
        modules.delete(modulePath);
        try {
          if (held.finalizeOnRelease) held.pkcs11.C_Finalize();
        } finally {
          held.pkcs11.close();
        }
      }
    },
  };
}

/** The slot whose token has this label (STACK.md gotcha 16: SoftHSM slot numbers are random). */
export function findSlotByTokenLabel(mod: Pkcs11Module, tokenLabel: string): Handle {
  const { pkcs11 } = mod;
  let slots: Handle[];
  try {
    slots = pkcs11.C_GetSlotList(true);
  } catch (e) {
    throw toHsmError(e, "C_GetSlotList");
  }
  const labels: string[] = [];
  const matches: Handle[] = [];
  for (const slot of slots) {
    let info: pkcs11js.TokenInfo;
    try {
      info = pkcs11.C_GetTokenInfo(slot);
    } catch {
      continue; // a slot whose token went away between the two calls
    }
    const label = info.label.replace(/[ \0]+$/, "");
    if ((info.flags & pkcs11js.CKF_TOKEN_INITIALIZED) === 0) continue;
    labels.push(label);
    if (label === tokenLabel) matches.push(slot);
  }
  const [slot, ...others] = matches;
  if (slot === undefined) {
    throw new HsmError(
      "HSM_TOKEN_NOT_FOUND",
      `no initialised token labelled "${tokenLabel}" in PKCS#11 module ${mod.modulePath} ` +
        `(tokens present: ${labels.length > 0 ? labels.map((l) => `"${l}"`).join(", ") : "none"}); ` +
        `check the token label in the configuration (and SOFTHSM2_CONF for SoftHSM)`,
    );
  }
  if (others.length > 0) {
    throw new HsmError(
      "HSM_INVALID_INPUT",
      `${matches.length} tokens are labelled "${tokenLabel}" in ${mod.modulePath}; token labels must be unique`,
    );
  }
  return slot;
}

export function openSession(mod: Pkcs11Module, slot: Handle): Handle {
  try {
    return mod.pkcs11.C_OpenSession(slot, pkcs11js.CKF_SERIAL_SESSION | pkcs11js.CKF_RW_SESSION);
  } catch (e) {
    throw toHsmError(e, "C_OpenSession");
  }
}

/**
 * Logs the user in (for the whole process, as PKCS#11 does) or joins an existing login made by this registry
 * with the same PIN. Pair every successful `login` with `logoutUser` after closing the caller's sessions.
 */
export function login(mod: Pkcs11Module, slot: Handle, session: Handle, pin: Secret, tokenLabel: string): void {
  const entry = modules.get(mod.modulePath);
  if (entry === undefined) throw new HsmError("HSM_INTERNAL", "the PKCS#11 module was released");
  const slotKey = slot.toString("hex");
  const pinDigest = createHmac("sha256", pinDigestKey).update(pin.expose()).digest();
  const existing = entry.logins.get(slotKey);
  if (existing !== undefined) {
    if (!existing.pinDigest.equals(pinDigest)) {
      throw new HsmError(
        "HSM_LOGIN_FAILED",
        `token "${tokenLabel}" is already logged in by this process with a different PIN; check the PIN file`,
      );
    }
    existing.users++;
    return;
  }
  try {
    // pkcs11js takes the PIN as a string, which cannot be zeroed; it lives only for this call.
    mod.pkcs11.C_Login(session, pkcs11js.CKU_USER, pin.expose().toString("utf8"));
  } catch (e) {
    const code = ckrCode(e);
    if (code !== pkcs11js.CKR_USER_ALREADY_LOGGED_IN) {
      if (code === pkcs11js.CKR_PIN_INCORRECT || code === pkcs11js.CKR_PIN_INVALID || code === pkcs11js.CKR_PIN_LEN_RANGE) {
        throw new HsmError(
          "HSM_LOGIN_FAILED",
          `login to token "${tokenLabel}" failed: wrong user PIN (${ckrName(code)}); check the PIN file or ` +
            `environment variable. Repeated failures can lock the token.`,
          { cause: e },
        );
      }
      if (code === pkcs11js.CKR_PIN_LOCKED) {
        throw new HsmError(
          "HSM_LOGIN_FAILED",
          `the user PIN of token "${tokenLabel}" is locked; the security officer must unlock it`,
          { cause: e },
        );
      }
      throw toHsmError(e, `C_Login to token "${tokenLabel}"`);
    }
    // Logged in by code outside this registry: nothing to verify the PIN against.
  }
  entry.logins.set(slotKey, { users: 1, pinDigest });
}

/** Ends one user's reliance on the login; the token logs out by itself when the process's last session closes. */
export function logoutUser(mod: Pkcs11Module, slot: Handle): void {
  const entry = modules.get(mod.modulePath);
  const slotKey = slot.toString("hex");
  const existing = entry?.logins.get(slotKey);
  if (entry === undefined || existing === undefined) return;
  existing.users--;
  if (existing.users === 0) entry.logins.delete(slotKey);
}
