/**
 * api/auth.ts against a real grpc-js server over mutual TLS: the principal comes from the client certificate, is
 * computed once per connection (the installed grpc-js still exposes the call's HTTP/2 session, so the cache is in
 * use rather than silently falling back), and two connections with different certificates never share one.
 */
import test from "ava";
import * as grpc from "@grpc/grpc-js";
import tls from "node:tls";
import { principalOf, verifiedSessionOf } from "../../../daemon/src/api/auth.js";
import type { Principal } from "../../../daemon/src/core/authz.js";
import { createCa, issueClientCert, issueServerCert } from "../../../daemon/src/pki/certificates.js";

const ECHO: grpc.ServiceDefinition = {
  echo: {
    path: "/test.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};

interface Seen {
  readonly session: object | undefined;
  readonly principal: Principal | undefined;
}

test("the principal is the client certificate's, computed once per connection and never shared between connections", async (t) => {
  tls.DEFAULT_MIN_VERSION = "TLSv1.3";
  const ca = createCa({ commonName: "auth test CA", validityDays: 1 });
  const server = issueServerCert(ca, { commonName: "localhost", dnsNames: ["localhost"], ipAddresses: ["127.0.0.1"], validityDays: 1 });
  const alice = issueClientCert(ca, { commonName: "alice", grants: [{ role: "admin", vault: "*" }], validityDays: 1 });
  const bob = issueClientCert(ca, { commonName: "bob", grants: [{ role: "viewer", vault: "v1" }], validityDays: 1 });

  const seen: Seen[] = [];
  const gate: grpc.ServerInterceptor = (_method, call) =>
    new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, mdNext) => {
            seen.push({ session: verifiedSessionOf(call), principal: principalOf(call) });
            mdNext(metadata);
          },
        }),
    });
  const srv = new grpc.Server({ interceptors: [gate] });
  srv.addService(ECHO, { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const creds = grpc.ServerCredentials.createSsl(Buffer.from(ca.certPem), [{ cert_chain: Buffer.from(server.certPem), private_key: Buffer.from(server.keyPem) }], true);
  const port = await new Promise<number>((res, rej) => srv.bindAsync("127.0.0.1:0", creds, (e, p) => (e ? rej(e) : res(p))));
  t.teardown(() => srv.forceShutdown());

  const Echo = grpc.makeGenericClientConstructor(ECHO, "Echo");
  type EchoClient = grpc.Client & { echo: (b: Buffer, cb: (e: grpc.ServiceError | null) => void) => void };
  // A local subchannel pool per client: each gets its own TLS connection.
  const connect = (id: { certPem: string; keyPem: string }) =>
    new Echo(`localhost:${port}`, grpc.credentials.createSsl(Buffer.from(ca.certPem), Buffer.from(id.keyPem), Buffer.from(id.certPem)), { "grpc.use_local_subchannel_pool": 1 }) as unknown as EchoClient;
  const call = (c: EchoClient) => new Promise<void>((res, rej) => c.echo(Buffer.from("x"), (e) => (e ? rej(e) : res())));
  const a = connect(alice);
  const b = connect(bob);
  t.teardown(() => [a, b].forEach((c) => c.close()));
  await call(a);
  await call(a);
  await call(b);
  await call(a);

  t.is(seen.length, 4);
  const [a1, a2, b1, a3] = seen as [Seen, Seen, Seen, Seen];
  t.truthy(a1.session, "grpc-js no longer exposes the call's session: the per-connection cache is not in use");
  t.is(a2.session, a1.session);
  t.is(a3.session, a1.session);
  t.not(b1.session, a1.session);
  t.deepEqual(a1.principal, { subject: "CN=alice", grants: [{ role: "admin", vault: "*" }] });
  t.is(a2.principal, a1.principal, "a second call on the connection reuses the principal");
  t.deepEqual(b1.principal, { subject: "CN=bob", grants: [{ role: "viewer", vault: "v1" }] });
  t.true(Object.isFrozen(a1.principal) && Object.isFrozen(a1.principal!.grants));
});
