/**
 * The caller's own cloud credentials, for keystores with credential source CALLER: request metadata
 * `x-mcko-cloud-credentials` = base64 of a JSON object of strings (the per-type credential fields, e.g.
 * `{"access_key_id":…,"secret_access_key":…}`). Never logged or audited.
 */
import type * as grpc from "@grpc/grpc-js";
import { InvalidArgumentError } from "../core/errors.js";

export const CLOUD_CREDENTIALS_METADATA = "x-mcko-cloud-credentials";

export function callerCredentials(md: grpc.Metadata): Record<string, string> | undefined {
  const raw = md.get(CLOUD_CREDENTIALS_METADATA)[0];
  if (raw === undefined) return undefined;
  const bad = () => new InvalidArgumentError([{ field: `metadata.${CLOUD_CREDENTIALS_METADATA}`, description: "must be base64 of a JSON object whose values are strings" }]);
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(String(raw), "base64").toString("utf8"));
  } catch {
    throw bad();
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) throw bad();
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(parsed)) {
    if (typeof v !== "string") throw bad();
    out[k] = v;
  }
  return out;
}
