/**
 * Idempotent retries (AIP-155): a create or push carrying a `request_id` records it, with a fingerprint of the
 * request, in the same commit as its change. A retry with the same id and the same request gets the first result;
 * the same id with a different request is ALREADY_EXISTS (REQUEST_ID_REUSED).
 */
import { createHash } from "node:crypto";
import type { JsonValue, Mutation, Store } from "../store/store.js";
import { AlreadyExistsError } from "./errors.js";
import { storeKeys } from "./names.js";

interface RequestRecord {
  fingerprint: string;
  resource: string;
  time: string;
}

export function requestFingerprint(request: Record<string, unknown>): string {
  return createHash("sha256").update(JSON.stringify(request, (_k, v: unknown) => (v instanceof Date ? v.toISOString() : v))).digest("hex");
}

/** The mutation that records `requestId` (expect-version 0: a concurrent duplicate conflicts). */
export function requestMutation(requestId: string, fingerprint: string, resource: string, time: string): Mutation {
  const value: RequestRecord = { fingerprint, resource, time };
  return { op: "put", key: storeKeys.request(requestId), value: value as unknown as JsonValue, expectVersion: 0 };
}

/** True when `requestId` was used before for this same request; throws REQUEST_ID_REUSED if for another one. */
export async function isReplay(store: Store, requestId: string, fingerprint: string): Promise<boolean> {
  const prior = await store.get<RequestRecord>(storeKeys.request(requestId));
  if (!prior) return false;
  if (prior.value.fingerprint !== fingerprint) {
    throw new AlreadyExistsError(`request_id ${requestId}`, `request_id ${requestId} was already used for a different request (${prior.value.resource}); use a new UUID`, "REQUEST_ID_REUSED");
  }
  return true;
}
