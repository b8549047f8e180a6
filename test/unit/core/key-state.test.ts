import test from "ava";
import { KEY_STATES, allowedTargets, isTransitionAllowed, transitionResult, type KeyState } from "../../../daemon/src/core/key-state.js";

// DESIGN.md's table, cell by cell ("yes" cells; DESTROYED from COMPROMISED yields DESTROYED_COMPROMISED).
const YES: Array<[KeyState, KeyState, KeyState]> = [
  ["PRE_ACTIVATION", "ACTIVE", "ACTIVE"],
  ["PRE_ACTIVATION", "COMPROMISED", "COMPROMISED"],
  ["PRE_ACTIVATION", "DESTROYED", "DESTROYED"],
  ["ACTIVE", "SUSPENDED", "SUSPENDED"],
  ["ACTIVE", "DEACTIVATED", "DEACTIVATED"],
  ["ACTIVE", "COMPROMISED", "COMPROMISED"],
  ["SUSPENDED", "ACTIVE", "ACTIVE"],
  ["SUSPENDED", "DEACTIVATED", "DEACTIVATED"],
  ["SUSPENDED", "COMPROMISED", "COMPROMISED"],
  ["DEACTIVATED", "COMPROMISED", "COMPROMISED"],
  ["DEACTIVATED", "DESTROYED", "DESTROYED"],
  ["COMPROMISED", "DESTROYED", "DESTROYED_COMPROMISED"],
  ["COMPROMISED", "DESTROYED_COMPROMISED", "DESTROYED_COMPROMISED"],
];

test("every cell of the NIST table", (t) => {
  let checked = 0;
  for (const from of KEY_STATES) {
    for (const to of KEY_STATES) {
      const cell = YES.find(([f, tt]) => f === from && tt === to);
      t.is(transitionResult(from, to), cell?.[2], `${from} -> ${to}`);
      t.is(isTransitionAllowed(from, to), cell !== undefined);
      checked++;
    }
  }
  t.is(checked, 49);
});

test("terminal states have no way out, and self-transitions are refused", (t) => {
  t.deepEqual(allowedTargets("DESTROYED"), []);
  t.deepEqual(allowedTargets("DESTROYED_COMPROMISED"), []);
  for (const s of KEY_STATES) t.false(isTransitionAllowed(s, s));
});
