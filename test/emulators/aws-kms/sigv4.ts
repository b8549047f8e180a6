/**
 * Checks the SigV4 `Authorization` header the way AWS front ends do, with AWS's error shapes: the form of the header,
 * the credential scope (date, region, service), that the access key is known, and (when asked) the signature itself.
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { KmsError } from "./errors.js";

export interface SigV4Request {
  method: string;
  /** Raw request target, path and query (e.g. "/"). */
  url: string;
  /** Node's rawHeaders (name, value, name, value, …). */
  rawHeaders: string[];
  body: Buffer;
}

export interface SigV4Options {
  accessKeys: ReadonlyMap<string, string>;
  region: string;
  service: string;
  verifySignature: boolean;
}

const sha256 = (data: string | Buffer): string => createHash("sha256").update(data).digest("hex");
const hmac = (key: Buffer | string, data: string): Buffer => createHmac("sha256", key).update(data).digest();

function headerMap(raw: string[]): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = (raw[i] ?? "").toLowerCase();
    const list = m.get(name) ?? [];
    list.push(raw[i + 1] ?? "");
    m.set(name, list);
  }
  return m;
}

function uriEncode(s: string): string {
  return encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());
}

function canonicalQuery(search: string): string {
  const params = new URLSearchParams(search);
  const pairs: [string, string][] = [];
  params.forEach((v, k) => pairs.push([uriEncode(k), uriEncode(v)]));
  pairs.sort((a, b) => (a[0] === b[0] ? (a[1] < b[1] ? -1 : 1) : a[0] < b[0] ? -1 : 1));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/** Returns the access key id of a well-formed, known, (optionally) correctly signed request; throws KmsError otherwise. */
export function checkSigV4(req: SigV4Request, opts: SigV4Options): string {
  const headers = headerMap(req.rawHeaders);
  const auth = headers.get("authorization")?.[0];
  if (!auth) throw new KmsError("MissingAuthenticationTokenException", "Missing Authentication Token");
  const incomplete = (): KmsError =>
    new KmsError(
      "IncompleteSignatureException",
      `Authorization header requires 'Credential' parameter. Authorization header requires 'Signature' parameter. Authorization header requires 'SignedHeaders' parameter. Authorization=${auth}`,
    );
  const m = /^AWS4-HMAC-SHA256 (.*)$/.exec(auth);
  if (!m) throw incomplete();
  const parts = new Map<string, string>();
  for (const piece of (m[1] ?? "").split(",")) {
    const [k, ...v] = piece.trim().split("=");
    if (k) parts.set(k, v.join("="));
  }
  const credential = parts.get("Credential");
  const signedHeaders = parts.get("SignedHeaders");
  const signature = parts.get("Signature");
  if (!credential || !signedHeaders || !signature) throw incomplete();
  const scope = credential.split("/");
  if (scope.length !== 5 || scope[4] !== "aws4_request") {
    throw new KmsError(
      "IncompleteSignatureException",
      `Credential should be scoped to a valid region. Credential=${credential}`,
    );
  }
  const [accessKeyId = "", date = "", region = "", service = ""] = scope;
  const amzDate = headers.get("x-amz-date")?.[0];
  if (!amzDate) {
    throw new KmsError(
      "IncompleteSignatureException",
      "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
    );
  }
  if (!/^\d{8}$/.test(date) || amzDate.slice(0, 8) !== date) {
    throw new KmsError(
      "InvalidSignatureException",
      `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${date}' != '${amzDate.slice(0, 8)}', from '${amzDate}'.`,
    );
  }
  if (region !== opts.region) {
    throw new KmsError("InvalidSignatureException", `Credential should be scoped to a valid region, not '${region}'. `);
  }
  if (service !== opts.service) {
    throw new KmsError("InvalidSignatureException", `Credential should be scoped to correct service: '${opts.service}'. `);
  }
  const names = signedHeaders.split(";");
  if (!names.includes("host")) {
    throw new KmsError("InvalidSignatureException", "'Host' must be a 'SignedHeader' in the AWS Authorization.");
  }
  const secret = opts.accessKeys.get(accessKeyId);
  if (secret === undefined) {
    throw new KmsError("UnrecognizedClientException", "The security token included in the request is invalid.");
  }
  if (!opts.verifySignature) return accessKeyId;

  const url = new URL(req.url, "http://x");
  const payloadHash = sha256(req.body);
  const claimed = headers.get("x-amz-content-sha256")?.[0];
  const canonicalHeaders = names
    .map((n) => `${n}:${(headers.get(n) ?? []).map((v) => v.trim().replace(/\s+/g, " ")).join(",")}\n`)
    .join("");
  const canonicalRequest = [
    req.method,
    url.pathname || "/",
    canonicalQuery(url.search),
    canonicalHeaders,
    signedHeaders,
    claimed !== undefined && claimed !== payloadHash ? claimed : payloadHash,
  ].join("\n");
  const stringToSign = ["AWS4-HMAC-SHA256", amzDate, scope.slice(1).join("/"), sha256(canonicalRequest)].join("\n");
  const kSigning = hmac(hmac(hmac(hmac("AWS4" + secret, date), region), service), "aws4_request");
  const expected = createHmac("sha256", kSigning).update(stringToSign).digest();
  const given = Buffer.from(/^[0-9a-f]{64}$/.test(signature) ? signature : "", "hex");
  const matches = given.length === expected.length && timingSafeEqual(given, expected);
  if (!matches || (claimed !== undefined && claimed !== payloadHash && claimed !== "UNSIGNED-PAYLOAD")) {
    throw new KmsError(
      "InvalidSignatureException",
      "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.",
    );
  }
  return accessKeyId;
}
