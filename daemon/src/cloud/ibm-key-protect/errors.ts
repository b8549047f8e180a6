/**
 * Key Protect and IAM failures → `ConnectorError`. Key Protect answers errors in its collection envelope
 * (`resources[0].errorMsg` and `reasons[{code, message}]`, BYOK.md §5.1); IAM answers `{errorCode, errorMessage}`.
 * Every message is scrubbed of the credentials and of the access token in use.
 */
import { ConnectorError, scrub, type ConnectorCredentials } from "../connector.js";

/** An HTTP answer that was not a success. */
export class KpHttpError extends Error {
  override readonly name = "KpHttpError";
  constructor(
    readonly service: "IAM" | "KEY_PROTECT",
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {
    super(`${status} ${code}${detail ? `: ${detail}` : ""}`);
  }
}

/** The reason code and message of an error body of either service. */
export function parseErrorBody(service: KpHttpError["service"], status: number, text: string): KpHttpError {
  let code = `HTTP_${status}`;
  let detail = "";
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (service === "IAM") {
      if (typeof body.errorCode === "string") code = body.errorCode;
      if (typeof body.errorMessage === "string") detail = body.errorMessage;
    } else {
      const res = (Array.isArray(body.resources) ? body.resources[0] : undefined) as { errorMsg?: unknown; reasons?: Array<{ code?: unknown; message?: unknown }> } | undefined;
      const reason = res?.reasons?.[0];
      if (typeof reason?.code === "string") code = reason.code;
      detail = [typeof res?.errorMsg === "string" ? res.errorMsg : "", typeof reason?.message === "string" ? reason.message : ""].filter(Boolean).join(" — ");
    }
  } catch {
    detail = text.slice(0, 200);
  }
  return new KpHttpError(service, status, code, detail);
}

const NETWORK = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_SOCKET", "ECONNABORTED"]);

export function translateKeyProtectError(e: unknown, operation: string, credentials: ConnectorCredentials, secrets: readonly string[] = []): ConnectorError {
  if (e instanceof ConnectorError) return e;
  const clean = (text: string) => {
    let out = scrub(text, credentials);
    for (const s of secrets) if (s.length >= 4) out = out.split(s).join("[REDACTED]");
    return out.slice(0, 300);
  };
  if (e instanceof KpHttpError) {
    const msg = clean(e.detail);
    const details = { cloudCode: e.code, operation };
    const text = `${e.code}${msg ? `: ${msg}` : ""}`;
    if (e.service === "IAM") {
      if (e.status === 429 || e.status >= 500) return new ConnectorError("UNAVAILABLE", `IBM IAM token exchange failed: ${text}`, { ...details, retryable: true });
      return new ConnectorError("CREDENTIALS_REJECTED", `IBM IAM refused the API key (api_key): ${text}`, details);
    }
    if (e.status === 429 || e.status >= 500) return new ConnectorError("UNAVAILABLE", `IBM Key Protect ${operation} failed: ${text}`, { ...details, retryable: true });
    if (e.status === 401) return new ConnectorError("CREDENTIALS_REJECTED", `IBM Key Protect refused the IAM token: ${text}`, details);
    if (e.status === 403) return new ConnectorError("CREDENTIALS_REJECTED", `IBM Key Protect denied access to the instance (instance_id) with these credentials: ${text}`, details);
    if (e.status === 404 || e.status === 410) return new ConnectorError("NOT_FOUND", `IBM Key Protect ${operation}: ${text}`, details);
    return new ConnectorError("REJECTED", `IBM Key Protect refused ${operation}: ${text}`, details);
  }
  const err = (typeof e === "object" && e !== null ? e : { message: String(e) }) as { name?: string; code?: string; message?: string };
  const code = err.code ?? err.name ?? "Error";
  const msg = clean(err.message ?? "");
  if (err.name === "AbortError" || err.name === "TimeoutError" || NETWORK.has(code)) {
    return new ConnectorError("UNAVAILABLE", `IBM Key Protect ${operation}: no answer from the endpoint (${code}${msg ? `: ${msg}` : ""})`, { cloudCode: code, operation, retryable: code !== "ENOTFOUND" });
  }
  return new ConnectorError("REJECTED", `IBM Key Protect ${operation} failed: ${code}${msg ? `: ${msg}` : ""}`, { cloudCode: code, operation });
}
