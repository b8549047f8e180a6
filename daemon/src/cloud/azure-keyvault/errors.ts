/** Azure Key Vault / SDK errors → `ConnectorError`, scrubbed of credentials. */
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

interface RestLikeError {
  name?: string;
  message?: string;
  code?: string;
  statusCode?: number;
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "REQUEST_SEND_ERROR"]);

/** `vaultUrl`: the keystore's vault URL, so that a vault whose host name does not resolve is named as a bad setting. */
export function translateAzureError(e: unknown, operation: string, credentials: ConnectorCredentials, vaultUrl?: string): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const err = (typeof e === "object" && e !== null ? e : { message: String(e) }) as RestLikeError;
  const code = err.code ?? err.name ?? "Error";
  const msg = scrub(err.message ?? "", credentials).slice(0, 300);
  const details = { cloudCode: code, operation };
  const status = err.statusCode;
  const vaultHost = vaultUrl ? URL.canParse(vaultUrl) && new URL(vaultUrl).hostname : undefined;
  if (code === "ENOTFOUND" && vaultHost && msg.includes(vaultHost)) {
    // Vault names are DNS names (<name>.vault.azure.net): a host that does not resolve is a vault that does not exist.
    return new ConnectorError("INVALID_CONFIG", `Azure Key Vault: no vault at ${vaultHost} (the host name does not resolve)`, { ...details, field: "vault_url" });
  }
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
