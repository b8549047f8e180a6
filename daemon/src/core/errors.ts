/**
 * Domain errors. Core and its adapters throw only these across layers; `api/errors.ts` is the one place that maps
 * them to gRPC status codes and `google.rpc` details. `reason` is the stable ErrorInfo reason (UPPER_SNAKE, never
 * renamed once shipped, listed in protos/mcko/v1/errors.proto); `metadata` carries the dynamic parts, so messages
 * can stay readable without being parsed by anyone.
 */

export interface FieldViolation {
  /** Proto field path, e.g. `key.rotation_period` or `key.labels[env]`. */
  readonly field: string;
  readonly description: string;
}

export interface PreconditionViolation {
  /** Kind of precondition, e.g. `KEY_STATE`. */
  readonly type: string;
  /** What it is about, e.g. the resource name. */
  readonly subject: string;
  readonly description: string;
}

export type ErrorKind =
  | "INVALID_ARGUMENT"
  | "NOT_FOUND"
  | "ALREADY_EXISTS"
  | "FAILED_PRECONDITION"
  | "ABORTED"
  | "UNAUTHENTICATED"
  | "PERMISSION_DENIED"
  | "RESOURCE_EXHAUSTED"
  | "UNAVAILABLE"
  | "INTERNAL";

export abstract class MckoError extends Error {
  abstract readonly kind: ErrorKind;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;

  constructor(reason: string, message: string, metadata: Record<string, string> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
    this.metadata = Object.freeze({ ...metadata });
  }
}

export class InvalidArgumentError extends MckoError {
  override name = "InvalidArgumentError";
  readonly kind = "INVALID_ARGUMENT" as const;
  constructor(
    readonly violations: readonly FieldViolation[],
    reason = "INVALID_ARGUMENT",
  ) {
    super(reason, summarizeViolations(violations));
  }
}

function summarizeViolations(violations: readonly FieldViolation[]): string {
  if (violations.length === 0) return "invalid request";
  const first = violations[0]!;
  const more = violations.length > 1 ? ` (and ${violations.length - 1} more problem${violations.length > 2 ? "s" : ""})` : "";
  return `${first.field}: ${first.description}${more}`;
}

export class NotFoundError extends MckoError {
  override name = "NotFoundError";
  readonly kind = "NOT_FOUND" as const;
  constructor(readonly resource: string, what = "resource") {
    super("RESOURCE_NOT_FOUND", `${what} ${resource} not found`, { resource });
  }
}

export class AlreadyExistsError extends MckoError {
  override name = "AlreadyExistsError";
  readonly kind = "ALREADY_EXISTS" as const;
  constructor(readonly resource: string, message?: string, reason = "RESOURCE_ALREADY_EXISTS") {
    super(reason, message ?? `${resource} already exists`, { resource });
  }
}

export class FailedPreconditionError extends MckoError {
  override name = "FailedPreconditionError";
  readonly kind = "FAILED_PRECONDITION" as const;
  constructor(
    reason: string,
    message: string,
    metadata: Record<string, string>,
    readonly violations: readonly PreconditionViolation[] = [],
  ) {
    super(reason, message, metadata);
  }
}

export class AbortedError extends MckoError {
  override name = "AbortedError";
  readonly kind = "ABORTED" as const;
  constructor(resource: string, message?: string) {
    super("ETAG_MISMATCH", message ?? `${resource} was changed by someone else: its etag no longer matches; read it again and retry`, { resource });
  }
}

export class UnauthenticatedError extends MckoError {
  override name = "UnauthenticatedError";
  readonly kind = "UNAUTHENTICATED" as const;
  constructor(message: string, reason = "UNAUTHENTICATED", metadata: Record<string, string> = {}) {
    super(reason, message, metadata);
  }
}

export class PermissionDeniedError extends MckoError {
  override name = "PermissionDeniedError";
  readonly kind = "PERMISSION_DENIED" as const;
  constructor(message: string, metadata: Record<string, string> = {}) {
    super("PERMISSION_DENIED", message, metadata);
  }
}

export class ResourceExhaustedError extends MckoError {
  override name = "ResourceExhaustedError";
  readonly kind = "RESOURCE_EXHAUSTED" as const;
  constructor(reason: string, message: string, metadata: Record<string, string> = {}) {
    super(reason, message, metadata);
  }
}

export class UnavailableError extends MckoError {
  override name = "UnavailableError";
  readonly kind = "UNAVAILABLE" as const;
  constructor(reason: string, message: string, metadata: Record<string, string> = {}, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(reason, message, metadata, options);
    this.retryAfterMs = options?.retryAfterMs;
  }
  readonly retryAfterMs: number | undefined;
}

export class InternalError extends MckoError {
  override name = "InternalError";
  readonly kind = "INTERNAL" as const;
  constructor(message: string, options?: { cause?: unknown }) {
    super("INTERNAL", message, {}, options);
  }
}

/** Collects field violations so validation reports every problem at once, not just the first. */
export class Violations {
  readonly #list: FieldViolation[] = [];
  add(field: string, description: string): void {
    this.#list.push({ field, description });
  }
  get isEmpty(): boolean {
    return this.#list.length === 0;
  }
  get list(): readonly FieldViolation[] {
    return this.#list;
  }
  throwIfAny(): void {
    if (this.#list.length > 0) throw new InvalidArgumentError([...this.#list]);
  }
}
