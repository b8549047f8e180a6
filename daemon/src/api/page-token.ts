/**
 * Opaque page tokens (AIP-158): they carry where to continue and a digest of the request's other arguments, so a
 * token used with another parent or filter is INVALID_ARGUMENT rather than silently wrong.
 */
import { createHash } from "node:crypto";
import { InvalidArgumentError } from "../core/errors.js";

export function makePageToken(scope: string, startAfter: string): string {
  return Buffer.from(JSON.stringify({ s: digest(scope), a: startAfter })).toString("base64url");
}

export function readPageToken(token: string, scope: string): string | undefined {
  if (token === "") return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { s?: unknown; a?: unknown };
    if (parsed.s === digest(scope) && typeof parsed.a === "string") return parsed.a;
  } catch {
    // fall through
  }
  throw new InvalidArgumentError([{ field: "page_token", description: "is not a token of this request: use the next_page_token of a call with the same parent and filter, or leave it empty" }], "INVALID_PAGE_TOKEN");
}

function digest(scope: string): string {
  return createHash("sha256").update(scope).digest("base64url").slice(0, 12);
}
