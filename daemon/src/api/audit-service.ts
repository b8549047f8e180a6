/** mcko.v1.AuditService: list and verify the audit log. */
import type { AuditServiceServer } from "../../../protos/gen/mcko/v1/audit_service.js";
import type { AuditLog } from "../core/audit/audit-log.js";
import type { AuditRecord } from "../core/audit/chain.js";
import { InvalidArgumentError } from "../core/errors.js";
import { parseFilter } from "../core/filter.js";
import { auditToProto } from "./convert/audit.js";
import { makePageToken, readPageToken } from "./page-token.js";
import { unary, type ApiDeps } from "./unary.js";
import { Checks, pageSizeOf } from "./validate.js";

const SVC = "/mcko.v1.AuditService/";
const FIELDS = new Set(["result", "principal", "resource", "method", "reason"]);

export function auditServiceHandlers(deps: ApiDeps & { auditLog: AuditLog }): AuditServiceServer {
  return {
    listAuditEvents: unary(deps, `${SVC}ListAuditEvents`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      let vault: string | undefined;
      if (req.parent === "vaults/-") vault = "*";
      else vault = c.vaultName("parent", req.parent);
      c.pageSize("page_size", req.pageSize);
      c.maxLength("filter", req.filter, 2048);
      c.throwIfAny();
      ctx.vault = vault === "*" ? null : vault!;
      ctx.resource = req.parent;
      ctx.authorize("audit.list", vault!);
      const terms = parseFilter(req.filter, (f) => FIELDS.has(f));
      const scope = `audit|${req.parent}|${req.filter}`;
      const from = readPageToken(req.pageToken, scope);
      const fromSeq = from === undefined ? 1 : Number(from);
      if (!Number.isSafeInteger(fromSeq) || fromSeq < 1) throw new InvalidArgumentError([{ field: "page_token", description: "is corrupt" }], "INVALID_PAGE_TOKEN");
      const keep = (r: AuditRecord) =>
        (vault === "*" || r.vault === vault) && terms.every((t) => String((r as unknown as Record<string, unknown>)[t.field] ?? "") === t.value);
      const page = await deps.auditLog.read(fromSeq, pageSizeOf(req.pageSize, 100), keep);
      return { auditEvents: page.records.map(auditToProto), nextPageToken: page.nextSeq !== undefined ? makePageToken(scope, String(page.nextSeq)) : "" };
    }),

    verifyAuditChain: unary(deps, `${SVC}VerifyAuditChain`, { mutating: false }, async (_req, ctx) => {
      ctx.resource = "vaults/-/auditEvents";
      ctx.authorize("audit.verify", "*");
      const v = await deps.auditLog.verify();
      return {
        valid: v.valid,
        recordsChecked: BigInt(v.recordsChecked),
        firstBadSequence: BigInt(v.firstBadSequence),
        problem: v.problem,
        headSequence: BigInt(v.headSequence),
        headHash: v.headHash,
      };
    }),
  };
}
