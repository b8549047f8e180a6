/**
 * The narrow surface of the Key Protect REST API (BYOK.md §5) the connector uses, over node:http(s) (no IBM SDK;
 * DESIGN.md): one method per call, each with its documented content type, the `bluemix-instance` header, a bearer
 * IAM token and the optional `x-kms-key-ring`. The token is either given (stored `iam_token`, or the caller's,
 * passed through) or exchanged for the API key at IAM (`POST /identity/token`) and reused until a minute before it
 * expires. No retries here: call-policy.ts retries.
 */
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import type { KeyProtectSettings } from "./config.js";
import { KpHttpError, parseErrorBody } from "./errors.js";

type Opts = { readonly abortSignal: AbortSignal };

/** A key as Key Protect describes it (the fields MCKO reads). */
export interface KpKey {
  readonly id: string;
  readonly name?: string;
  readonly description?: string;
  readonly state: number;
  readonly crn?: string;
  readonly extractable?: boolean;
  readonly aliases?: string[];
  readonly keyVersion?: { readonly id: string };
}

export interface KpImportToken {
  /** base64 of a PEM "PUBLIC KEY" (RSA-4096). */
  readonly payload: string;
  /** base64. */
  readonly nonce: string;
  readonly expirationDate: string;
}

/** Import fields of a create or rotate body (secure import with an import token). */
export interface KpImportFields {
  readonly payload: string;
  readonly encryptedNonce: string;
  readonly iv: string;
  readonly encryptionAlgorithm: "RSAES_OAEP_SHA_256";
}

export interface KeyProtectApi {
  createImportToken(expirationSeconds: number, maxRetrievals: number, o: Opts): Promise<void>;
  getImportToken(o: Opts): Promise<KpImportToken>;
  createKey(resource: { name: string; description: string; aliases: string[] } & KpImportFields, o: Opts): Promise<KpKey>;
  /** One page of keys in the given states. */
  listKeys(page: { offset: number; limit: number; states: readonly number[] }, o: Opts): Promise<KpKey[]>;
  getKeyMetadata(id: string, o: Opts): Promise<KpKey>;
  listVersions(id: string, o: Opts): Promise<Array<{ id: string; creationDate?: string }>>;
  rotateKey(id: string, fields: KpImportFields, o: Opts): Promise<void>;
  enableKey(id: string, o: Opts): Promise<void>;
  disableKey(id: string, o: Opts): Promise<void>;
  deleteKey(id: string, o: Opts): Promise<void>;
  createAlias(id: string, alias: string, o: Opts): Promise<void>;
  /** The access token in use (to scrub it from messages), if one was fetched or given. */
  currentToken(): string | undefined;
}

const KEY_TYPE = "application/vnd.ibm.kms.key+json";

interface HttpAnswer {
  readonly status: number;
  readonly text: string;
}

function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined, ca: string | undefined, signal: AbortSignal): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const options = { method, headers: { ...headers, ...(body !== undefined ? { "content-length": String(Buffer.byteLength(body)) } : {}) }, signal };
    const req = url.protocol === "https:" ? httpsRequest(url, { ...options, ...(ca ? { ca } : {}) }) : httpRequest(url, options);
    req.on("response", (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}

export function createKeyProtectApi(s: KeyProtectSettings, credentials: { apiKey?: string; iamToken?: string }): KeyProtectApi {
  let cached: { token: string; refreshAt: number } | undefined;
  let pending: Promise<string> | undefined;

  const exchange = async (signal: AbortSignal): Promise<string> => {
    const form = new URLSearchParams({ grant_type: "urn:ibm:params:oauth:grant-type:apikey", apikey: credentials.apiKey ?? "" }).toString();
    const answer = await send(new URL(`${s.iamEndpoint}/identity/token`), "POST", { "content-type": "application/x-www-form-urlencoded", accept: "application/json" }, form, s.caCertPem, signal);
    if (answer.status !== 200) throw parseErrorBody("IAM", answer.status, answer.text);
    const body = JSON.parse(answer.text) as { access_token?: unknown; expires_in?: unknown };
    if (typeof body.access_token !== "string" || body.access_token === "") throw new KpHttpError("IAM", 502, "BAD_TOKEN_RESPONSE", "IAM answered without an access_token");
    const lifetimeS = typeof body.expires_in === "number" ? body.expires_in : 3600;
    cached = { token: body.access_token, refreshAt: Date.now() + Math.max(30, lifetimeS - 60) * 1000 };
    return body.access_token;
  };

  const token = async (signal: AbortSignal): Promise<string> => {
    if (credentials.iamToken) return credentials.iamToken;
    if (cached && Date.now() < cached.refreshAt) return cached.token;
    pending ??= exchange(signal).finally(() => (pending = undefined));
    return pending;
  };

  const call = async (method: string, path: string, o: Opts, body?: { contentType: string; json: unknown }, extra: Record<string, string> = {}): Promise<HttpAnswer> => {
    const headers: Record<string, string> = {
      authorization: `Bearer ${await token(o.abortSignal)}`,
      "bluemix-instance": s.instanceId,
      accept: "application/json",
      ...(s.keyRing ? { "x-kms-key-ring": s.keyRing } : {}),
      ...(body ? { "content-type": body.contentType } : {}),
      ...extra,
    };
    const answer = await send(new URL(`${s.endpoint}${path}`), method, headers, body ? JSON.stringify(body.json) : undefined, s.caCertPem, o.abortSignal);
    if (answer.status === 401 && !credentials.iamToken) cached = undefined; // expired early: fetch a new one next time
    if (answer.status < 200 || answer.status >= 300) throw parseErrorBody("KEY_PROTECT", answer.status, answer.text);
    return answer;
  };
  const resources = <T>(answer: HttpAnswer): T[] => {
    if (answer.text === "") return [];
    const body = JSON.parse(answer.text) as { resources?: T[] };
    return body.resources ?? [];
  };
  const first = <T>(answer: HttpAnswer, what: string): T => {
    const r = resources<T>(answer)[0];
    if (r === undefined) throw new KpHttpError("KEY_PROTECT", 502, "EMPTY_RESPONSE", `${what} answered without a resource`);
    return r;
  };
  const key = (id: string) => `/api/v2/keys/${encodeURIComponent(id)}`;

  return {
    createImportToken: async (expiration, maxAllowedRetrievals, o) => {
      await call("POST", "/api/v2/import_token", o, { contentType: "application/json", json: { expiration, maxAllowedRetrievals } });
    },
    getImportToken: async (o) => JSON.parse((await call("GET", "/api/v2/import_token", o)).text) as KpImportToken,
    createKey: async (resource, o) =>
      first<KpKey>(
        await call("POST", "/api/v2/keys", o, {
          contentType: KEY_TYPE,
          json: { metadata: { collectionType: KEY_TYPE, collectionTotal: 1 }, resources: [{ type: KEY_TYPE, extractable: false, ...resource }] },
        }, { prefer: "return=representation" }),
        "CreateKey",
      ),
    listKeys: async (page, o) => resources<KpKey>(await call("GET", `/api/v2/keys?offset=${page.offset}&limit=${page.limit}&state=${page.states.join(",")}`, o)),
    getKeyMetadata: async (id, o) => first<KpKey>(await call("GET", `${key(id)}/metadata`, o), "GetKeyMetadata"),
    listVersions: async (id, o) => resources<{ id: string; creationDate?: string }>(await call("GET", `${key(id)}/versions`, o)),
    rotateKey: async (id, fields, o) => {
      await call("POST", `${key(id)}/actions/rotate`, o, { contentType: "application/vnd.ibm.kms.key_action_rotate+json", json: fields });
    },
    enableKey: async (id, o) => void (await call("POST", `${key(id)}/actions/enable`, o)),
    disableKey: async (id, o) => void (await call("POST", `${key(id)}/actions/disable`, o)),
    deleteKey: async (id, o) => void (await call("DELETE", key(id), o)),
    createAlias: async (id, alias, o) => void (await call("POST", `${key(id)}/aliases/${encodeURIComponent(alias)}`, o)),
    currentToken: () => credentials.iamToken ?? cached?.token,
  };
}
