/** mcko.v1.DistributionService: validate, authorize, call core, convert. No business logic here. */
import type { DistributionServiceServer } from "../../../protos/gen/mcko/v1/distribution_service.js";
import type { DistributionService } from "../core/distributions.js";
import { parseDistributionName, parseVaultName, type DistributionName } from "../core/names.js";
import { callerCredentials } from "./cloud-credentials.js";
import { distributionToProto } from "./convert/distribution.js";
import { keystoreNameOf } from "./keystore-service.js";
import { makePageToken, readPageToken } from "./page-token.js";
import { unary, type ApiDeps } from "./unary.js";
import { Checks, pageSizeOf } from "./validate.js";

const SVC = "/mcko.v1.DistributionService/";

function distributionNameOf(c: Checks, field: string, value: string): DistributionName | undefined {
  if (!c.required(field, value)) return undefined;
  const n = parseDistributionName(value);
  if (!n) c.add(field, `must be a distribution name "vaults/{vault}/keys/{key}/distributions/{keystore}"; got ${JSON.stringify(value.slice(0, 80))}`);
  return n;
}

export function distributionServiceHandlers(deps: ApiDeps & { distributions: DistributionService }): DistributionServiceServer {
  const distributions = deps.distributions;
  return {
    createDistribution: unary(deps, `${SVC}CreateDistribution`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const key = c.keyName("parent", req.parent);
      if (key) {
        ctx.vault = key.vault;
        ctx.resource = req.parent;
        ctx.authorize("distributions.create", key.vault);
      }
      const ks = keystoreNameOf(c, "keystore", req.keystore);
      if (key && ks && ks.vault !== key.vault) c.add("keystore", `must be a keystore of vault ${key.vault} (the key's vault)`);
      if (key && ks && c.isEmpty) ctx.resource = `${req.parent}/distributions/${ks.keystore}`;
      c.requestId("request_id", req.requestId);
      const cloudName = req.distribution?.cloudName ?? "";
      if (cloudName !== "" && !/^[a-zA-Z0-9_-]{1,200}$/.test(cloudName)) c.add("distribution.cloud_name", "must be 1-200 characters of [a-zA-Z0-9_-]");
      c.throwIfAny();
      const caller = callerCredentials(ctx.metadata);
      const d = await distributions.create(ctx.actor, {
        vault: key!.vault,
        key: key!.key,
        keystore: ks!.keystore,
        cloudName,
        ...(req.requestId ? { requestId: req.requestId.toLowerCase() } : {}),
        ...(caller ? { callerCredentials: caller } : {}),
      });
      return { distribution: distributionToProto(d) };
    }),

    getDistribution: unary(deps, `${SVC}GetDistribution`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const n = distributionNameOf(c, "name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("distributions.get", n!.vault);
      const caller = callerCredentials(ctx.metadata);
      const d = await distributions.get(n!.vault, n!.key, n!.keystore, req.readLive ? (caller ? { callerCredentials: caller } : {}) : undefined);
      return { distribution: distributionToProto(d) };
    }),

    listDistributions: unary(deps, `${SVC}ListDistributions`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      let vault: string | undefined;
      let key: string | undefined;
      const m = /^vaults\/([^/]+)\/keys\/-$/.exec(req.parent);
      if (m && parseVaultName(`vaults/${m[1]}`)) vault = m[1];
      else {
        const k = c.keyName("parent", req.parent);
        vault = k?.vault;
        key = k?.key;
      }
      c.pageSize("page_size", req.pageSize);
      let keystore: string | undefined;
      if (req.keystore !== "") {
        const ks = keystoreNameOf(c, "keystore", req.keystore);
        if (ks && vault && ks.vault !== vault) c.add("keystore", `must be a keystore of vault ${vault}`);
        keystore = ks?.keystore;
      }
      c.throwIfAny();
      ctx.vault = vault!;
      ctx.resource = req.parent;
      ctx.authorize("distributions.list", vault!);
      const scope = `distributions|${req.parent}|${req.keystore}`;
      const startAfter = readPageToken(req.pageToken, scope);
      const page = await distributions.list(vault!, key, { pageSize: pageSizeOf(req.pageSize, 50), ...(startAfter ? { startAfter } : {}), ...(keystore ? { keystore } : {}) });
      return { distributions: page.distributions.map(distributionToProto), nextPageToken: page.nextStartAfter ? makePageToken(scope, page.nextStartAfter) : "" };
    }),

    deleteDistribution: unary(deps, `${SVC}DeleteDistribution`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = distributionNameOf(c, "name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("distributions.delete", n!.vault);
      await distributions.delete(ctx.actor, n!.vault, n!.key, n!.keystore, callerCredentials(ctx.metadata));
      return {};
    }),

    syncDistribution: unary(deps, `${SVC}SyncDistribution`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = distributionNameOf(c, "name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("distributions.sync", n!.vault);
      return { distribution: distributionToProto(await distributions.sync(ctx.actor, n!.vault, n!.key, n!.keystore, callerCredentials(ctx.metadata))) };
    }),
  };
}
