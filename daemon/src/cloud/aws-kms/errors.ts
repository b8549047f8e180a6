/** AWS KMS / SDK errors → `ConnectorError`, with the cloud's error code and messages scrubbed of credentials. */
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

const CREDENTIAL_CODES = new Set([
  "UnrecognizedClientException",
  "InvalidSignatureException",
  "IncompleteSignatureException",
  "MissingAuthenticationTokenException",
  "AccessDeniedException",
  "ExpiredTokenException",
  "InvalidClientTokenId",
  "SignatureDoesNotMatch",
]);
const RETRYABLE_CODES = new Set(["ThrottlingException", "KMSInternalException", "InternalFailure", "ServiceUnavailable", "DependencyTimeoutException", "RequestTimeout", "TooManyRequestsException"]);
const NETWORK_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "TimeoutError", "AbortError"]);

interface SdkLikeError {
  name?: string;
  message?: string;
  code?: string;
  $metadata?: { httpStatusCode?: number };
  $fault?: "client" | "server";
}

export function translateAwsError(e: unknown, operation: string, credentials: ConnectorCredentials): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const err = (typeof e === "object" && e !== null ? e : { message: String(e) }) as SdkLikeError;
  const code = err.name && err.name !== "Error" ? err.name : (err.code ?? "Error");
  const status = err.$metadata?.httpStatusCode;
  const msg = scrub(err.message ?? "", credentials).slice(0, 300);
  const details = { cloudCode: code, operation };
  if (NETWORK_CODES.has(code) || (err.code !== undefined && NETWORK_CODES.has(err.code)) || status === undefined && !err.$fault) {
    // No HTTP answer: connection refused, DNS, or our per-attempt timeout aborted the request.
    const retryable = code !== "ENOTFOUND";
    return new ConnectorError("UNAVAILABLE", `AWS KMS ${operation}: no answer from the endpoint (${code}${msg ? `: ${msg}` : ""})`, { ...details, retryable });
  }
  if (RETRYABLE_CODES.has(code) || (status !== undefined && status >= 500)) {
    return new ConnectorError("UNAVAILABLE", `AWS KMS ${operation} failed: ${code}${msg ? `: ${msg}` : ""}`, { ...details, retryable: true });
  }
  if (CREDENTIAL_CODES.has(code)) {
    if (/region/i.test(msg)) return new ConnectorError("INVALID_CONFIG", `AWS KMS refused the region: ${code}: ${msg}`, { ...details, field: "region" });
    return new ConnectorError("CREDENTIALS_REJECTED", `AWS KMS refused the credentials: ${code}${msg ? `: ${msg}` : ""}`, details);
  }
  if (code === "NotFoundException") return new ConnectorError("NOT_FOUND", `AWS KMS ${operation}: ${msg || "not found"}`, details);
  return new ConnectorError("REJECTED", `AWS KMS refused ${operation}: ${code}${msg ? `: ${msg}` : ""}`, details);
}
