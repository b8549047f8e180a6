/**
 * Authentication: the principal is the verified client certificate. TLS asks every client for a certificate and
 * Node verifies it against the configured CA; grpc-js exposes it only when that verification passed
 * (`socket.authorized`). No certificate, or one from another CA, means no principal: UNAUTHENTICATED.
 *
 * The principal is computed once per connection. A connection's peer certificate cannot change after the handshake
 * (the daemon speaks only TLS 1.3, which has no renegotiation), while Node's `getPeerCertificate()`, which grpc-js
 * calls on every `getAuthContext()`, builds a fresh object of every certificate field: it was the largest single
 * cost of a small call.
 */
import { TLSSocket, type PeerCertificate } from "node:tls";
import { grantsFromSubjectAltName } from "../pki/certificates.js";
import { isRole, type Principal, type RoleGrant } from "../core/authz.js";

interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate | undefined };
}

/**
 * Principals already computed for a call, keyed by the call's metadata object (the interceptor and the handler see
 * the same one), so the handler does not look again.
 */
const byMetadata = new WeakMap<object, Principal | null>();

/** Principals of verified connections, keyed by the HTTP/2 session (one per TLS connection); gone with it. */
const bySession = new WeakMap<object, Principal>();

export function principalOf(call: HasAuthContext & { metadata?: object }): Principal | undefined {
  const md = call.metadata;
  if (md) {
    const cached = byMetadata.get(md);
    if (cached !== undefined) return cached ?? undefined;
  }
  const p = connectionPrincipal(call);
  if (md) byMetadata.set(md, p ?? null);
  return p;
}

/** Caches the principal for `metadata` (the interceptor calls this when it has checked the call). */
export function rememberPrincipal(metadata: object, principal: Principal | undefined): void {
  byMetadata.set(metadata, principal ?? null);
}

/**
 * The HTTP/2 session a call arrived on, when it is a TLS connection whose client certificate Node verified.
 * grpc-js keeps the stream on its base call object (the one server interceptors receive); this is not public API,
 * so when the shape is not found the caller falls back to `getAuthContext()` on every call: slower, never wrong.
 * test/unit/api/auth.test.ts checks that the installed grpc-js still has this shape.
 */
export function verifiedSessionOf(call: object): object | undefined {
  const session = (call as { stream?: { session?: { socket?: unknown } } }).stream?.session;
  const socket = session?.socket;
  return socket instanceof TLSSocket && socket.authorized ? session : undefined;
}

function connectionPrincipal(call: HasAuthContext): Principal | undefined {
  const session = verifiedSessionOf(call);
  if (session === undefined) return computePrincipal(call);
  const cached = bySession.get(session);
  if (cached !== undefined) return cached;
  const p = computePrincipal(call);
  if (p !== undefined) bySession.set(session, p);
  return p;
}

function computePrincipal(call: HasAuthContext): Principal | undefined {
  const cert = call.getAuthContext().sslPeerCertificate;
  if (!cert || !cert.subject) return undefined;
  const cn = cert.subject.CN;
  const commonName = Array.isArray(cn) ? cn.join("+") : cn;
  if (!commonName) return undefined;
  const grants: RoleGrant[] = [];
  for (const g of grantsFromSubjectAltName(cert.subjectaltname)) {
    if (isRole(g.role)) grants.push({ role: g.role, vault: g.vault });
  }
  // Frozen: one object now serves every call of the connection.
  return Object.freeze({ subject: `CN=${commonName}`, grants: Object.freeze(grants) });
}
