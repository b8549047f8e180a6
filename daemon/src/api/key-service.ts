/** mcko.v1.KeyService: validate, authorize, call core, convert. No business logic here. */
import type { KeyServiceServer } from "../../../protos/gen/mcko/v1/key_service.js";
import { KeyState as PbState } from "../../../protos/gen/mcko/v1/key.js";
import { KeyService, MAX_ROTATION_PERIOD_SECONDS, MIN_ROTATION_PERIOD_SECONDS, type KeyUpdate } from "../core/keys.js";
import { ALGORITHM_NAMES, STATE_NAMES, algorithmFromProto, durationSeconds, keyToProto, stateFromProto } from "./convert/key.js";
import { makePageToken, readPageToken } from "./page-token.js";
import { unary, type ApiDeps } from "./unary.js";
import { Checks, pageSizeOf } from "./validate.js";
import type { Duration } from "../../../protos/gen/google/protobuf/duration.js";

const SVC = "/mcko.v1.KeyService/";
const UPDATABLE = ["activation_time", "deactivation_time", "rotation_period", "labels"] as const;

function checkTime(c: Checks, field: string, d: Date | undefined): void {
  if (d !== undefined && Number.isNaN(d.getTime())) c.add(field, "is not a valid timestamp");
}

function checkRotation(c: Checks, field: string, d: Duration | undefined): number | undefined {
  if (d === undefined) return undefined;
  const s = durationSeconds(d);
  if (s === 0) return 0;
  if (!Number.isFinite(s) || s < MIN_ROTATION_PERIOD_SECONDS || s > MAX_ROTATION_PERIOD_SECONDS || d.nanos !== 0) {
    c.add(field, `must be whole seconds from ${MIN_ROTATION_PERIOD_SECONDS}s (1 hour) to ${MAX_ROTATION_PERIOD_SECONDS}s (100 years), or 0 to disable`);
    return undefined;
  }
  return s;
}

export function keyServiceHandlers(deps: ApiDeps & { keys: KeyService }): KeyServiceServer {
  const keys = deps.keys;
  return {
    createKey: unary(deps, `${SVC}CreateKey`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const vault = c.vaultName("parent", req.parent);
      if (vault) {
        ctx.vault = vault;
        ctx.resource = req.parent;
      }
      c.childId("key_id", req.keyId);
      if (vault && c.isEmpty) ctx.resource = `${req.parent}/keys/${req.keyId}`;
      if (vault) ctx.authorize("keys.create", vault);
      c.requestId("request_id", req.requestId);
      const k = req.key;
      let algorithm;
      if (!k) c.add("key", "is required (with at least key.algorithm)");
      else {
        if (k.algorithm === 0) c.add("key.algorithm", `is required: one of ${ALGORITHM_NAMES}`);
        else if (!(algorithm = algorithmFromProto(k.algorithm))) c.add("key.algorithm", `unknown value ${k.algorithm}: use one of ${ALGORITHM_NAMES}`);
        checkTime(c, "key.activation_time", k.activationTime);
        checkTime(c, "key.deactivation_time", k.deactivationTime);
        c.labels("key.labels", k.labels);
      }
      const rotation = checkRotation(c, "key.rotation_period", k?.rotationPeriod);
      let initial: "PRE_ACTIVATION" | "ACTIVE" | undefined;
      if (req.initialState !== 0) {
        const s = stateFromProto(req.initialState);
        if (s === "PRE_ACTIVATION" || s === "ACTIVE") initial = s;
        else c.add("initial_state", `must be PRE_ACTIVATION or ACTIVE (or unset); got ${s ?? req.initialState}`);
      }
      c.throwIfAny();
      const key = await keys.create(ctx.actor, {
        vault: vault!,
        keyId: req.keyId,
        algorithm: algorithm!,
        ...(k!.activationTime ? { activationTime: k!.activationTime } : {}),
        ...(k!.deactivationTime ? { deactivationTime: k!.deactivationTime } : {}),
        ...(rotation ? { rotationPeriodSeconds: rotation } : {}),
        labels: k!.labels,
        ...(initial ? { initialState: initial } : {}),
        ...(req.requestId ? { requestId: req.requestId.toLowerCase() } : {}),
      });
      return { key: keyToProto(key) };
    }),

    getKey: unary(deps, `${SVC}GetKey`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const n = c.keyName("name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("keys.get", n!.vault);
      return { key: keyToProto(await keys.get(n!.vault, n!.key)) };
    }),

    listKeys: unary(deps, `${SVC}ListKeys`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const vault = c.vaultName("parent", req.parent);
      c.pageSize("page_size", req.pageSize);
      c.maxLength("filter", req.filter, 2048);
      c.throwIfAny();
      ctx.vault = vault!;
      ctx.resource = req.parent;
      ctx.authorize("keys.list", vault!);
      KeyService.checkFilter(req.filter);
      const scope = `keys|${req.parent}|${req.filter}`;
      const startAfter = readPageToken(req.pageToken, scope);
      const page = await keys.list(vault!, { pageSize: pageSizeOf(req.pageSize, 50), filter: req.filter, ...(startAfter ? { startAfter } : {}) });
      return { keys: page.keys.map(keyToProto), nextPageToken: page.nextStartAfter ? makePageToken(scope, page.nextStartAfter) : "" };
    }),

    updateKey: unary(deps, `${SVC}UpdateKey`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const k = req.key;
      const n = k ? c.keyName("key.name", k.name) : (c.add("key", "is required"), undefined);
      if (n) {
        ctx.vault = n.vault;
        ctx.resource = k!.name;
        ctx.authorize("keys.update", n.vault);
      }
      const paths = req.updateMask ?? [];
      if (paths.length === 0) c.add("update_mask", `is required: name the fields to change (${UPDATABLE.join(", ")})`);
      const update: { -readonly [P in keyof KeyUpdate]: KeyUpdate[P] } = {};
      for (const path of paths) {
        if (path === "state") c.add("update_mask", "state cannot be updated: use SetKeyState");
        else if (path === "algorithm") c.add("update_mask", "algorithm is immutable: create a new key");
        else if (!(UPDATABLE as readonly string[]).includes(path)) c.add("update_mask", `${JSON.stringify(path)} cannot be updated; updatable: ${UPDATABLE.join(", ")}`);
      }
      if (k) {
        if (paths.includes("activation_time")) {
          checkTime(c, "key.activation_time", k.activationTime);
          update.activationTime = k.activationTime ?? null;
        }
        if (paths.includes("deactivation_time")) {
          checkTime(c, "key.deactivation_time", k.deactivationTime);
          update.deactivationTime = k.deactivationTime ?? null;
        }
        if (paths.includes("rotation_period")) update.rotationPeriodSeconds = checkRotation(c, "key.rotation_period", k.rotationPeriod) || null;
        if (paths.includes("labels")) {
          c.labels("key.labels", k.labels);
          update.labels = k.labels;
        }
      }
      c.throwIfAny();
      return { key: keyToProto(await keys.update(ctx.actor, n!.vault, n!.key, update, k!.etag || undefined)) };
    }),

    deleteKey: unary(deps, `${SVC}DeleteKey`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = c.keyName("name", req.name);
      c.maxLength("etag", req.etag, 64);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("keys.delete", n!.vault);
      await keys.delete(ctx.actor, n!.vault, n!.key, req.etag || undefined);
      return {};
    }),

    setKeyState: unary(deps, `${SVC}SetKeyState`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = c.keyName("name", req.name);
      if (n) {
        ctx.vault = n.vault;
        ctx.resource = req.name;
        ctx.authorize("keys.setState", n.vault);
      }
      const target = req.state === PbState.KEY_STATE_UNSPECIFIED ? undefined : stateFromProto(req.state);
      if (req.state === PbState.KEY_STATE_UNSPECIFIED) c.add("state", `is required: one of ${STATE_NAMES}`);
      else if (!target) c.add("state", `unknown value ${req.state}: use one of ${STATE_NAMES}`);
      c.maxLength("reason", req.reason);
      c.maxLength("etag", req.etag, 64);
      if (target === "COMPROMISED" && req.reason.trim() === "") c.add("reason", "is required when marking a key COMPROMISED: say what happened (it goes into the audit log)");
      c.throwIfAny();
      return { key: keyToProto(await keys.setState(ctx.actor, n!.vault, n!.key, target!, req.etag || undefined, req.reason)) };
    }),

    rotateKey: unary(deps, `${SVC}RotateKey`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = c.keyName("name", req.name);
      if (n) {
        ctx.vault = n.vault;
        ctx.resource = req.name;
        ctx.authorize("keys.rotate", n.vault);
      }
      c.requestId("request_id", req.requestId);
      c.maxLength("etag", req.etag, 64);
      c.throwIfAny();
      return { key: keyToProto(await keys.rotate(ctx.actor, n!.vault, n!.key, req.etag || undefined, req.requestId ? req.requestId.toLowerCase() : undefined)) };
    }),
  };
}
