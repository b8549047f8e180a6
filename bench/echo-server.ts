/**
 * The baseline for the CreateKey throughput ratio: a bare grpc-js server over the same mutual TLS 1.3 set-up as
 * the daemon, with one unary method that echoes its bytes. Started as a child process by bench/daemon.ts; prints
 * `port <n>` once bound.
 */
import * as grpc from "@grpc/grpc-js";
import { readFileSync } from "node:fs";
import tls from "node:tls";
import { pathToFileURL } from "node:url";
export const ECHO_SERVICE: grpc.ServiceDefinition = {
  echo: {
    path: "/bench.Echo/Echo",
    requestStream: false,
    responseStream: false,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
};
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [caFile, certFile, keyFile] = process.argv.slice(2) as [string, string, string];
  tls.DEFAULT_MIN_VERSION = "TLSv1.3";
  const server = new grpc.Server();
  server.addService(ECHO_SERVICE, { echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => cb(null, call.request) });
  const creds = grpc.ServerCredentials.createSsl(readFileSync(caFile), [{ cert_chain: readFileSync(certFile), private_key: readFileSync(keyFile) }], true);
  server.bindAsync("127.0.0.1:0", creds, (err, port) => {
    if (err) throw err;
    process.stdout.write(`port ${port}\n`);
  });
}
