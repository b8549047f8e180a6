// Small predicates over daemon errors for resource code (STYLE.md §4: NOT_FOUND on read leaves state, NOT_FOUND on
// delete is success). Matching is on the gRPC code and the ErrorInfo reason, never on message text.
import { status as Code } from "@grpc/grpc-js";
import { ErrorInfo } from "../../../protos/gen/google/rpc/error_details.js";
import { isServiceError, statusDetails } from "../client/errors.js";

export function isNotFound(err: unknown): boolean {
  return isServiceError(err) && err.code === Code.NOT_FOUND;
}

/** True for a refusal by the daemon (a precondition), as opposed to a transport or permission problem. */
export function isRefusal(err: unknown): boolean {
  return isServiceError(err) && (err.code === Code.FAILED_PRECONDITION || err.code === Code.ABORTED);
}

/** The ErrorInfo reason of a daemon error, if it carries one. */
export function errorReason(err: unknown): string | undefined {
  if (!isServiceError(err)) return undefined;
  for (const d of statusDetails(err)?.details ?? []) {
    if (d.typeUrl.endsWith("/google.rpc.ErrorInfo")) {
      try {
        return ErrorInfo.decode(d.value).reason || undefined;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
