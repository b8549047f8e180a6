/** Injected time and identifiers, so scheduled work and ids are deterministic in tests. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };

export interface IdSource {
  /** A random UUID v4. */
  uuid(): string;
}
