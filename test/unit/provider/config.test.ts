// The provider block: env defaults, inline PEM vs file paths, durations, and attribute paths on every problem.
import test from "ava";
import { parseDuration, readEnvDefaults, resolveProviderConfig, validateProviderConfig } from "../../../provider/src/config.js";
import { UNKNOWN, type ObjectValue } from "../../../provider/src/plugin/cty.js";
import { Diagnostics, formatPath } from "../../../provider/src/plugin/diagnostics.js";

const CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
const KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n";
const cfg = (o: Partial<Record<string, string | null | typeof UNKNOWN>>): ObjectValue => ({
  address: null, ca_cert: null, client_cert: null, client_key: null, request_timeout: null, ...o,
});
const paths = (d: Diagnostics): string[] => d.items.map((x) => (x.path ? formatPath(x.path) : "-"));

test("parseDuration: Go-style durations", (t) => {
  t.is(parseDuration("60s"), 60_000);
  t.is(parseDuration("1m30s"), 90_000);
  t.is(parseDuration("500ms"), 500);
  t.is(parseDuration("2h"), 7_200_000);
  t.is(parseDuration("1.5s"), 1500);
  t.is(parseDuration("soon"), undefined);
  t.is(parseDuration("10"), undefined);
  t.is(parseDuration(""), undefined);
});

test("env defaults come only from MCKO_* and ignore empty values", (t) => {
  t.deepEqual(readEnvDefaults({ MCKO_ADDR: "10.0.0.1:7443", MCKO_CA_CERT: "", MCKO_CLIENT_CERT: "/c.pem", OTHER: "x" }), {
    address: "10.0.0.1:7443",
    clientCert: "/c.pem",
  });
});

test("config values win over env; env fills the rest; files are read; default timeout 60s", (t) => {
  const files: Record<string, string> = { "/etc/mcko/ca.pem": CERT, "/etc/mcko/key.pem": KEY };
  const diags = new Diagnostics();
  const conn = resolveProviderConfig(
    cfg({ address: "127.0.0.1:7443", ca_cert: "/etc/mcko/ca.pem", client_cert: CERT }),
    {
      env: { address: "ignored:1", clientKey: "/etc/mcko/key.pem" },
      readFile: (p) => {
        const f = files[p];
        if (f === undefined) throw Object.assign(new Error("nope"), { code: "ENOENT" });
        return Buffer.from(f);
      },
    },
    diags,
  );
  t.deepEqual(diags.items, []);
  t.is(conn?.address, "127.0.0.1:7443");
  t.is(conn?.caPem.toString(), CERT);
  t.is(conn?.keyPem.toString(), KEY);
  t.is(conn?.requestTimeoutMs, 60_000);
});

test("every problem is reported at once, each on its attribute", (t) => {
  const diags = new Diagnostics();
  const conn = resolveProviderConfig(
    cfg({ address: "no-port", ca_cert: "/missing.pem", client_cert: KEY, request_timeout: "-1s" }),
    { env: {}, readFile: () => { throw Object.assign(new Error("x"), { code: "ENOENT" }); } },
    diags,
  );
  t.is(conn, undefined);
  t.deepEqual(paths(diags).sort(), ["address", "ca_cert", "client_cert", "client_key", "request_timeout"].sort());
  t.true(diags.items.some((d) => d.detail?.includes("MCKO_CLIENT_KEY")));
  t.true(diags.items.some((d) => d.detail?.includes("/missing.pem") && d.detail.includes("ENOENT")));
});

test("unknown provider config values are errors at configure and ignored by validate", (t) => {
  const v = new Diagnostics();
  validateProviderConfig(cfg({ address: UNKNOWN, request_timeout: UNKNOWN }), v);
  t.deepEqual(v.items, []);
  const d = new Diagnostics();
  resolveProviderConfig(cfg({ address: UNKNOWN, ca_cert: CERT, client_cert: CERT, client_key: KEY }), { env: {} }, d);
  t.deepEqual(paths(d), ["address"]);
  t.regex(d.items[0]?.summary ?? "", /not known yet/);
});
