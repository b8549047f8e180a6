/** Connector failures (cloud/) → domain errors. Messages are already scrubbed of credentials by the connectors. */
import { ConnectorError } from "../cloud/connector.js";
import { FailedPreconditionError, InvalidArgumentError, UnavailableError, type MckoError } from "./errors.js";

/** `fieldPrefix` is the proto path of the keystore's per-type config, e.g. `keystore.aws_kms`. */
export function fromConnectorError(e: unknown, fieldPrefix: string): unknown {
  if (!(e instanceof ConnectorError)) return e;
  const md: Record<string, string> = {};
  if (e.details.cloudCode) md.cloudErrorCode = e.details.cloudCode;
  if (e.details.operation) md.operation = e.details.operation;
  let out: MckoError;
  switch (e.kind) {
    case "INVALID_CONFIG":
      out = new InvalidArgumentError([{ field: `${fieldPrefix}.${e.details.field ?? "endpoint"}`, description: e.message }], "CLOUD_REQUEST_REJECTED");
      break;
    case "CREDENTIALS_REJECTED":
      out = new FailedPreconditionError("CLOUD_CREDENTIALS_REJECTED", e.message, md, [{ type: "KEYSTORE_CREDENTIALS", subject: fieldPrefix, description: "the cloud refused the credentials" }]);
      break;
    case "UNSUPPORTED_ALGORITHM":
      out = new FailedPreconditionError("ALGORITHM_NOT_SUPPORTED_BY_KEYSTORE", e.message, md);
      break;
    case "UNAVAILABLE":
      out = new UnavailableError("CLOUD_UNAVAILABLE", e.message, md, { retryAfterMs: 2000 });
      break;
    default:
      out = new FailedPreconditionError("CLOUD_REQUEST_REJECTED", e.message, md);
  }
  return out;
}
