/**
 * JSON logs (pino) to stderr. Redaction is a backstop: key material and credentials travel in `Secret`, which
 * renders as `[REDACTED]` anyway, but these paths are censored too in case a plain value slips into a log call.
 */
import pino from "pino";
import type { LogLevel } from "../config/config.js";

export type Logger = pino.Logger;

export const REDACT_PATHS = [
  "*.material",
  "*.plaintext",
  "*.privateKey",
  "*.private_key",
  "*.keyPem",
  "*.password",
  "*.secret",
  "*.secretAccessKey",
  "*.credentials",
  "*.pin",
  "*.token",
  "*.authorization",
  "*.headers.authorization",
  "material",
  "plaintext",
  "pin",
  "credentials",
];

export function createLogger(level: LogLevel, destination: pino.DestinationStream = pino.destination({ fd: 2, sync: false })): Logger {
  return pino({ level, base: { svc: "mckod" }, redact: { paths: REDACT_PATHS, censor: "[REDACTED]" } }, destination);
}
