// The provider's copy of the NIST SP 800-57 table (provider/src/resources/key-states.ts), checked cell by cell against
// DESIGN.md's "Key lifecycle" table as printed there, plus the multi-step paths plan and apply use.
import test from "ava";
import { KEY_STATES, satisfies, transitionPath, transitionResult } from "../../../provider/src/resources/key-states.js";

// DESIGN.md's table (rows from, columns to). Kept as text here; the shared DESIGN.md lives outside the repository.
const DESIGN_TABLE = `
| PRE_ACTIVATION | yes | – | – | yes | yes |
| ACTIVE | – | yes | yes | yes | – |
| SUSPENDED | yes | – | yes | yes | – |
| DEACTIVATED | – | – | – | yes | yes |
| COMPROMISED | – | – | – | – | yes (DESTROYED_COMPROMISED) |
`;
const COLUMNS = ["ACTIVE", "SUSPENDED", "DEACTIVATED", "COMPROMISED", "DESTROYED"] as const;

test("every cell of DESIGN.md's table", (t) => {
  const rows = DESIGN_TABLE.trim().split("\n").map((l) => l.split("|").map((c) => c.trim()).filter((c) => c !== ""));
  for (const [from, ...cells] of rows) {
    COLUMNS.forEach((to, i) => {
      const cell = cells[i] ?? "";
      const got = transitionResult(from as (typeof KEY_STATES)[number], to);
      if (cell.startsWith("yes")) t.is(got, cell.includes("DESTROYED_COMPROMISED") ? "DESTROYED_COMPROMISED" : to, `${from} → ${to}`);
      else t.is(got, undefined, `${from} → ${to}`);
    });
  }
  for (const to of KEY_STATES) {
    t.is(transitionResult("DESTROYED", to), undefined);
    t.is(transitionResult("DESTROYED_COMPROMISED", to), undefined);
  }
});

test("paths: shortest, in NIST order, never through COMPROMISED unless asked for", (t) => {
  const req = (from: (typeof KEY_STATES)[number], to: (typeof KEY_STATES)[number]) => transitionPath(from, to)?.map((s) => s.request);
  t.deepEqual(req("ACTIVE", "ACTIVE"), []);
  t.deepEqual(req("ACTIVE", "DESTROYED"), ["DEACTIVATED", "DESTROYED"]);
  t.deepEqual(req("SUSPENDED", "DESTROYED"), ["DEACTIVATED", "DESTROYED"]);
  t.deepEqual(req("PRE_ACTIVATION", "DESTROYED"), ["DESTROYED"]);
  t.deepEqual(req("PRE_ACTIVATION", "SUSPENDED"), ["ACTIVE", "SUSPENDED"]);
  t.deepEqual(req("PRE_ACTIVATION", "DEACTIVATED"), ["ACTIVE", "DEACTIVATED"]);
  t.deepEqual(req("COMPROMISED", "DESTROYED"), ["DESTROYED"]);
  t.is(transitionPath("COMPROMISED", "DESTROYED")?.[0]?.result, "DESTROYED_COMPROMISED");
  t.deepEqual(req("DESTROYED_COMPROMISED", "DESTROYED"), [], "DESTROYED is satisfied by DESTROYED_COMPROMISED");
  t.is(req("DESTROYED", "ACTIVE"), undefined);
  t.is(req("DEACTIVATED", "ACTIVE"), undefined);
  t.is(req("DEACTIVATED", "SUSPENDED"), undefined);
  t.is(req("ACTIVE", "DESTROYED_COMPROMISED"), undefined, "compromise is never implied");
  t.is(req("ACTIVE", "PRE_ACTIVATION"), undefined);
  t.true(satisfies("DESTROYED_COMPROMISED", "DESTROYED"));
  t.false(satisfies("DESTROYED", "DESTROYED_COMPROMISED"));
});

test("every state reaches DESTROYED (destroy always has a path)", (t) => {
  for (const s of KEY_STATES) t.not(transitionPath(s, "DESTROYED"), undefined, s);
});
