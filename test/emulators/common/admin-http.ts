/**
 * The admin HTTP interface every emulator serves under ADMIN_PREFIX on a separate plain-HTTP port (no cloud auth, no
 * TLS, JSON in and out, Buffers as base64), so that scripts and other processes can drive it with curl or fetch. Each emulator adds its own routes to the common ones built here.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { FaultConfig, ScriptedFault } from "./faults.js";
import type { CallRecord, CapturedImport } from "./records.js";
import { closeServer, keepAliveLong, listen, readBody, sendJson } from "./http.js";

export const ADMIN_PREFIX = "/_emulator";

/** What every emulator's admin offers, in-process and over HTTP. */
export interface CommonAdmin {
  /** Replaces the random fault configuration. */
  setFaults(config: FaultConfig): void;
  /** Makes the next `count` calls (of one operation, or any) fail. */
  failNext(fault: ScriptedFault): void;
  /** Removes every random and scripted fault. */
  clearFaults(): void;
  faults(): { config: FaultConfig; scripted: ScriptedFault[] };
  /** The call log, oldest first (the last `limit` calls when given). */
  calls(limit?: number): CallRecord[];
  clearCalls(): void;
  /**
   * In-process only: resolves with the first logged call (past or future) that matches, e.g. to know that a request
   * held as a timeout has reached the emulator. Pair it with clearCalls() or a `seq` bound to skip older calls.
   */
  waitForCall(predicate: (call: CallRecord) => boolean): Promise<CallRecord>;
  /** The last `limit` captured imports (all kept when absent), oldest first. */
  imports(limit?: number): CapturedImport[];
  /** Moves the emulator clock forward (expiry of material, scheduled deletion, purge dates). */
  advanceClock(seconds: number): void;
  /** Forgets every key, alias, capture, call and fault; the clock goes back to wall time. */
  reset(): void;
}

export class AdminError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

export interface AdminRequest {
  params: string[];
  query: URLSearchParams;
  body: Record<string, unknown>;
}

export interface AdminRoute {
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE";
  /** Matched against the path after ADMIN_PREFIX; capture groups become params (URI-decoded). */
  path: RegExp;
  /** May return a promise; the answer is its JSON (Buffers as base64), `{}` for undefined. */
  handler: (req: AdminRequest) => unknown;
}

function optionalLimit(q: URLSearchParams): number | undefined {
  const v = q.get("limit");
  if (v === null) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) throw new AdminError(400, "limit must be a non-negative integer");
  return n;
}

export function commonAdminRoutes(admin: CommonAdmin): AdminRoute[] {
  return [
    { method: "GET", path: /^\/faults$/, handler: () => admin.faults() },
    {
      method: "PUT",
      path: /^\/faults$/,
      handler: ({ body }) => {
        admin.setFaults(body as FaultConfig);
        return admin.faults();
      },
    },
    {
      method: "DELETE",
      path: /^\/faults$/,
      handler: () => {
        admin.clearFaults();
        return admin.faults();
      },
    },
    {
      method: "POST",
      path: /^\/faults\/next$/,
      handler: ({ body }) => {
        admin.failNext(body as unknown as ScriptedFault);
        return admin.faults();
      },
    },
    { method: "GET", path: /^\/calls$/, handler: ({ query }) => admin.calls(optionalLimit(query)) },
    {
      method: "DELETE",
      path: /^\/calls$/,
      handler: () => {
        admin.clearCalls();
        return {};
      },
    },
    { method: "GET", path: /^\/imports$/, handler: ({ query }) => admin.imports(optionalLimit(query)) },
    {
      method: "POST",
      path: /^\/clock\/advance$/,
      handler: ({ body }) => {
        const seconds = Number(body["seconds"]);
        if (!Number.isFinite(seconds)) throw new AdminError(400, "seconds must be a number");
        admin.advanceClock(seconds);
        return {};
      },
    },
    {
      method: "POST",
      path: /^\/reset$/,
      handler: () => {
        admin.reset();
        return {};
      },
    },
  ];
}

/** Serves one admin request; `path` is the URL path without ADMIN_PREFIX. */
export async function handleAdminRequest(
  routes: AdminRoute[],
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
  query: URLSearchParams,
  rawBody: Buffer,
): Promise<void> {
  let body: Record<string, unknown> = {};
  try {
    if (rawBody.length > 0) {
      const parsed: unknown = JSON.parse(rawBody.toString("utf8"));
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
        throw new AdminError(400, "the body must be a JSON object");
      }
      body = parsed as Record<string, unknown>;
    }
    const candidates = routes.filter((r) => r.path.test(path));
    if (candidates.length === 0) throw new AdminError(404, `no admin route ${path}`);
    const route = candidates.find((r) => r.method === req.method);
    if (!route) throw new AdminError(405, `${req.method ?? "?"} not allowed on ${path}`);
    const m = route.path.exec(path);
    const params = (m ? m.slice(1) : []).map((p) => decodeURIComponent(p ?? ""));
    const result: unknown = await route.handler({ params, query, body });
    sendJson(res, 200, result === undefined ? {} : result);
  } catch (e) {
    if (e instanceof AdminError) sendJson(res, e.status, { error: e.message });
    else if (e instanceof SyntaxError) sendJson(res, 400, { error: `invalid JSON: ${e.message}` });
    else if (e instanceof RangeError || e instanceof TypeError) sendJson(res, 400, { error: e.message });
    else sendJson(res, 500, { error: e instanceof Error ? e.message : String(e) });
  }
}

/** A running admin listener. */
export interface AdminServer {
  /** e.g. "http://127.0.0.1:4567"; routes live under `${url}${ADMIN_PREFIX}`. */
  url: string;
  close(): Promise<void>;
}

export async function startAdminServer(routes: AdminRoute[], port: number, host: string): Promise<AdminServer> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://admin");
    if (!url.pathname.startsWith(ADMIN_PREFIX + "/")) {
      sendJson(res, 404, { error: `admin routes live under ${ADMIN_PREFIX}/` });
      return;
    }
    readBody(req)
      .then((body) => handleAdminRequest(routes, req, res, url.pathname.slice(ADMIN_PREFIX.length), url.searchParams, body))
      .catch((e: unknown) => sendJson(res, 400, { error: e instanceof Error ? e.message : String(e) }));
  });
  keepAliveLong(server);
  const bound = await listen(server, port, host);
  return { url: `http://${host}:${bound}`, close: () => closeServer(server) };
}

/** Client side of the admin HTTP interface, for tests and scripts in other processes. */
export async function adminFetch(adminUrl: string, method: AdminRoute["method"], path: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${adminUrl}${ADMIN_PREFIX}${path}`, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const parsed: unknown = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new AdminError(res.status, (parsed as { error?: string } | undefined)?.error ?? res.statusText);
  return parsed;
}
