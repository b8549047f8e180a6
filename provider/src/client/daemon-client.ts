// The provider's one connection to the MCKO daemon: a grpc-js channel with mutual TLS, shared by every generated
// mcko.v1 client. Built once by ConfigureProvider and handed to every resource call.
import * as grpc from "@grpc/grpc-js";
import { AuditServiceClient } from "../../../protos/gen/mcko/v1/audit_service.js";
import { KeyServiceClient } from "../../../protos/gen/mcko/v1/key_service.js";
import { VaultServiceClient } from "../../../protos/gen/mcko/v1/vault_service.js";
import type { DaemonConnection } from "../config.js";

/** A generated client constructor (ts-proto `XServiceClient`). */
export type ClientConstructor<C> = new (address: string, credentials: grpc.ChannelCredentials, options?: Partial<grpc.ClientOptions>) => C;

export interface DaemonClient {
  /** The address as configured; name it in every connection error. */
  readonly address: string;
  readonly requestTimeoutMs: number;
  readonly vaults: VaultServiceClient;
  readonly keys: KeyServiceClient;
  readonly audit: AuditServiceClient;
  /** Any other mcko.v1 service over the same channel (KeystoreService, DistributionService, …). Cached per constructor. */
  service<C>(ctor: ClientConstructor<C>): C;
  /** Call options for one request: the configured deadline. */
  callOptions(): Partial<grpc.CallOptions>;
  /**
   * Runs one unary call as a promise with the configured deadline, cancelled when `signal` aborts (StopProvider).
   * Usage: `await daemon.unary(daemon.keys.getKey.bind(daemon.keys), { name }, signal)`. Rejects with the grpc-js
   * ServiceError (give it to describeDaemonError, or let the plugin layer do so).
   */
  unary<Req, Resp>(method: UnaryMethod<Req, Resp>, request: Req, signal?: AbortSignal): Promise<Resp>;
  /**
   * How many times a write went to the daemon over this client (counted when it starts and when it ends): anything
   * that remembers daemon answers (client/key-reads.ts) drops them when this changes. Only mcko.v1's Get* and List*
   * RPCs are reads; any other call counts as a write.
   */
  writes(): number;
  /** Checks that the daemon answers (grpc.health.v1 Check over mTLS). Rejects with the gRPC error otherwise. */
  ping(signal?: AbortSignal): Promise<void>;
  close(): void;
}

/** The four-argument overload of a generated unary client method. */
export type UnaryMethod<Req, Resp> = (
  request: Req,
  metadata: grpc.Metadata,
  options: Partial<grpc.CallOptions>,
  callback: (err: grpc.ServiceError | null, response: Resp) => void,
) => grpc.ClientUnaryCall;

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  // No DNS TXT lookup for service config when the address is a hostname (STACK.md gotcha 13).
  "grpc.service_config_disable_resolution": 1,
  "grpc.max_receive_message_length": 64 * 1024 * 1024,
  // No channelz bookkeeping per call: nothing reads it in the provider.
  "grpc.enable_channelz": 0,
};

export function createDaemonClient(conn: DaemonConnection): DaemonClient {
  const creds = grpc.credentials.createSsl(conn.caPem, conn.keyPem, conn.certPem);
  const channel = new grpc.Channel(conn.address, creds, CHANNEL_OPTIONS);
  let writes = 0;
  // Counts writes by their RPC path, for every client on this channel, whichever way the call is made.
  const countWrites: grpc.Interceptor = (opts, nextCall) => {
    if (READ_RPC.test(opts.method_definition.path)) return new grpc.InterceptingCall(nextCall(opts));
    return new grpc.InterceptingCall(nextCall(opts), {
      start: (metadata, _listener, next) => {
        writes += 1;
        next(metadata, {
          onReceiveStatus: (status, nextStatus) => {
            writes += 1;
            nextStatus(status);
          },
        });
      },
    });
  };
  const options: Partial<grpc.ClientOptions> = { channelOverride: channel, interceptors: [countWrites] };
  const cache = new Map<unknown, unknown>();
  const service = <C>(ctor: ClientConstructor<C>): C => {
    let c = cache.get(ctor) as C | undefined;
    if (c === undefined) {
      c = new ctor(conn.address, creds, options);
      cache.set(ctor, c);
    }
    return c;
  };
  const raw = new grpc.Client(conn.address, creds, { channelOverride: channel });
  const callOptions = (): Partial<grpc.CallOptions> => ({ deadline: new Date(Date.now() + conn.requestTimeoutMs) });
  return {
    address: conn.address,
    requestTimeoutMs: conn.requestTimeoutMs,
    vaults: service(VaultServiceClient),
    keys: service(KeyServiceClient),
    audit: service(AuditServiceClient),
    service,
    callOptions,
    writes: () => writes,
    unary: <Req, Resp>(method: UnaryMethod<Req, Resp>, request: Req, signal?: AbortSignal) =>
      new Promise<Resp>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const cancel = (): void => call.cancel();
        const call = method(request, new grpc.Metadata(), callOptions(), (err, resp) => {
          signal?.removeEventListener("abort", cancel);
          if (err) reject(err);
          else resolve(resp);
        });
        signal?.addEventListener("abort", cancel, { once: true });
      }),
    ping: (signal) =>
      new Promise<void>((resolve, reject) => {
        const call = raw.makeUnaryRequest<string, number>(
          "/grpc.health.v1.Health/Check",
          encodeHealthCheckRequest,
          decodeHealthCheckStatus,
          "",
          new grpc.Metadata(),
          callOptions(),
          (err) => {
            signal?.removeEventListener("abort", cancel);
            // A daemon without the health service still answered: it is reachable.
            if (err && err.code !== grpc.status.UNIMPLEMENTED && err.code !== grpc.status.NOT_FOUND) reject(err);
            else resolve();
          },
        );
        const cancel = (): void => call.cancel();
        signal?.addEventListener("abort", cancel, { once: true });
      }),
    close: () => {
      for (const c of cache.values()) (c as grpc.Client).close();
      raw.close();
      channel.close();
    },
  };
}

/** `/mcko.v1.KeyService/GetKey`, `/mcko.v1.KeyService/ListKeys`: the reads. Anything else is taken for a write. */
const READ_RPC = /^\/mcko\.v1\.[A-Za-z]+\/(Get|List)[A-Z][A-Za-z]*$/;

// grpc.health.v1.HealthCheckRequest { string service = 1; } and HealthCheckResponse { ServingStatus status = 1; },
// hand-encoded: two fields are not worth loading the health proto at provider start.
function encodeHealthCheckRequest(service: string): Buffer {
  const s = Buffer.from(service, "utf8");
  return s.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a, s.length]), s]);
}

function decodeHealthCheckStatus(b: Buffer): number {
  return b.length >= 2 && b[0] === 0x08 ? (b[1] ?? 0) : 0;
}
