import test from "ava";
import { Secret } from "../../daemon/src/util/secret.js";
import { inspect } from "node:util";

test("Secret never renders its bytes and zeroes them on dispose", (t) => {
  const bytes = Buffer.from("00112233445566778899aabbccddeeff", "hex");
  const s = Secret.adopt(bytes);
  t.is(JSON.stringify({ s }), '{"s":"[REDACTED]"}');
  t.is(`${s}`, "[REDACTED]");
  t.false(inspect(s).includes("0011"));
  s.dispose();
  t.true(bytes.every((b) => b === 0));
  t.throws(() => s.expose());
});
