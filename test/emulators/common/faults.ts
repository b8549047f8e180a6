/**
 * Fault injection shared by every cloud emulator: latency, throttling, 5xx and timeouts, either drawn at random from a
 * seeded generator (so a run with the same seed and the same call sequence injects the same faults) or scripted for the
 * next N calls. Each emulator maps a fault kind to its cloud's real error shape.
 */

/** What can go wrong with one call. */
export type FaultKind = "throttle" | "server-error" | "timeout";

/** Random faults; rates are probabilities in [0, 1] drawn independently per call. */
export interface FaultConfig {
  /** Extra delay before every matching call is handled, in milliseconds. */
  latencyMs?: number;
  /** Share of matching calls refused with the cloud's throttling error (always before the call takes effect). */
  throttleRate?: number;
  /** Share of matching calls answered with a 5xx. */
  serverErrorRate?: number;
  /** Share of matching calls that never get an answer (the socket stays open until the client gives up). */
  timeoutRate?: number;
  /** Only these operation names (as logged in the call log) are affected; all when absent or empty. */
  onlyOperations?: string[];
  /** Seed of the generator; the same seed and call sequence give the same faults. Default 1. */
  seed?: number;
  /**
   * When true, 5xx and timeout faults happen after the call took effect (the answer is lost): the state changed but
   * the client cannot know. Default false: the call is refused before it does anything.
   */
  afterCommit?: boolean;
}

/** A scripted fault: the next `count` calls (of `operation`, or of any operation) fail with `kind`. */
export interface ScriptedFault {
  operation?: string;
  kind: FaultKind;
  /** How many calls; default 1. */
  count?: number;
  /** As in FaultConfig.afterCommit (ignored for throttle). */
  afterCommit?: boolean;
}

/** What to do with one call. */
export interface FaultDecision {
  latencyMs: number;
  kind?: FaultKind;
  afterCommit: boolean;
}

/** mulberry32: small, fast and good enough for test fault selection. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function checkRate(name: string, v: number | undefined): void {
  if (v !== undefined && !(v >= 0 && v <= 1)) throw new RangeError(`${name} must be between 0 and 1, got ${v}`);
}

export class FaultInjector {
  private config: FaultConfig = {};
  private random = seededRandom(1);
  private scripted: Array<{ operation?: string; kind: FaultKind; afterCommit: boolean }> = [];

  set(config: FaultConfig): void {
    checkRate("throttleRate", config.throttleRate);
    checkRate("serverErrorRate", config.serverErrorRate);
    checkRate("timeoutRate", config.timeoutRate);
    const sum = (config.throttleRate ?? 0) + (config.serverErrorRate ?? 0) + (config.timeoutRate ?? 0);
    if (sum > 1) throw new RangeError(`the fault rates add up to ${sum}, more than 1`);
    if (config.latencyMs !== undefined && !(config.latencyMs >= 0)) throw new RangeError("latencyMs must be >= 0");
    this.config = { ...config, onlyOperations: config.onlyOperations ? [...config.onlyOperations] : undefined };
    this.random = seededRandom(config.seed ?? 1);
  }

  /** Adds a scripted fault; scripted faults are consumed in the order they were added, before random ones. */
  failNext(fault: ScriptedFault): void {
    const count = fault.count ?? 1;
    if (!Number.isInteger(count) || count < 1) throw new RangeError("count must be a positive integer");
    for (let i = 0; i < count; i++) {
      const entry: { operation?: string; kind: FaultKind; afterCommit: boolean } = {
        kind: fault.kind,
        afterCommit: fault.afterCommit ?? false,
      };
      if (fault.operation !== undefined) entry.operation = fault.operation;
      this.scripted.push(entry);
    }
  }

  clear(): void {
    this.config = {};
    this.random = seededRandom(1);
    this.scripted = [];
  }

  /** The current random configuration and the scripted faults not yet consumed. */
  snapshot(): { config: FaultConfig; scripted: ScriptedFault[] } {
    return { config: { ...this.config }, scripted: this.scripted.map((s) => ({ ...s })) };
  }

  decide(operation: string): FaultDecision {
    const scriptedIndex = this.scripted.findIndex((s) => s.operation === undefined || s.operation === operation);
    const c = this.config;
    const matches = !c.onlyOperations || c.onlyOperations.length === 0 || c.onlyOperations.includes(operation);
    const latencyMs = matches ? (c.latencyMs ?? 0) : 0;
    if (scriptedIndex >= 0) {
      const [s] = this.scripted.splice(scriptedIndex, 1);
      if (s) return { latencyMs, kind: s.kind, afterCommit: s.kind !== "throttle" && s.afterCommit };
    }
    if (!matches) return { latencyMs: 0, afterCommit: false };
    const throttle = c.throttleRate ?? 0;
    const server = c.serverErrorRate ?? 0;
    const timeout = c.timeoutRate ?? 0;
    if (throttle + server + timeout === 0) return { latencyMs, afterCommit: false };
    const r = this.random();
    const afterCommit = c.afterCommit ?? false;
    if (r < throttle) return { latencyMs, kind: "throttle", afterCommit: false };
    if (r < throttle + server) return { latencyMs, kind: "server-error", afterCommit };
    if (r < throttle + server + timeout) return { latencyMs, kind: "timeout", afterCommit };
    return { latencyMs, afterCommit: false };
  }
}
