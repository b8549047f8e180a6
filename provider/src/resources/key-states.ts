// Plan-time view of the NIST SP 800-57 key state machine (DESIGN.md "Key lifecycle"). The daemon owns the real table
// (daemon/src/core/key-state.ts) and checks every transition again; the provider may not import daemon/src/core
// (layer rule), so the table is repeated here as data. test/unit/provider/key-states.test.ts checks every cell against
// DESIGN.md's table, so a change on either side shows up.

export const KEY_STATES = ["PRE_ACTIVATION", "ACTIVE", "SUSPENDED", "DEACTIVATED", "COMPROMISED", "DESTROYED", "DESTROYED_COMPROMISED"] as const;
export type KeyStateName = (typeof KEY_STATES)[number];

export function isKeyStateName(s: string): s is KeyStateName {
  return (KEY_STATES as readonly string[]).includes(s);
}

/**
 * requested target → resulting state, per current state. COMPROMISED → DESTROYED yields DESTROYED_COMPROMISED
 * (asking for DESTROYED_COMPROMISED there is the same request).
 */
const TRANSITIONS: Readonly<Record<KeyStateName, Partial<Record<KeyStateName, KeyStateName>>>> = {
  PRE_ACTIVATION: { ACTIVE: "ACTIVE", COMPROMISED: "COMPROMISED", DESTROYED: "DESTROYED" },
  ACTIVE: { SUSPENDED: "SUSPENDED", DEACTIVATED: "DEACTIVATED", COMPROMISED: "COMPROMISED" },
  SUSPENDED: { ACTIVE: "ACTIVE", DEACTIVATED: "DEACTIVATED", COMPROMISED: "COMPROMISED" },
  DEACTIVATED: { COMPROMISED: "COMPROMISED", DESTROYED: "DESTROYED" },
  COMPROMISED: { DESTROYED: "DESTROYED_COMPROMISED", DESTROYED_COMPROMISED: "DESTROYED_COMPROMISED" },
  DESTROYED: {},
  DESTROYED_COMPROMISED: {},
};

/** The state a key in `from` ends up in when `to` is requested in one SetKeyState, or undefined if NIST forbids it. */
export function transitionResult(from: KeyStateName, to: KeyStateName): KeyStateName | undefined {
  return TRANSITIONS[from][to];
}

/** Targets one SetKeyState can reach from `from` (for messages saying what is possible instead). */
export function directTargets(from: KeyStateName): KeyStateName[] {
  return Object.keys(TRANSITIONS[from]) as KeyStateName[];
}

/** True when `actual` is what the configuration asked for (DESTROYED also covers DESTROYED_COMPROMISED). */
export function satisfies(actual: KeyStateName, wanted: KeyStateName): boolean {
  return actual === wanted || (wanted === "DESTROYED" && actual === "DESTROYED_COMPROMISED");
}

/** One SetKeyState call: the state to request and the state the key is in afterwards. */
export interface StateStep {
  readonly request: KeyStateName;
  readonly result: KeyStateName;
}

/**
 * The shortest series of SetKeyState calls from `from` to a state satisfying `to`, or undefined when NIST allows
 * none. Never passes through COMPROMISED on the way (marking a key compromised is an alarm, only ever asked for
 * explicitly), so e.g. ACTIVE → DESTROYED goes ACTIVE → DEACTIVATED → DESTROYED. An empty list: already there.
 */
export function transitionPath(from: KeyStateName, to: KeyStateName): StateStep[] | undefined {
  if (satisfies(from, to)) return [];
  const seen = new Set<KeyStateName>([from]);
  let frontier: { at: KeyStateName; steps: StateStep[] }[] = [{ at: from, steps: [] }];
  while (frontier.length > 0) {
    const next: typeof frontier = [];
    for (const { at, steps } of frontier) {
      for (const [request, result] of Object.entries(TRANSITIONS[at]) as [KeyStateName, KeyStateName][]) {
        const path = [...steps, { request, result }];
        if (satisfies(result, to)) return path;
        if (seen.has(result) || result === "COMPROMISED") continue;
        seen.add(result);
        next.push({ at: result, steps: path });
      }
    }
    frontier = next;
  }
  return undefined;
}
