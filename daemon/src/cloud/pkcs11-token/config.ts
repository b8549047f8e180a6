/** PKCS#11 token keystore settings: validation and the typed, defaulted form the connector uses. */
import { createHash } from "node:crypto";
import { existsSync, statSync } from "node:fs";
import { isAbsolute } from "node:path";
import type { KeyAlgorithm } from "../../hsm/hsm.js";
import { keyFamily } from "../../hsm/hsm.js";
import type { ConnectorCredentials, ConnectorSettings, FieldProblem } from "../connector.js";

export const PKCS11_CREDENTIAL_FIELDS = ["pin"] as const;

/**
 * What a pushed key object may be used for (proto `Pkcs11KeyUsage` without its prefix). `DEFAULT` picks by key
 * family: AES → ENCRYPT_DECRYPT, HMAC → SIGN_VERIFY, RSA → decrypt and sign, EC → SIGN_VERIFY.
 */
export const PKCS11_KEY_USAGES = ["DEFAULT", "ENCRYPT_DECRYPT", "SIGN_VERIFY", "WRAP_UNWRAP"] as const;
export type Pkcs11KeyUsage = (typeof PKCS11_KEY_USAGES)[number];

export interface Pkcs11TokenSettings {
  readonly modulePath: string;
  readonly tokenLabel: string;
  /** Prepended to the distribution's cloud name to make each key object's CKA_LABEL. */
  readonly labelPrefix: string;
  readonly keyUsage: Pkcs11KeyUsage;
  /** CKA_LABEL of the transport RSA key pair in the target token (created on first push). */
  readonly transportKeyLabel: string;
}

export const DEFAULT_TRANSPORT_KEY_LABEL = "mcko-transport";

/** PKCS#11 token labels are 32 bytes, blank-padded. */
const MAX_TOKEN_LABEL_BYTES = 32;
/** Object labels have no limit in PKCS#11; this keeps them readable and within what HSMs accept. */
const MAX_OBJECT_LABEL = 128;

export function validatePkcs11Settings(s: ConnectorSettings, creds: ConnectorCredentials | undefined): FieldProblem[] {
  const problems: FieldProblem[] = [];
  const path = s.module_path;
  if (typeof path !== "string" || path === "") problems.push({ field: "module_path", description: "is required: the PKCS#11 library, e.g. /usr/lib/softhsm/libsofthsm2.so" });
  else if (!isAbsolute(path)) problems.push({ field: "module_path", description: `${JSON.stringify(path.slice(0, 200))} is not an absolute path` });
  else if (!existsSync(path)) problems.push({ field: "module_path", description: `${JSON.stringify(path.slice(0, 200))} does not exist on the daemon's host` });
  else if (!statSync(path).isFile()) problems.push({ field: "module_path", description: `${JSON.stringify(path.slice(0, 200))} is not a file` });
  const label = s.token_label;
  if (typeof label !== "string" || label === "") problems.push({ field: "token_label", description: "is required: the label of the target token (softhsm2-util --show-slots lists them)" });
  else if (Buffer.byteLength(label) > MAX_TOKEN_LABEL_BYTES) problems.push({ field: "token_label", description: `must be at most ${MAX_TOKEN_LABEL_BYTES} bytes (PKCS#11 token labels are 32 bytes)` });
  const prefix = s.label_prefix;
  if (prefix !== undefined && (typeof prefix !== "string" || prefix.length > 64 || /[\0-\x1f#]/.test(prefix))) {
    problems.push({ field: "label_prefix", description: "must be at most 64 printable characters without '#'" });
  }
  const usage = s.key_usage;
  if (usage !== undefined && usage !== "" && !(PKCS11_KEY_USAGES as readonly unknown[]).includes(usage)) {
    problems.push({ field: "key_usage", description: `must be one of ${PKCS11_KEY_USAGES.filter((u) => u !== "DEFAULT").join(", ")} (or unset)` });
  }
  const transport = s.transport_key_label;
  if (transport !== undefined && transport !== "" && (typeof transport !== "string" || transport.length > MAX_OBJECT_LABEL || /[\0-\x1f]/.test(transport))) {
    problems.push({ field: "transport_key_label", description: `must be at most ${MAX_OBJECT_LABEL} printable characters` });
  }
  if (creds && (creds.pin ?? "") === "") problems.push({ field: "pin", description: "is required with stored credentials (the token's user PIN)" });
  return problems;
}

/** The CKA_LABEL a distribution's key object carries. */
export function objectLabel(settings: Pkcs11TokenSettings, cloudName: string): string {
  return `${settings.labelPrefix}${cloudName}`.slice(0, MAX_OBJECT_LABEL);
}

export function compilePkcs11Settings(s: ConnectorSettings): Pkcs11TokenSettings {
  return {
    modulePath: String(s.module_path),
    tokenLabel: String(s.token_label),
    labelPrefix: typeof s.label_prefix === "string" ? s.label_prefix : "",
    keyUsage: typeof s.key_usage === "string" && s.key_usage !== "" ? (s.key_usage as Pkcs11KeyUsage) : "DEFAULT",
    transportKeyLabel: typeof s.transport_key_label === "string" && s.transport_key_label !== "" ? s.transport_key_label : DEFAULT_TRANSPORT_KEY_LABEL,
  };
}

/** Why a key of `algorithm` cannot be pushed with `usage`, or undefined (token-connector.ts maps usages to flags). */
export function usageProblem(algorithm: KeyAlgorithm, usage: Pkcs11KeyUsage): string | undefined {
  const family = keyFamily(algorithm);
  if (family === "HMAC" && usage !== "DEFAULT" && usage !== "SIGN_VERIFY") return `HMAC keys can only sign and verify, not ${usage}`;
  if (family === "EC" && usage !== "DEFAULT" && usage !== "SIGN_VERIFY") return `EC keys can only sign (ECDSA), not ${usage}`;
  return undefined;
}

/** CKA_ID of the objects a push makes: the request id's 16 UUID bytes (readable in pkcs11-tool), else a digest. */
export function objectIdFor(requestId: string): Buffer {
  const hex = requestId.replace(/-/g, "");
  if (/^[0-9a-fA-F]{32}$/.test(hex)) return Buffer.from(hex, "hex");
  return createHash("sha256").update(`mcko:${requestId}`).digest().subarray(0, 16);
}
