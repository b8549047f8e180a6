/** Audit records → proto AuditEvent. */
import type { AuditEvent } from "../../../../protos/gen/mcko/v1/audit_event.js";
import type { AuditRecord } from "../../core/audit/chain.js";
import { formatAuditEventName } from "../../core/names.js";

export function auditToProto(r: AuditRecord): AuditEvent {
  return {
    name: formatAuditEventName(r.vault ?? undefined, r.seq),
    sequence: BigInt(r.seq),
    time: new Date(r.time),
    principal: r.principal,
    method: r.method,
    resource: r.resource,
    result: r.result,
    reason: r.reason,
    details: { ...r.details },
    prevHash: r.prevHash,
    hash: r.hash,
  };
}
