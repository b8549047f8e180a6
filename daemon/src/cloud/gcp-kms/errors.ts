/** Google Cloud KMS / google-gax errors (gRPC status codes) → `ConnectorError`, scrubbed of credentials. */
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

/** google.rpc.Code names by number. */
const CODE_NAMES: Readonly<Record<number, string>> = {
  1: "CANCELLED", 2: "UNKNOWN", 3: "INVALID_ARGUMENT", 4: "DEADLINE_EXCEEDED", 5: "NOT_FOUND", 6: "ALREADY_EXISTS",
  7: "PERMISSION_DENIED", 8: "RESOURCE_EXHAUSTED", 9: "FAILED_PRECONDITION", 10: "ABORTED", 11: "OUT_OF_RANGE",
  12: "UNIMPLEMENTED", 13: "INTERNAL", 14: "UNAVAILABLE", 15: "DATA_LOSS", 16: "UNAUTHENTICATED",
};
/** Throttling, server trouble and our own deadline: worth another attempt. */
const RETRYABLE = new Set([1, 2, 4, 8, 10, 13, 14]);
const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH"]);

interface GaxLikeError {
  name?: string;
  message?: string;
  details?: string;
  code?: number | string;
}

export function translateGcpError(e: unknown, operation: string, credentials: ConnectorCredentials): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const err = (typeof e === "object" && e !== null ? e : { message: String(e) }) as GaxLikeError;
  const text = scrub(typeof err.details === "string" && err.details ? err.details : (err.message ?? ""), credentials).slice(0, 300);
  if (typeof err.code !== "number") {
    // No gRPC status: our attempt timeout, a socket error, or google-auth-library failing to get a token.
    const code = typeof err.code === "string" ? err.code : (err.name ?? "Error");
    if (err.name === "TimeoutError" || err.name === "AbortError" || NETWORK.has(code)) {
      return new ConnectorError("UNAVAILABLE", `Google Cloud KMS ${operation}: no answer from the endpoint (${code}${text ? `: ${text}` : ""})`, { cloudCode: code, operation, retryable: code !== "ENOTFOUND" });
    }
    if (/invalid_grant|invalid_client|unauthorized_client|Could not load the default credentials|private key|JWT|token/i.test(text)) {
      return new ConnectorError("CREDENTIALS_REJECTED", `Google Cloud KMS: no access token from the credentials (${code}${text ? `: ${text}` : ""})`, { cloudCode: code, operation });
    }
    return new ConnectorError("UNAVAILABLE", `Google Cloud KMS ${operation} failed: ${code}${text ? `: ${text}` : ""}`, { cloudCode: code, operation, retryable: false });
  }
  const code = CODE_NAMES[err.code] ?? String(err.code);
  const details = { cloudCode: code, operation };
  if (RETRYABLE.has(err.code)) return new ConnectorError("UNAVAILABLE", `Google Cloud KMS ${operation} failed: ${code}${text ? `: ${text}` : ""}`, { ...details, retryable: true });
  if (err.code === 16 || err.code === 7) return new ConnectorError("CREDENTIALS_REJECTED", `Google Cloud KMS refused the credentials for ${operation}: ${code}${text ? `: ${text}` : ""}`, details);
  if (err.code === 5) return new ConnectorError("NOT_FOUND", `Google Cloud KMS ${operation}: ${text || "not found"}`, details);
  return new ConnectorError("REJECTED", `Google Cloud KMS refused ${operation}: ${code}${text ? `: ${text}` : ""}`, details);
}
