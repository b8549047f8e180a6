/**
 * The one wrapper every unary handler goes through: authentication, draining check, error mapping, auditing of
 * denied and failed calls, and completing the callback exactly once. grpc-js ignores the promises of async
 * handlers, so an unwrapped rejection would hang the call or crash the process.
 */
import * as grpc from "@grpc/grpc-js";
import type { PeerCertificate } from "node:tls";
import type { AuditLog, Actor } from "../core/audit/audit-log.js";
import { isAllowed, type Permission, type Principal } from "../core/authz.js";
import { PermissionDeniedError, UnauthenticatedError, UnavailableError } from "../core/errors.js";
import type { Logger } from "../log/logger.js";
import { codeName, toGrpcError } from "./errors.js";

export interface ApiDeps {
  readonly audit: AuditLog;
  readonly log: Logger;
  /** True once the daemon started draining (SIGTERM): new calls get UNAVAILABLE. */
  readonly isDraining: () => boolean;
  /** The verified caller of a call, or undefined (api/auth.ts). */
  readonly principalOf: (call: { getAuthContext(): { sslPeerCertificate?: PeerCertificate | undefined } }) => Principal | undefined;
}

/** Per-call context handed to handlers. Handlers set `resource`/`vault` as soon as they know them (for audit). */
export class CallContext {
  resource = "";
  vault: string | null = null;
  constructor(
    readonly principal: Principal,
    readonly method: string,
    readonly metadata: grpc.Metadata,
  ) {}

  get actor(): Actor {
    return { principal: this.principal, method: this.method };
  }

  /** Throws PERMISSION_DENIED unless the caller holds `permission` on `vault` (`*` = every vault). */
  authorize(permission: Permission, vault: string): void {
    if (!isAllowed(this.principal, permission, vault)) {
      const held = this.principal.grants.map((g) => `${g.role} on ${g.vault}`).join(", ") || "no roles";
      const where = vault === "*" ? "all vaults" : `vault ${vault}`;
      throw new PermissionDeniedError(`${this.principal.subject} may not ${permission} on ${where} (holds: ${held})`, { permission, vault });
    }
  }
}

export const ANONYMOUS = "anonymous";

export function unauthenticated(): UnauthenticatedError {
  return new UnauthenticatedError(
    "a client certificate issued by this daemon's CA is required: connect with mutual TLS using a certificate from `mcko init` or `mcko cert issue`",
  );
}

export function unary<Req, Res>(
  deps: ApiDeps,
  method: string,
  options: { readonly mutating: boolean },
  handler: (request: Req, ctx: CallContext) => Promise<Res>,
): grpc.handleUnaryCall<Req, Res> {
  return (call, callback) => {
    let done = false;
    const finish = (err: grpc.ServiceError | null, res?: Res) => {
      if (done) return;
      done = true;
      if (err) callback(err);
      else callback(null, res);
    };
    const principal = deps.principalOf(call);
    const ctx = new CallContext(principal ?? { subject: ANONYMOUS, grants: [] }, method, call.metadata);
    const run = async () => {
      if (deps.isDraining()) throw new UnavailableError("SHUTTING_DOWN", "the daemon is shutting down; retry shortly", {}, { retryAfterMs: 1000 });
      if (!principal) throw unauthenticated();
      return handler(call.request, ctx);
    };
    run().then(
      (res) => finish(null, res),
      async (err: unknown) => {
        const mapped = toGrpcError(err, deps.log);
        const denied = mapped.code === grpc.status.PERMISSION_DENIED || mapped.code === grpc.status.UNAUTHENTICATED;
        if (denied || (options.mutating && mapped.reason !== "AUDIT_WRITE_FAILED" && mapped.code !== grpc.status.UNAVAILABLE)) {
          try {
            await deps.audit.record([deps.audit.event(ctx.actor, ctx.resource || method, ctx.vault, {}, codeName(mapped.code), mapped.reason)]);
          } catch (e) {
            deps.log.error({ err: e instanceof Error ? e.message : String(e), method }, "could not audit a failed call");
          }
        }
        finish(mapped.error);
      },
    );
  };
}
