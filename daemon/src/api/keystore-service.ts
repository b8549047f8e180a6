/** mcko.v1.KeystoreService: validate, authorize, call core, convert. No business logic here. */
import type { KeystoreServiceServer } from "../../../protos/gen/mcko/v1/keystore_service.js";
import type { Keystore as PbKeystore } from "../../../protos/gen/mcko/v1/keystore.js";
import type { KeystoreType } from "../cloud/connector.js";
import type { KeystoreChanges, KeystoreOptions, KeystoreService } from "../core/keystores.js";
import { CHILD_ID_RULE, parseKeystoreName, type KeystoreName } from "../core/names.js";
import { callerCredentials } from "./cloud-credentials.js";
import { CASE_OF_TYPE, FIELD_OF_CASE, keystoreToProto, sourceFromProto, splitConfig, typeFromProto, typeOfCase } from "./convert/keystore.js";
import { makePageToken, readPageToken } from "./page-token.js";
import { unary, type ApiDeps } from "./unary.js";
import { Checks, pageSizeOf } from "./validate.js";

const SVC = "/mcko.v1.KeystoreService/";
const TYPE_NAMES = "AWS_KMS, AZURE_KEY_VAULT, GCP_KMS, IBM_KEY_PROTECT, PKCS11";
const OPTION_FIELDS = ["credential_source", "allow_software_wrap", "deletion_window_days", "max_concurrency", "description"] as const;

export function keystoreNameOf(c: Checks, field: string, value: string): KeystoreName | undefined {
  if (!c.required(field, value)) return undefined;
  const n = parseKeystoreName(value);
  if (!n) c.add(field, `must be a keystore name "vaults/{vault}/keystores/{keystore}" where {keystore} ${CHILD_ID_RULE}; got ${JSON.stringify(value.slice(0, 80))}`);
  return n;
}

/** Type and config of a keystore message: the oneof decides the type; `type`, if set, must agree. */
function typeOf(c: Checks, ks: PbKeystore): KeystoreType | undefined {
  const fromType = ks.type === 0 ? undefined : typeFromProto(ks.type);
  if (ks.type !== 0 && !fromType) c.add("keystore.type", `unknown value ${ks.type}: use one of ${TYPE_NAMES}`);
  if (!ks.config) {
    c.add(fromType ? `keystore.${FIELD_OF_CASE[CASE_OF_TYPE[fromType]]}` : "keystore.type", fromType ? "is required: the connection config of the keystore's type" : `is required: set type (one of ${TYPE_NAMES}) and its config block`);
    return undefined;
  }
  const fromConfig = typeOfCase(ks.config.$case);
  if (fromType && fromType !== fromConfig) c.add("keystore.type", `is ${fromType} but the config given is ${FIELD_OF_CASE[ks.config.$case]}`);
  return fromType ?? fromConfig;
}

function options(ks: PbKeystore): KeystoreOptions {
  return {
    credentialSource: sourceFromProto(ks.credentialSource) ?? "STORED",
    allowSoftwareWrap: ks.allowSoftwareWrap,
    deletionWindowDays: ks.deletionWindowDays,
    maxConcurrency: ks.maxConcurrency || 4,
    description: ks.description,
  };
}

export function keystoreServiceHandlers(deps: ApiDeps & { keystores: KeystoreService }): KeystoreServiceServer {
  const keystores = deps.keystores;
  return {
    createKeystore: unary(deps, `${SVC}CreateKeystore`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const vault = c.vaultName("parent", req.parent);
      if (vault) {
        ctx.vault = vault;
        ctx.resource = req.parent;
      }
      c.childId("keystore_id", req.keystoreId);
      if (vault && c.isEmpty) ctx.resource = `${req.parent}/keystores/${req.keystoreId}`;
      if (vault) ctx.authorize("keystores.create", vault);
      c.requestId("request_id", req.requestId);
      const ks = req.keystore;
      let type: KeystoreType | undefined;
      if (!ks) c.add("keystore", "is required (with type and its config)");
      else {
        type = typeOf(c, ks);
        if (ks.credentialSource !== 0 && !sourceFromProto(ks.credentialSource)) c.add("keystore.credential_source", `unknown value ${ks.credentialSource}`);
      }
      c.throwIfAny();
      const { settings, credentials } = splitConfig(type!, ks!.config!.value);
      const caller = callerCredentials(ctx.metadata);
      const created = await keystores.create(ctx.actor, {
        vault: vault!,
        keystoreId: req.keystoreId,
        type: type!,
        settings,
        credentials,
        ...options(ks!),
        validateOnly: req.validateOnly,
        ...(req.requestId ? { requestId: req.requestId.toLowerCase() } : {}),
        ...(caller ? { callerCredentials: caller } : {}),
      });
      return { keystore: keystoreToProto(created) };
    }),

    getKeystore: unary(deps, `${SVC}GetKeystore`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const n = keystoreNameOf(c, "name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("keystores.get", n!.vault);
      return { keystore: keystoreToProto(await keystores.get(n!.vault, n!.keystore)) };
    }),

    listKeystores: unary(deps, `${SVC}ListKeystores`, { mutating: false }, async (req, ctx) => {
      const c = new Checks();
      const vault = c.vaultName("parent", req.parent);
      c.pageSize("page_size", req.pageSize);
      c.throwIfAny();
      ctx.vault = vault!;
      ctx.resource = req.parent;
      ctx.authorize("keystores.list", vault!);
      const scope = `keystores|${req.parent}`;
      const startAfter = readPageToken(req.pageToken, scope);
      const page = await keystores.list(vault!, { pageSize: pageSizeOf(req.pageSize, 50), ...(startAfter ? { startAfter } : {}) });
      return { keystores: page.keystores.map(keystoreToProto), nextPageToken: page.nextStartAfter ? makePageToken(scope, page.nextStartAfter) : "" };
    }),

    updateKeystore: unary(deps, `${SVC}UpdateKeystore`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const ks = req.keystore;
      const n = ks ? keystoreNameOf(c, "keystore.name", ks.name) : (c.add("keystore", "is required"), undefined);
      if (n) {
        ctx.vault = n.vault;
        ctx.resource = ks!.name;
        ctx.authorize("keystores.update", n.vault);
      }
      const paths = req.updateMask ?? [];
      if (paths.length === 0) c.add("update_mask", `is required: name the fields to change (e.g. aws_kms.endpoint, aws_kms.secret_access_key, ${OPTION_FIELDS.join(", ")})`);
      c.throwIfAny();
      const current = await keystores.get(n!.vault, n!.keystore);
      const field = FIELD_OF_CASE[CASE_OF_TYPE[current.type]];
      const configPaths = new Set<string>();
      let wholeConfig = false;
      const changes: { settings?: Record<string, string | number | boolean>; credentials?: Record<string, string>; options?: Partial<KeystoreOptions> } = {};
      const opts: { -readonly [P in keyof KeystoreOptions]?: KeystoreOptions[P] } = {};
      for (const p of paths) {
        if (p === "type") c.add("update_mask", "type is immutable: create another keystore");
        else if (p === field) wholeConfig = true;
        else if (p.startsWith(`${field}.`)) configPaths.add(p.slice(field.length + 1));
        else if ((OPTION_FIELDS as readonly string[]).includes(p)) {
          if (p === "credential_source") {
            const s = sourceFromProto(ks!.credentialSource);
            if (!s) c.add("keystore.credential_source", "must be STORED or CALLER");
            else opts.credentialSource = s;
          } else if (p === "allow_software_wrap") opts.allowSoftwareWrap = ks!.allowSoftwareWrap;
          else if (p === "deletion_window_days") opts.deletionWindowDays = ks!.deletionWindowDays;
          else if (p === "max_concurrency") opts.maxConcurrency = ks!.maxConcurrency;
          else opts.description = ks!.description;
        } else c.add("update_mask", `${JSON.stringify(p)} cannot be updated; use ${field}, ${field}.<field> or one of ${OPTION_FIELDS.join(", ")}`);
      }
      if ((wholeConfig || configPaths.size > 0) && ks!.config?.$case !== CASE_OF_TYPE[current.type]) c.add(`keystore.${field}`, `is required when update_mask names ${field} fields (the keystore is ${current.type})`);
      c.throwIfAny();
      if (wholeConfig || configPaths.size > 0) {
        const split = splitConfig(current.type, ks!.config!.value, wholeConfig ? undefined : configPaths);
        if (wholeConfig) {
          // The whole block replaces the settings; credentials change only where given.
          for (const k of Object.keys(current.settings)) if (!(k in split.settings)) split.settings[k] = "";
        }
        changes.settings = split.settings;
        changes.credentials = split.credentials;
      }
      if (Object.keys(opts).length > 0) changes.options = opts;
      const caller = callerCredentials(ctx.metadata);
      const updated = await keystores.update(ctx.actor, n!.vault, n!.keystore, changes as KeystoreChanges, ks!.etag || undefined, req.validateOnly, caller);
      return { keystore: keystoreToProto(updated) };
    }),

    deleteKeystore: unary(deps, `${SVC}DeleteKeystore`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = keystoreNameOf(c, "name", req.name);
      c.maxLength("etag", req.etag, 64);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("keystores.delete", n!.vault);
      await keystores.delete(ctx.actor, n!.vault, n!.keystore, req.etag || undefined);
      return {};
    }),

    testKeystore: unary(deps, `${SVC}TestKeystore`, { mutating: true }, async (req, ctx) => {
      const c = new Checks();
      const n = keystoreNameOf(c, "name", req.name);
      c.throwIfAny();
      ctx.vault = n!.vault;
      ctx.resource = req.name;
      ctx.authorize("keystores.test", n!.vault);
      return keystores.test(ctx.actor, n!.vault, n!.keystore, callerCredentials(ctx.metadata));
    }),
  };
}
