// Daemon errors as Terraform diagnostics (STYLE.md §4): a connection failure names the daemon's address; a daemon
// status carries google.rpc details in the grpc-status-details-bin trailer, whose ErrorInfo reason becomes the
// summary and whose BadRequest field violations become attribute paths. Never a stack trace.
import { Metadata, status as Code, type ServiceError } from "@grpc/grpc-js";
import { BadRequest, ErrorInfo, PreconditionFailure } from "../../../protos/gen/google/rpc/error_details.js";
import { Status } from "../../../protos/gen/google/rpc/status.js";
import { type AttributePath, type Diagnostic, parsePath } from "../plugin/diagnostics.js";

/** Maps a daemon field path (proto names, e.g. `key.rotation_period`) to a Terraform attribute path. */
export type FieldMapper = (field: string) => AttributePath | undefined;

/** Default mapping: drop the leading request-message segment (`key.`), keep the rest as attribute names. */
export const defaultFieldMapper: FieldMapper = (field) => {
  const parts = field.split(".").filter((p) => p !== "");
  if (parts.length === 0) return undefined;
  const rest = parts.length > 1 ? parts.slice(1) : parts;
  try {
    return parsePath(rest.join("."));
  } catch {
    return undefined;
  }
};

const TYPE_PREFIX = "type.googleapis.com/";

/** True for errors from a grpc-js call (they carry a status code and details). */
export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number" && "details" in err;
}

/** The google.rpc.Status from a gRPC error's trailers, if the daemon sent one. */
export function statusDetails(err: ServiceError): Status | undefined {
  const md = err.metadata instanceof Metadata ? err.metadata.get("grpc-status-details-bin") : [];
  const bin = md[0];
  if (!bin) return undefined;
  try {
    return Status.decode(typeof bin === "string" ? Buffer.from(bin, "base64") : bin);
  } catch {
    return undefined;
  }
}

const CONNECTIVITY = new Set<number>([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED, Code.CANCELLED]);

/**
 * Turns any error from a daemon call into diagnostics. `address` is the daemon address the provider was configured
 * with; `fieldMapper` maps BadRequest field paths to attribute paths.
 */
export function describeDaemonError(err: unknown, address: string, fieldMapper: FieldMapper = defaultFieldMapper): Diagnostic[] {
  if (!isServiceError(err)) {
    const msg = err instanceof Error ? err.message : String(err);
    return [{ severity: "error", summary: `cannot reach the MCKO daemon at ${address}`, detail: msg }];
  }
  const st = statusDetails(err);
  if (!st && CONNECTIVITY.has(err.code)) {
    const why = err.code === Code.DEADLINE_EXCEEDED ? "no answer before the request timeout" : cleanDetails(err.details);
    return [
      {
        severity: "error",
        summary: `cannot reach the MCKO daemon at ${address}: ${why}`,
        detail:
          `The provider could not talk to the MCKO daemon at ${address} (gRPC ${Code[err.code]}). Check that the daemon ` +
          `is running, that address (or MCKO_ADDR) is right, and that ca_cert, client_cert and client_key belong to its PKI.`,
      },
    ];
  }
  let reason: string | undefined;
  const violations: Diagnostic[] = [];
  const preconditions: string[] = [];
  for (const any of st?.details ?? []) {
    const type = any.typeUrl.startsWith(TYPE_PREFIX) ? any.typeUrl.slice(TYPE_PREFIX.length) : any.typeUrl;
    try {
      if (type === "google.rpc.ErrorInfo") reason = ErrorInfo.decode(any.value).reason || undefined;
      else if (type === "google.rpc.BadRequest") {
        for (const v of BadRequest.decode(any.value).fieldViolations) {
          const path = fieldMapper(v.field);
          violations.push({
            severity: "error",
            summary: `Invalid ${path ? lastName(path) ?? v.field : v.field}`,
            detail: v.description || v.reason || "rejected by the MCKO daemon",
            ...(path ? { path } : {}),
          });
        }
      } else if (type === "google.rpc.PreconditionFailure") {
        for (const v of PreconditionFailure.decode(any.value).violations) preconditions.push(v.description || `${v.type} ${v.subject}`);
      }
    } catch {
      // a detail we cannot decode adds nothing
    }
  }
  const message = st?.message || err.details || Code[err.code] || "error";
  const head: Diagnostic = {
    severity: "error",
    summary: reason ? `${humanize(reason)} (${reason})` : `MCKO daemon error: ${Code[err.code] ?? err.code}`,
    detail: [message, ...preconditions].join("\n"),
  };
  return violations.length > 0 ? violations.map((v) => ({ ...v, detail: v.detail ?? message })) : [head];
}

function lastName(p: AttributePath): string | undefined {
  for (let i = p.length - 1; i >= 0; i--) {
    const s = p[i];
    if (s && "attribute" in s) return s.attribute;
  }
  return undefined;
}

function humanize(reason: string): string {
  const s = reason.toLowerCase().replace(/_/g, " ");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

/** grpc-js wraps the socket error: keep its useful tail ("connect ECONNREFUSED 127.0.0.1:1"). */
function cleanDetails(details: string): string {
  const m = /Last error: (?:Error: )?(.*)$/s.exec(details);
  const tail = (m?.[1] ?? details).replace(/\.?\s*Resolution note:.*$/s, "").trim();
  return tail || "connection failed";
}
