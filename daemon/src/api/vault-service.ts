/** mcko.v1.VaultService: validate, authorize, call core, convert. */
import type { VaultServiceServer } from "../../../protos/gen/mcko/v1/vault_service.js";
import { hasAnyRole } from "../core/authz.js";
import type { VaultService } from "../core/vaults.js";
import { vaultToProto } from "./convert/vault.js";
import { makePageToken, readPageToken } from "./page-token.js";
import { unary, type ApiDeps } from "./unary.js";
import { Checks, pageSizeOf } from "./validate.js";

const SVC = "/mcko.v1.VaultService/";
const UPDATABLE = ["display_name", "description"];

export function vaultServiceHandlers(deps: ApiDeps & { vaults: VaultService }): VaultServiceServer {
  const vaults = deps.vaults;
  return {
    createVault: unary(deps, `${SVC}CreateVault`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      c.vaultId("vault_id", req.vaultId);
      if (c.isEmpty) {
        ctx.resource = `vaults/${req.vaultId}`;
        ctx.vault = req.vaultId;
      }
      ctx.authorize("vaults.create", "*");
      if (!req.vault) c.add("vault", "is required");
      c.maxLength("vault.display_name", req.vault?.displayName ?? "", 256);
      c.maxLength("vault.description", req.vault?.description ?? "");
      c.requestId("request_id", req.requestId);
      c.throwIfAny();
      const v = await vaults.create(ctx.actor, {
        id: req.vaultId,
        displayName: req.vault!.displayName,
        description: req.vault!.description,
        ...(req.requestId ? { requestId: req.requestId.toLowerCase() } : {}),
      });
      return { vault: vaultToProto(v) };
    }),

    getVault: unary(deps, `${SVC}GetVault`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const id = c.vaultName("name", req.name);
      c.throwIfAny();
      ctx.vault = id!;
      ctx.resource = req.name;
      ctx.authorize("vaults.get", id!);
      return { vault: vaultToProto(await vaults.get(id!)) };
    }),

    listVaults: unary(deps, `${SVC}ListVaults`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      c.pageSize("page_size", req.pageSize);
      c.throwIfAny();
      const scope = "vaults";
      const startAfter = readPageToken(req.pageToken, scope);
      const page = await vaults.list({ pageSize: pageSizeOf(req.pageSize, 50), visible: (v) => hasAnyRole(ctx.principal, v), ...(startAfter ? { startAfter } : {}) });
      return { vaults: page.vaults.map(vaultToProto), nextPageToken: page.nextStartAfter ? makePageToken(scope, page.nextStartAfter) : "" };
    }),

    updateVault: unary(deps, `${SVC}UpdateVault`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const id = req.vault ? c.vaultName("vault.name", req.vault.name) : (c.add("vault", "is required"), undefined);
      if (id) {
        ctx.vault = id;
        ctx.resource = req.vault!.name;
      }
      ctx.authorize("vaults.update", "*");
      const paths = req.updateMask ?? [];
      if (paths.length === 0) c.add("update_mask", `is required: name the fields to change (${UPDATABLE.join(", ")})`);
      for (const path of paths) if (!UPDATABLE.includes(path)) c.add("update_mask", `${JSON.stringify(path)} cannot be updated; updatable: ${UPDATABLE.join(", ")}`);
      c.maxLength("vault.display_name", req.vault?.displayName ?? "", 256);
      c.maxLength("vault.description", req.vault?.description ?? "");
      c.throwIfAny();
      const v = await vaults.update(
        ctx.actor,
        id!,
        {
          ...(paths.includes("display_name") ? { displayName: req.vault!.displayName } : {}),
          ...(paths.includes("description") ? { description: req.vault!.description } : {}),
        },
        req.vault!.etag || undefined,
      );
      return { vault: vaultToProto(v) };
    }),

    deleteVault: unary(deps, `${SVC}DeleteVault`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const id = c.vaultName("name", req.name);
      c.maxLength("etag", req.etag, 64);
      c.throwIfAny();
      ctx.vault = id!;
      ctx.resource = req.name;
      ctx.authorize("vaults.delete", "*");
      await vaults.delete(ctx.actor, id!, req.etag || undefined);
      return {};
    }),
  };
}
