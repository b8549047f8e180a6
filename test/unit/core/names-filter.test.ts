import test from "ava";
import { parseKeyName, parseVaultName, vaultOfResource } from "../../../daemon/src/core/names.js";
import { parseFilter } from "../../../daemon/src/core/filter.js";
import { InvalidArgumentError } from "../../../daemon/src/core/errors.js";

test("resource names parse only in their canonical form", (t) => {
  t.deepEqual(parseKeyName("vaults/pay-1/keys/k_2"), { vault: "pay-1", key: "k_2" });
  for (const bad of ["", "vaults/pay", "vaults/Pay/keys/k", "vaults/pay/keys/", "vaults/pay/keys/K", "vaults/pay/keys/k/x", "vaults/-pay/keys/k", "vaults/pay-/keys/k", `vaults/pay/keys/${"k".repeat(64)}`, "vaults/pay/key/k"]) {
    t.is(parseKeyName(bad), undefined, bad);
  }
  t.deepEqual(parseVaultName("vaults/a"), { vault: "a" });
  t.is(parseVaultName("vaults/a/keys/b"), undefined);
  t.is(vaultOfResource("vaults/a/keys/b"), "a");
});

test("filters are conjunctions of field = value; unknown fields and garbage are INVALID_ARGUMENT on `filter`", (t) => {
  const allowed = (f: string) => ["state", "algorithm"].includes(f) || f.startsWith("labels.");
  t.deepEqual(parseFilter('state = ACTIVE AND labels.env = "prod x"', allowed), [
    { field: "state", value: "ACTIVE" },
    { field: "labels.env", value: "prod x" },
  ]);
  t.deepEqual(parseFilter("  ", allowed), []);
  for (const bad of ["colour = red", "state ACTIVE", "state = ACTIVE OR state = SUSPENDED", "state = "]) {
    const e = t.throws(() => parseFilter(bad, allowed), { instanceOf: InvalidArgumentError });
    t.is(e?.violations[0]?.field, "filter", bad);
  }
});
