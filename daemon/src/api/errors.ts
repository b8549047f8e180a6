/**
 * The only map from domain errors to gRPC status: code, message and a `google.rpc.Status` in the
 * `grpc-status-details-bin` trailer with ErrorInfo (always), BadRequest, PreconditionFailure, ResourceInfo and
 * RetryInfo where they apply. Unknown errors become INTERNAL with a correlation id; their text goes only to the log.
 */
import * as grpc from "@grpc/grpc-js";
import { randomUUID } from "node:crypto";
import { BadRequest, ErrorInfo, PreconditionFailure, ResourceInfo, RetryInfo } from "../../../protos/gen/google/rpc/error_details.js";
import { Status } from "../../../protos/gen/google/rpc/status.js";
import { MckoError, type ErrorKind } from "../core/errors.js";
import { HsmError } from "../hsm/hsm.js";
import { StoreIoError } from "../store/store.js";
import type { Logger } from "../log/logger.js";

export const ERROR_DOMAIN = "mcko.v1";

const CODES: Readonly<Record<ErrorKind, grpc.status>> = {
  INVALID_ARGUMENT: grpc.status.INVALID_ARGUMENT,
  NOT_FOUND: grpc.status.NOT_FOUND,
  ALREADY_EXISTS: grpc.status.ALREADY_EXISTS,
  FAILED_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  ABORTED: grpc.status.ABORTED,
  UNAUTHENTICATED: grpc.status.UNAUTHENTICATED,
  PERMISSION_DENIED: grpc.status.PERMISSION_DENIED,
  RESOURCE_EXHAUSTED: grpc.status.RESOURCE_EXHAUSTED,
  UNAVAILABLE: grpc.status.UNAVAILABLE,
  INTERNAL: grpc.status.INTERNAL,
};

export interface MappedError {
  readonly code: grpc.status;
  readonly message: string;
  readonly reason: string;
  readonly error: grpc.ServiceError;
}

function any(typeName: string, bytes: Uint8Array) {
  return { typeUrl: `type.googleapis.com/${typeName}`, value: Buffer.from(bytes) };
}

function build(code: grpc.status, message: string, reason: string, metadata: Record<string, string>, extra: Array<{ typeUrl: string; value: Buffer }>): MappedError {
  const details = [any("google.rpc.ErrorInfo", ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata }).finish()), ...extra];
  const status = Status.encode({ code, message, details }).finish();
  const md = new grpc.Metadata();
  md.set("grpc-status-details-bin", Buffer.from(status));
  const error = Object.assign(new Error(message), { code, details: message, metadata: md }) as grpc.ServiceError;
  return { code, message, reason, error };
}

/** Maps any thrown value to a gRPC error. Never passes the text of an unknown error to the client. */
export function toGrpcError(err: unknown, log: Logger): MappedError {
  if (err instanceof MckoError) {
    const extra: Array<{ typeUrl: string; value: Buffer }> = [];
    if (err.kind === "INVALID_ARGUMENT" && "violations" in err) {
      const violations = (err as MckoError & { violations: ReadonlyArray<{ field: string; description: string }> }).violations;
      extra.push(any("google.rpc.BadRequest", BadRequest.encode({ fieldViolations: violations.map((v) => ({ field: v.field, description: v.description, reason: "", localizedMessage: undefined })) }).finish()));
    }
    if (err.kind === "FAILED_PRECONDITION" && "violations" in err) {
      const violations = (err as MckoError & { violations: ReadonlyArray<{ type: string; subject: string; description: string }> }).violations;
      if (violations.length > 0) extra.push(any("google.rpc.PreconditionFailure", PreconditionFailure.encode({ violations: [...violations] }).finish()));
    }
    const resource = err.metadata.resource;
    if (resource && (err.kind === "NOT_FOUND" || err.kind === "ALREADY_EXISTS" || err.kind === "ABORTED")) {
      extra.push(any("google.rpc.ResourceInfo", ResourceInfo.encode({ resourceType: resourceType(resource), resourceName: resource, owner: "", description: "" }).finish()));
    }
    if (err.kind === "UNAVAILABLE") {
      const ms = (err as MckoError & { retryAfterMs?: number }).retryAfterMs ?? 1000;
      extra.push(any("google.rpc.RetryInfo", RetryInfo.encode({ retryDelay: { seconds: BigInt(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 } }).finish()));
      log.warn({ reason: err.reason, cause: describeCause(err.cause) }, err.message);
    }
    return build(CODES[err.kind], err.message, err.reason, { ...err.metadata }, extra);
  }
  if (err instanceof HsmError) {
    log.error({ reason: err.reason, err: { message: err.message } }, "HSM operation failed");
    return build(grpc.status.UNAVAILABLE, `the HSM could not complete the operation (${err.reason}); retry, and check the daemon log if it persists`, "HSM_UNAVAILABLE", { hsmReason: err.reason }, []);
  }
  if (err instanceof StoreIoError) {
    log.error({ err: { message: err.message } }, "store write failed");
    return build(grpc.status.UNAVAILABLE, "the vault store could not be written; nothing was changed. Retry, and check the daemon log (disk full?)", "STORE_UNAVAILABLE", {}, []);
  }
  const correlationId = randomUUID();
  log.error({ correlationId, err: err instanceof Error ? { name: err.name, message: err.message, stack: err.stack } : String(err) }, "unexpected error");
  return build(grpc.status.INTERNAL, `internal error (correlation id ${correlationId}); the daemon log has the details`, "INTERNAL", { correlationId }, []);
}

function resourceType(name: string): string {
  if (/\/keys\/[^/]+$/.test(name)) return "mcko.dev/Key";
  if (/^vaults\/[^/]+$/.test(name)) return "mcko.dev/Vault";
  return "";
}

function describeCause(cause: unknown): string | undefined {
  return cause instanceof Error ? `${cause.name}: ${cause.message}` : cause === undefined ? undefined : String(cause);
}

/** Name of a gRPC status code (`PERMISSION_DENIED`), for audit records. */
export function codeName(code: grpc.status): string {
  return grpc.status[code] ?? String(code);
}
