// Key Protect error answers: the collection envelope with errorMsg and reasons, wording and reason codes as in
// IBM's "Error messages" page (ibm-cloud-docs/key-protect error-messages.md). Codes marked UNVERIFIED are the
// emulator's best guess where the page has no example.

export const MORE_INFO = "https://cloud.ibm.com/apidocs/key-protect";

export interface KpReason {
  code: string;
  message: string;
  status: number;
  moreInfo: string;
  target?: { type: "field" | "header"; name: string };
}

const STATUS_TEXT: Readonly<Record<number, string>> = {
  400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 409: "Conflict",
  410: "Gone", 413: "Request Entity Too Large", 422: "Unprocessable Entity", 429: "Too Many Requests",
  500: "Internal Server Error", 503: "Service Unavailable",
};

export class KpError extends Error {
  constructor(
    readonly status: number,
    readonly errorMsg: string,
    readonly reasons?: KpReason[],
  ) {
    super(errorMsg);
    this.name = "KpError";
  }

  /** The first reason code, or the status text for reason-less errors (what the call log records). */
  get code(): string {
    return this.reasons?.[0]?.code ?? (STATUS_TEXT[this.status] ?? "Error").toUpperCase().replace(/ /g, "_");
  }

  body(): unknown {
    const resource: Record<string, unknown> = { errorMsg: this.errorMsg };
    if (this.reasons) resource["reasons"] = this.reasons;
    return { metadata: { collectionType: "application/vnd.ibm.kms.error+json", collectionTotal: 1 }, resources: [resource] };
  }
}

/** What the failing call was doing, as the errorMsg phrases it ("Key could not be deleted", …). */
export type Context =
  | "Key could not be created"
  | "Key could not be retrieved"
  | "Key could not be deleted"
  | "Key could not be enabled"
  | "Key could not be disabled"
  | "Action could not be performed on key"
  | "Key versions could not be retrieved"
  | "Alias could not be created"
  | "Import token could not be created"
  | "Import token could not be retrieved";

/** errorMsg "<Status text>: <context>. Please see `reasons` for more details." with one reason. */
export function kpError(status: number, ctx: Context, code: string, message: string, target?: KpReason["target"], prefix = ""): KpError {
  const reason: KpReason = { code, message, status, moreInfo: MORE_INFO };
  if (target) reason.target = target;
  return new KpError(status, `${STATUS_TEXT[status] ?? "Error"}: ${prefix}${ctx}. Please see \`reasons\` for more details.`, [reason]);
}

export const unauthorized = (): KpError => new KpError(401, "Unauthorized: The user does not have access to the specified resource");
/** A valid token without access to the instance (UNVERIFIED: IBM may answer 401 here too). */
export const forbidden = (): KpError => new KpError(403, "Forbidden: The user does not have access to the specified resource");
/** UNVERIFIED wording. */
export const missingInstance = (): KpError =>
  kpError(400, "Action could not be performed on key", "BAD_HEADER_ERR", "The bluemix-instance header is required", { type: "header", name: "bluemix-instance" });

export const keyNotFound = (ctx: Context): KpError => kpError(404, ctx, "KEY_NOT_FOUND_ERR", "Key does not exist");
export const keyDeleted = (ctx: Context): KpError =>
  kpError(410, ctx, "KEY_DELETED_ERR", "Key has already been deleted. Please delete references to this key.");
export const invalidState = (ctx: Context, needed: "active" | "suspended"): KpError =>
  kpError(409, ctx, "KEY_ACTION_INVALID_STATE_ERR", "Key is not in a valid state", undefined, `Key is not in ${needed} state: `);
export const badBody = (ctx: Context, detail?: string): KpError =>
  kpError(400, ctx, "BAD_BODY_ERR", `Invalid body data was passed: Please ensure the data passed had valid formatting with no invalid characters${detail ? `: ${detail}` : ""}`);
export const noBody = (ctx: Context): KpError => kpError(400, ctx, "NO_BODY_ERR", "Missing body in request");
export const collectionMismatch = (ctx: Context): KpError =>
  kpError(400, ctx, "COLLECTION_TOTAL_MISMATCH_ERR", "Collection total does not match number of resources");
export const invalidField = (ctx: Context, field: string, must: string): KpError =>
  kpError(400, ctx, "INVALID_FIELD_ERR", `The field \`${field}\` must be: ${must}`, { type: "field", name: field });
export const rootRequired = (): KpError =>
  kpError(400, "Action could not be performed on key", "KEY_ROOT_REQ_ERR", "Requested action can only be completed with a root key");
export const payloadRequired = (): KpError =>
  kpError(400, "Action could not be performed on key", "KEY_PAYLOAD_REQ_ERR",
    "This root key was created with user-supplied key material: Key material is required to perform a 'rotate' action", { type: "field", name: "payload" });
export const rotationLimited = (): KpError =>
  kpError(409, "Action could not be performed on key", "KEY_ROTATION_NOT_PERMITTED",
    "This root key has been rotated within the last hour: Only one 'rotate' action per hour is permitted");
export const importTokenExpired = (ctx: Context): KpError => kpError(409, ctx, "IMPORT_TOKEN_EXPIRED_ERR", "The import token has expired");
/** UNVERIFIED reason code. */
export const importTokenMissing = (ctx: Context): KpError =>
  kpError(404, ctx, "IMPORT_TOKEN_NOT_FOUND_ERR", "An import token was not found for this instance");
export const nonceMismatch = (ctx: Context): KpError =>
  kpError(400, ctx, "INCORRECT_NONCE_ERR", "The encrypted nonce given does not match existing record: Please ensure the correct nonce was given in the request");
export const nonceIvMismatch = (ctx: Context): KpError =>
  kpError(400, ctx, "INCORRECT_NONCE_IV_ERR",
    "The provided encrypted nonce was not encrypted with the key material given OR the provided IV does not match the encrypted nonce");
export const badCiphertext = (): KpError =>
  kpError(422, "Action could not be performed on key", "UNPROCESSABLE_CIPHERTEXT_ERR", "The provided ciphertext is invalid or corrupted");
export const notDualAuth = (): KpError =>
  kpError(409, "Action could not be performed on key", "NOT_DUAL_AUTH_ERR", "The key is not dual auth enabled and cannot be set for deletion");
export const authorizationsNotMet = (): KpError =>
  kpError(409, "Key could not be deleted", "AUTHORIZATIONS_NOT_MET", "Number of authorizations required to delete is not met");
/** UNVERIFIED wording: IBM's page lists no 429 example. */
export const throttled = (): KpError =>
  kpError(429, "Action could not be performed on key", "TOO_MANY_REQUESTS_ERR", "Too many requests: the rate limit for this instance was exceeded, retry later");
/** UNVERIFIED wording. */
export const unavailable = (): KpError =>
  kpError(503, "Action could not be performed on key", "SERVICE_UNAVAILABLE_ERR", "The service is temporarily unavailable, retry later");
export const routeNotFound = (): KpError => new KpError(404, "Not Found: The requested resource could not be found");
export const methodNotAllowed = (): KpError => new KpError(405, "Method Not Allowed: The requested method is not supported for this resource");
