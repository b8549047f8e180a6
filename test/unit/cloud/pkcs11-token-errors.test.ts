/**
 * How target-token PKCS#11 failures become ConnectorErrors: which are retried by the call policy and which end a push.
 */
import test from "ava";
import pkcs11js from "pkcs11js";
import { translatePkcs11Error } from "../../../daemon/src/cloud/pkcs11-token/errors.js";

const fail = (name: keyof typeof pkcs11js, method = "C_UnwrapKey") => {
  const code = pkcs11js[name] as number;
  return new pkcs11js.Pkcs11Error(`${name}:${code}`, code, method);
};
const creds = { pin: "Canary-PIN-0001" };

test("CKR_GENERAL_ERROR is retried (SoftHSM's object-store race under concurrent creation) and says so", (t) => {
  const e = translatePkcs11Error(fail("CKR_GENERAL_ERROR"), "push", "target", creds);
  t.is(e.kind, "REJECTED");
  t.true(e.details.retryable);
  t.is(e.details.cloudCode, "CKR_GENERAL_ERROR");
  t.regex(e.message, /retried until the call deadline/);
});

test("refusals that a retry cannot change end the push at once; a lost token is retried on a new connection", (t) => {
  for (const name of ["CKR_TEMPLATE_INCONSISTENT", "CKR_ATTRIBUTE_VALUE_INVALID"] as const) {
    const e = translatePkcs11Error(fail(name), "push", "target", creds);
    t.is(e.kind, "REJECTED", name);
    t.falsy(e.details.retryable, name);
  }
  t.is(translatePkcs11Error(fail("CKR_MECHANISM_INVALID"), "push", "target", creds).kind, "UNSUPPORTED_ALGORITHM");
  t.is(translatePkcs11Error(fail("CKR_KEY_HANDLE_INVALID"), "push", "target", creds).kind, "NOT_FOUND");
  const gone = translatePkcs11Error(fail("CKR_DEVICE_REMOVED"), "push", "target", creds);
  t.is(gone.kind, "UNAVAILABLE");
  t.true(gone.details.retryable);
});
