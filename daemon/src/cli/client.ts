/** gRPC clients for the CLI, over mutual TLS with the certificates from `mcko init`. */
import * as grpc from "@grpc/grpc-js";
import { AuditServiceClient } from "../../../protos/gen/mcko/v1/audit_service.js";
import { KeyServiceClient } from "../../../protos/gen/mcko/v1/key_service.js";
import { VaultServiceClient } from "../../../protos/gen/mcko/v1/vault_service.js";
import { Status } from "../../../protos/gen/google/rpc/status.js";
import { BadRequest, ErrorInfo } from "../../../protos/gen/google/rpc/error_details.js";
import type { ClientConnection } from "./client-config.js";

export interface Clients {
  readonly vaults: VaultServiceClient;
  readonly keys: KeyServiceClient;
  readonly audit: AuditServiceClient;
  close(): void;
}

export function connect(conn: ClientConnection): Clients {
  const creds = grpc.credentials.createSsl(conn.caPem, conn.keyPem, conn.certPem);
  // IP targets avoid grpc-js's DNS TXT lookup; the option covers host names (STACK.md gotcha 13).
  const options = { "grpc.service_config_disable_resolution": 1, "grpc.max_receive_message_length": 64 * 1024 * 1024 };
  const vaults = new VaultServiceClient(conn.address, creds, options);
  const keys = new KeyServiceClient(conn.address, creds, options);
  const audit = new AuditServiceClient(conn.address, creds, options);
  return { vaults, keys, audit, close: () => [vaults, keys, audit].forEach((c) => c.close()) };
}

/** Promisifies a unary call with a deadline. */
export function call<Req, Res>(
  fn: (req: Req, md: grpc.Metadata, opts: Partial<grpc.CallOptions>, cb: (err: grpc.ServiceError | null, res: Res) => void) => grpc.ClientUnaryCall,
  client: grpc.Client,
  req: Req,
  timeoutMs = 60_000,
): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

export interface DecodedError {
  readonly code: string;
  readonly message: string;
  readonly reason?: string;
  readonly metadata?: Record<string, string>;
  readonly fieldViolations: Array<{ field: string; description: string }>;
}

export function decodeError(err: unknown): DecodedError {
  const e = err as Partial<grpc.ServiceError>;
  const code = e.code !== undefined ? (grpc.status[e.code] ?? String(e.code)) : "ERROR";
  const out: { reason?: string; metadata?: Record<string, string>; fieldViolations: Array<{ field: string; description: string }> } = { fieldViolations: [] };
  const raw = e.metadata?.get("grpc-status-details-bin")[0];
  if (raw instanceof Buffer) {
    const status = Status.decode(raw);
    for (const d of status.details) {
      if (d.typeUrl.endsWith("google.rpc.ErrorInfo")) {
        const info = ErrorInfo.decode(d.value);
        out.reason = info.reason;
        out.metadata = info.metadata;
      } else if (d.typeUrl.endsWith("google.rpc.BadRequest")) {
        out.fieldViolations = BadRequest.decode(d.value).fieldViolations.map((v) => ({ field: v.field, description: v.description }));
      }
    }
  }
  return { code, message: e.details ?? (err instanceof Error ? err.message : String(err)), ...out };
}
