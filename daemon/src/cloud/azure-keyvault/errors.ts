/** Azure Key Vault / SDK errors → `ConnectorError`, scrubbed of credentials. */
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

interface RestLikeError {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "REQUEST_SEND_ERROR"]);

export function translateAzureError(e: unknown, operation: string, credentials: ConnectorCredentials): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const err = (typeof e === "object" && e !== null ? e : { message: String(e) }) as RestLikeError;
  const code = err.code ?? err.name ?? "Error";
  const msg = scrub(err.message ?? "", credentials).slice(0, 300);
  const details = { cloudCode: code, operation };
  const status = err.statusCode;
  if (err.name === "AbortError" || err.name === "TimeoutError" || NETWORK.has(code) || (status === undefined && err.name !== "CredentialUnavailableError" && err.name !== "AuthenticationError")) {
    return new ConnectorError("UNAVAILABLE", `Azure Key Vault ${operation}: no answer from the vault (${code}${msg ? `: ${msg}` : ""})`, { ...details, retryable: code !== "ENOTFOUND" });
  }
  if (err.name === "AuthenticationError" || err.name === "CredentialUnavailableError" || status === 401) {
    return new ConnectorError("CREDENTIALS_REJECTED", `Azure Key Vault refused the credentials: ${code}${msg ? `: ${msg}` : ""}`, details);
  }
  if (status === 429 || (status !== undefined && status >= 500)) return new ConnectorError("UNAVAILABLE", `Azure Key Vault ${operation} failed: ${code}${msg ? `: ${msg}` : ""}`, { ...details, retryable: true });
  if (status === 404) return new ConnectorError("NOT_FOUND", `Azure Key Vault ${operation}: ${msg || "not found"}`, details);
  return new ConnectorError("REJECTED", `Azure Key Vault refused ${operation}: ${code}${msg ? `: ${msg}` : ""}`, details);
}
