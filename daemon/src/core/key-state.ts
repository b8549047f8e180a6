/**
 * The NIST SP 800-57 Part 1 §7 key state machine, exactly as DESIGN.md's table gives it. Pure: no I/O, no clock.
 */

export const KEY_STATES = [
  "PRE_ACTIVATION",
  "ACTIVE",
  "SUSPENDED",
  "DEACTIVATED",
  "COMPROMISED",
  "DESTROYED",
  "DESTROYED_COMPROMISED",
] as const;
export type KeyState = (typeof KEY_STATES)[number];

/**
 * Allowed transitions: the key is the requested target, the value the state the key ends up in.
 * COMPROMISED → DESTROYED yields DESTROYED_COMPROMISED (asking for DESTROYED_COMPROMISED directly is the same).
 */
const TRANSITIONS: Readonly<Record<KeyState, Partial<Record<KeyState, KeyState>>>> = {
  PRE_ACTIVATION: { ACTIVE: "ACTIVE", COMPROMISED: "COMPROMISED", DESTROYED: "DESTROYED" },
  ACTIVE: { SUSPENDED: "SUSPENDED", DEACTIVATED: "DEACTIVATED", COMPROMISED: "COMPROMISED" },
  SUSPENDED: { ACTIVE: "ACTIVE", DEACTIVATED: "DEACTIVATED", COMPROMISED: "COMPROMISED" },
  DEACTIVATED: { COMPROMISED: "COMPROMISED", DESTROYED: "DESTROYED" },
  COMPROMISED: { DESTROYED: "DESTROYED_COMPROMISED", DESTROYED_COMPROMISED: "DESTROYED_COMPROMISED" },
  DESTROYED: {},
  DESTROYED_COMPROMISED: {},
};

/** The state a key in `from` ends up in when `to` is requested, or undefined when NIST forbids it. */
export function transitionResult(from: KeyState, to: KeyState): KeyState | undefined {
  return TRANSITIONS[from][to];
}

export function isTransitionAllowed(from: KeyState, to: KeyState): boolean {
  return transitionResult(from, to) !== undefined;
}

/** The targets reachable from `from`, for messages that tell a person what they can do instead. */
export function allowedTargets(from: KeyState): KeyState[] {
  return Object.keys(TRANSITIONS[from]) as KeyState[];
}

export function isDestroyed(state: KeyState): boolean {
  return state === "DESTROYED" || state === "DESTROYED_COMPROMISED";
}

/** States in which a new version may be generated. */
export function isRotatable(state: KeyState): boolean {
  return state === "PRE_ACTIVATION" || state === "ACTIVE" || state === "SUSPENDED";
}

/** Whether distributed copies of a key in this state are enabled in the keystores (DESIGN.md effect table). */
export function isEnabledInKeystores(state: KeyState): boolean {
  return state === "ACTIVE";
}
