/** AWS KMS errors as they travel on the wire: HTTP status + `{"__type": "<ExceptionName>", "message": "..."}`. */
export class KmsError extends Error {
  constructor(
    /** The exception name the SDK turns into `e.name` (e.g. "NotFoundException"). */
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
    this.name = type;
  }
}

export const notNull = (field: string): KmsError =>
  new KmsError("ValidationException", `1 validation error detected: Value null at '${field}' failed to satisfy constraint: Member must not be null`);

export const badEnum = (field: string, value: unknown, allowed: readonly string[]): KmsError =>
  new KmsError(
    "ValidationException",
    `1 validation error detected: Value '${String(value)}' at '${field}' failed to satisfy constraint: Member must satisfy enum value set: [${allowed.join(", ")}]`,
  );
