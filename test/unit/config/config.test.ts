import test from "ava";
import { mkdtempSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError, compileConfig } from "../../../daemon/src/config/config.js";

function dir(): string {
  const d = mkdtempSync(join(tmpdir(), "mcko-cfg-"));
  writeFileSync(join(d, "master.key"), "x", { mode: 0o600 });
  return d;
}
const base = { listen: "127.0.0.1:7443", tls: { caCertFile: "ca.pem", certFile: "s.pem", keyFile: "s.key" }, dataDir: "data", hsm: { backend: "software", masterKeyFile: "master.key" } };

test("a valid file compiles to a frozen, defaulted config with paths relative to the file", (t) => {
  const d = dir();
  const c = compileConfig(base, join(d, "config.json"), {});
  t.is(c.listen.port, 7443);
  t.is(c.dataDir, join(d, "data"));
  t.is(c.maxRequestBytes, 4 * 1024 * 1024);
  t.true(Object.isFrozen(c) && Object.isFrozen(c.tls));
});

test("environment overrides apply unless switched off", (t) => {
  const d = dir();
  const env = { MCKO_LISTEN: "0.0.0.0:9000", MCKO_LOG_LEVEL: "debug" };
  t.is(compileConfig(base, join(d, "c.json"), env).listen.port, 9000);
  t.is(compileConfig({ ...base, allowEnvOverrides: false }, join(d, "c.json"), env).listen.port, 7443);
});

test("every problem is reported at once, naming the key and the file", (t) => {
  const d = dir();
  const e = t.throws(() => compileConfig({ listen: "nope", tls: 3, hsm: { backend: "cloud" }, logLevel: "loud", extra: 1 }, join(d, "c.json"), {}), { instanceOf: ConfigError });
  for (const key of ["listen", "tls", "hsm.backend", "logLevel", "extra", "dataDir"]) t.true(e!.message.includes(key), key);
});

test("hsm.sessions sets the pkcs11 session pool (1-256) and is optional", (t) => {
  const d = dir();
  const pkcs11 = { backend: "pkcs11", modulePath: "/m.so", tokenLabel: "t" };
  const c = compileConfig({ ...base, hsm: { ...pkcs11, sessions: 8 } }, join(d, "c.json"), {});
  t.is(c.hsm.backend === "pkcs11" ? c.hsm.sessions : undefined, 8);
  const none = compileConfig({ ...base, hsm: pkcs11 }, join(d, "c.json"), {});
  t.false(none.hsm.backend === "pkcs11" && "sessions" in none.hsm);
  for (const bad of [0, 257, 2.5, "4"]) {
    const e = t.throws(() => compileConfig({ ...base, hsm: { ...pkcs11, sessions: bad } }, join(d, "c.json"), {}), { instanceOf: ConfigError });
    t.regex(e!.message, /hsm\.sessions \(in .*\) must be an integer from 1 to 256/);
  }
});

test("a PIN in the config file is refused; a world-readable master key file is refused", (t) => {
  const d = dir();
  const pin = t.throws(() => compileConfig({ ...base, hsm: { backend: "pkcs11", modulePath: "/m.so", tokenLabel: "t", pin: "1234" } }, join(d, "c.json"), {}), { instanceOf: ConfigError });
  t.regex(pin!.message, /PIN must not be written in the config file/);
  chmodSync(join(d, "master.key"), 0o644);
  const mode = t.throws(() => compileConfig(base, join(d, "c.json"), {}), { instanceOf: ConfigError });
  t.regex(mode!.message, /chmod 600/);
});
