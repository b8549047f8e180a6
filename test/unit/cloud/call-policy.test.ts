/** The connectors' call machinery: per-keystore concurrency limit and retries of retryable failures only. */
import test from "ava";
import { Semaphore, callWithRetry, makeCallPolicy } from "../../../daemon/src/cloud/call-policy.js";
import { ConnectorError, scrub } from "../../../daemon/src/cloud/connector.js";
import { translateAwsError } from "../../../daemon/src/cloud/aws-kms/errors.js";

test("the semaphore never lets more than its size run at once", async (t) => {
  const sem = new Semaphore(3);
  let running = 0;
  let peak = 0;
  const gates: Array<() => void> = [];
  const jobs = Array.from({ length: 10 }, () =>
    sem.run(async () => {
      running++;
      peak = Math.max(peak, running);
      await new Promise<void>((r) => gates.push(r));
      running--;
    }),
  );
  while (gates.length < 3) await new Promise((r) => setImmediate(r));
  t.is(running, 3);
  while (gates.length > 0 || running > 0) {
    gates.shift()?.();
    await new Promise((r) => setImmediate(r));
  }
  await Promise.all(jobs);
  t.is(peak, 3);
});

test("retryable failures are retried until success; others are thrown at once", async (t) => {
  const policy = makeCallPolicy({ maxConcurrency: 2, attemptTimeoutMs: 1000, deadlineMs: 60_000, random: () => 0 });
  let n = 0;
  const out = await callWithRetry(policy, "Op", async () => {
    if (++n < 4) throw new ConnectorError("UNAVAILABLE", "throttled", { retryable: true, cloudCode: "ThrottlingException" });
    return "done";
  });
  t.is(out, "done");
  t.is(n, 4);
  let m = 0;
  const e = await t.throwsAsync(
    callWithRetry(policy, "Op", async () => {
      m++;
      throw new ConnectorError("REJECTED", "no", { cloudCode: "ValidationException" });
    }),
  );
  t.is(m, 1);
  t.is((e as ConnectorError).kind, "REJECTED");
});

test("past the deadline a retryable failure becomes UNAVAILABLE naming the operation", async (t) => {
  const policy = makeCallPolicy({ maxConcurrency: 1, attemptTimeoutMs: 1000, deadlineMs: 1, random: () => 1 });
  const e = (await t.throwsAsync(
    callWithRetry(policy, "ImportKeyMaterial", async () => {
      throw new ConnectorError("UNAVAILABLE", "500", { retryable: true });
    }),
  )) as ConnectorError;
  t.is(e.kind, "UNAVAILABLE");
  t.is(e.details.operation, "ImportKeyMaterial");
});

test("AWS errors: throttling and 5xx retryable, credential refusals not, messages scrubbed of credentials", (t) => {
  const creds = { access_key_id: "AKIAEXAMPLE000000001", secret_access_key: "very-secret-value" };
  const throttled = translateAwsError(Object.assign(new Error("Rate exceeded"), { name: "ThrottlingException", $metadata: { httpStatusCode: 400 } }), "CreateKey", creds);
  t.true(throttled.details.retryable);
  const server = translateAwsError(Object.assign(new Error("boom"), { name: "KMSInternalException", $metadata: { httpStatusCode: 500 } }), "CreateKey", creds);
  t.is(server.kind, "UNAVAILABLE");
  const denied = translateAwsError(Object.assign(new Error("key AKIAEXAMPLE000000001 with very-secret-value is bad"), { name: "UnrecognizedClientException", $metadata: { httpStatusCode: 400 } }), "ListKeys", creds);
  t.is(denied.kind, "CREDENTIALS_REJECTED");
  t.false(denied.details.retryable === true);
  t.false(denied.message.includes("AKIAEXAMPLE000000001") || denied.message.includes("very-secret-value"));
  const region = translateAwsError(Object.assign(new Error("Credential should be scoped to a valid region, not 'xx-yy-1'."), { name: "InvalidSignatureException", $metadata: { httpStatusCode: 400 } }), "ListKeys", creds);
  t.is(region.kind, "INVALID_CONFIG");
  t.is(region.details.field, "region");
  t.is(scrub("a very-secret-value b", creds), "a [REDACTED] b");
});
