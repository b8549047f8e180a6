// Conversions the MCKO resources rely on: resource names, RFC 3339 times and Go-style durations (with the semantic
// equality that keeps the user's spelling), the key state default that follows the schedule, and the ListKeys filter.
import test from "ava";
import { keysFilter } from "../../../provider/src/datasources/keys.js";
import {
  durationState,
  formatDuration,
  formatTime,
  parseDurationSeconds,
  parseKeyName,
  parseTime,
  parseVaultName,
  timeState,
} from "../../../provider/src/resources/convert.js";
import { defaultState } from "../../../provider/src/resources/key.js";

test("names", (t) => {
  t.is(parseVaultName("vaults/prod"), "prod");
  t.is(parseVaultName("vaults/Prod"), undefined);
  t.is(parseVaultName("prod"), undefined);
  t.deepEqual(parseKeyName("vaults/prod/keys/data_key-1"), { vaultName: "vaults/prod", key: "data_key-1" });
  t.is(parseKeyName("vaults/prod/keys/"), undefined);
  t.is(parseKeyName("vaults/prod/keystores/k"), undefined);
});

test("times: RFC 3339 only; the prior spelling is kept for the same instant", (t) => {
  t.truthy(parseTime("2026-01-01T00:00:00Z"));
  t.truthy(parseTime("2026-01-01T01:00:00.5+01:00"));
  t.is(parseTime("2026-01-01"), undefined);
  t.is(parseTime("2026-01-01 00:00:00Z"), undefined);
  const d = new Date("2026-01-01T00:00:00Z");
  t.is(formatTime(d), "2026-01-01T00:00:00Z");
  t.is(formatTime(new Date("2026-01-01T00:00:00.250Z")), "2026-01-01T00:00:00.250Z");
  t.is(timeState(d, "2026-01-01T01:00:00+01:00"), "2026-01-01T01:00:00+01:00");
  t.is(timeState(d, "2026-01-02T00:00:00Z"), "2026-01-01T00:00:00Z");
  t.is(timeState(undefined, "2026-01-01T00:00:00Z"), null);
});

test("durations: h/m/s in whole seconds, shortest spelling, prior spelling kept", (t) => {
  t.is(parseDurationSeconds("720h"), 2592000);
  t.is(parseDurationSeconds("1h30m"), 5400);
  t.is(parseDurationSeconds("90m"), 5400);
  t.is(parseDurationSeconds("1.5h"), undefined);
  t.is(parseDurationSeconds("30d"), undefined);
  t.is(parseDurationSeconds(""), undefined);
  t.is(formatDuration(2592000), "720h");
  t.is(formatDuration(5400), "1h30m");
  t.is(formatDuration(3661), "1h1m1s");
  t.is(durationState(5400, "90m"), "90m");
  t.is(durationState(5400, "2h"), "1h30m");
  t.is(durationState(undefined, "2h"), null);
});

test("the default state follows the schedule", (t) => {
  const now = new Date("2026-06-01T00:00:00Z");
  const past = new Date("2026-01-01T00:00:00Z");
  const future = new Date("2027-01-01T00:00:00Z");
  t.is(defaultState(undefined, undefined, now), "ACTIVE");
  t.is(defaultState(future, undefined, now), "PRE_ACTIVATION");
  t.is(defaultState(past, future, now), "ACTIVE");
  t.is(defaultState(undefined, past, now), "DEACTIVATED");
});

test("ListKeys filter from state and labels", (t) => {
  t.is(keysFilter(null, null), "");
  t.is(keysFilter("ACTIVE", null), "state = ACTIVE");
  t.is(keysFilter("ACTIVE", { team: "a", env: "prod" }), 'state = ACTIVE AND labels.env = "prod" AND labels.team = "a"');
});
