/**
 * Authentication: the principal is the verified client certificate. TLS asks every client for a certificate and
 * Node verifies it against the configured CA; grpc-js exposes it only when that verification passed
 * (`socket.authorized`). No certificate, or one from another CA, means no principal: UNAUTHENTICATED.
 */
import type { PeerCertificate } from "node:tls";
import { grantsFromSubjectAltName } from "../pki/certificates.js";
import { isRole, type Principal, type RoleGrant } from "../core/authz.js";

interface HasAuthContext {
  getAuthContext(): { sslPeerCertificate?: PeerCertificate | undefined };
}

/**
 * Principals already computed for a call, keyed by the call's metadata object (the interceptor and the handler see
 * the same one): parsing the peer certificate is the single most expensive step of a small call.
 */
const byMetadata = new WeakMap<object, Principal | null>();

export function principalOf(call: HasAuthContext & { metadata?: object }): Principal | undefined {
  const md = call.metadata;
  if (md) {
    const cached = byMetadata.get(md);
    if (cached !== undefined) return cached ?? undefined;
  }
  const p = computePrincipal(call);
  if (md) byMetadata.set(md, p ?? null);
  return p;
}

/** Caches the principal for `metadata` (the interceptor calls this when it has checked the call). */
export function rememberPrincipal(metadata: object, principal: Principal | undefined): void {
  byMetadata.set(metadata, principal ?? null);
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
  return { subject: `CN=${commonName}`, grants };
}
