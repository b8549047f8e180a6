/** Small HTTP helpers shared by the emulators: body reading, JSON answers, listening and closing. */
import type { IncomingMessage, Server as HttpServer, ServerResponse } from "node:http";
import type { Server as HttpsServer } from "node:https";
import type { AddressInfo } from "node:net";

export const MAX_BODY_BYTES = 4 * 1024 * 1024;

export class BodyTooLargeError extends Error {
  override readonly name = "BodyTooLargeError";
}

export async function readBody(req: IncomingMessage, limit = MAX_BODY_BYTES): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of req) {
    const b = chunk as Buffer;
    total += b.length;
    if (total > limit) throw new BodyTooLargeError(`request body over ${limit} bytes`);
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

/** JSON.stringify replacer that renders Buffers (after their toJSON) as base64 strings. */
export function bufferAsBase64(_key: string, value: unknown): unknown {
  if (
    value !== null &&
    typeof value === "object" &&
    (value as { type?: unknown }).type === "Buffer" &&
    Array.isArray((value as { data?: unknown }).data)
  ) {
    return Buffer.from((value as { data: number[] }).data).toString("base64");
  }
  return value;
}

export function sendJson(
  res: ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
  contentType = "application/json; charset=utf-8",
): void {
  if (res.headersSent || res.destroyed) return;
  const text = body === undefined ? "" : JSON.stringify(body, bufferAsBase64);
  res.writeHead(status, { "content-type": contentType, "content-length": Buffer.byteLength(text), ...headers });
  res.end(text);
}

/**
 * Idle keep-alive sockets are kept far longer than Node's 5 s default: clients (the SDKs' agents, undici) then always
 * retire an idle socket before the server closes it, so a request never races a closing socket (ECONNRESET) on a
 * loaded machine. close() destroys them anyway.
 */
export function keepAliveLong(server: Server): void {
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 70_000;
}

/** Listens on host:port (port 0 = any free port) and returns the bound port. */
type Server = HttpServer | HttpsServer;

export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (e: Error): void => reject(e);
    server.once("error", onError);
    server.listen(port, host, () => {
      server.off("error", onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting, destroys every open connection (including requests held as timeouts) and waits for the close. */
export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
