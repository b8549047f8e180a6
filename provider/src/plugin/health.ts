// grpc.health.v1.Health for the plugin: "plugin" (and "") are SERVING, as go-plugin's non-Go guide asks. Hand-written
// (two one-field messages) because the grpc-health-check package loads its .proto through protobufjs at import time,
// which costs every provider process start-up time Terraform pays 3-4 times per command.
import { type Server, type ServiceDefinition, status } from "@grpc/grpc-js";

const SERVING = 1;
const SERVICE_UNKNOWN = 3;

function decodeService(b: Buffer): string {
  // HealthCheckRequest { string service = 1; }
  let pos = 0;
  while (pos < b.length) {
    const tag = b[pos++] as number;
    let len = 0;
    let shift = 0;
    for (;;) {
      const x = b[pos++] as number;
      len |= (x & 0x7f) << shift;
      shift += 7;
      if (x < 0x80) break;
    }
    if (tag === 0x0a) return b.subarray(pos, pos + len).toString("utf8");
    pos += len;
  }
  return "";
}

/** HealthCheckResponse { ServingStatus status = 1; } */
const encodeStatus = (s: number): Buffer => Buffer.from([0x08, s]);

const definition: ServiceDefinition = {
  Check: {
    path: "/grpc.health.v1.Health/Check",
    requestStream: false,
    responseStream: false,
    requestSerialize: (s: string) => Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(s)]), Buffer.from(s)]),
    requestDeserialize: decodeService,
    responseSerialize: encodeStatus,
    responseDeserialize: (b: Buffer) => b[1] ?? 0,
  },
  Watch: {
    path: "/grpc.health.v1.Health/Watch",
    requestStream: false,
    responseStream: true,
    requestSerialize: (s: string) => Buffer.concat([Buffer.from([0x0a, Buffer.byteLength(s)]), Buffer.from(s)]),
    requestDeserialize: decodeService,
    responseSerialize: encodeStatus,
    responseDeserialize: (b: Buffer) => b[1] ?? 0,
  },
};

/** Adds the health service; `services` are reported SERVING, any other name NOT_FOUND (Check) / SERVICE_UNKNOWN (Watch). */
export function addHealthService(server: Server, services: readonly string[] = ["", "plugin"]): void {
  const known = new Set(services);
  server.addService(definition, {
    Check: (call: { request: string }, cb: (err: { code: number; details: string } | null, v?: number) => void) => {
      if (known.has(call.request)) cb(null, SERVING);
      else cb({ code: status.NOT_FOUND, details: `unknown service ${JSON.stringify(call.request)}` });
    },
    // Sends the (constant) status once and keeps the stream open until the client leaves.
    Watch: (call: { request: string; write(v: number): boolean }) => {
      call.write(known.has(call.request) ? SERVING : SERVICE_UNKNOWN);
    },
  });
}
