/**
 * The AWS connector takes the keystore's concurrency slot around each HTTP exchange (daemon/src/cloud/aws-kms/sdk.ts),
 * not around the SDK's whole send: the real SDK against the real emulator, over a real socket.
 */
import test from "ava";
import dc from "node:diagnostics_channel";
import { makeCallPolicy } from "../../../daemon/src/cloud/call-policy.js";
import { awsKmsFactory } from "../../../daemon/src/cloud/aws-kms/connector.js";
import { startAwsKmsEmulator } from "../../emulators/aws-kms/index.js";

test("the keystore's limit bounds the HTTP requests in flight at the cloud, and every request is sent inside a slot", async (t) => {
  const emu = await startAwsKmsEmulator();
  const base = makeCallPolicy({ maxConcurrency: 3, attemptTimeoutMs: 30_000, deadlineMs: 60_000 });
  let inSlot = 0;
  let slots = 0;
  const policy = {
    ...base,
    limit: <T>(fn: () => Promise<T>): Promise<T> =>
      base.limit(async () => {
        inSlot++;
        slots++;
        try {
          return await fn();
        } finally {
          inSlot--;
        }
      }),
  };
  let inFlight = 0;
  let peak = 0;
  let outsideSlot = 0;
  const mine = new WeakSet<object>();
  const onStart = ({ request }: { request: { host?: string; getHeader(n: string): unknown } }): void => {
    if (!String(request.getHeader("x-amz-target") ?? "").startsWith("TrentService.")) return;
    mine.add(request);
    inFlight++;
    peak = Math.max(peak, inFlight);
    if (inSlot === 0) outsideSlot++;
  };
  const onFinish = ({ request }: { request: object }): void => {
    if (mine.has(request)) inFlight--;
  };
  dc.subscribe("http.client.request.start", onStart as (m: unknown) => void);
  dc.subscribe("http.client.response.finish", onFinish as (m: unknown) => void);
  const connector = awsKmsFactory.create({ region: emu.region, endpoint: emu.endpoint }, { access_key_id: emu.accessKeyId, secret_access_key: emu.secretAccessKey }, policy);
  try {
    emu.admin.setFaults({ latencyMs: 40 });
    await Promise.all(Array.from({ length: 12 }, () => connector.testConnection()));
    const calls = emu.admin.calls().filter((c) => c.operation === "ListKeys").length;
    t.is(calls, 12);
    t.is(slots, 12, "one slot per HTTP request");
    t.is(peak, 3, "never more requests in flight than the limit, and the limit is used");
    t.is(outsideSlot, 0);
  } finally {
    dc.unsubscribe("http.client.request.start", onStart as (m: unknown) => void);
    dc.unsubscribe("http.client.response.finish", onFinish as (m: unknown) => void);
    connector.close();
    await emu.close();
  }
});
