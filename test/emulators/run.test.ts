/** The standalone launcher (`npm run emulators`): starts, serves both clouds, prints its endpoints, stops on SIGTERM. */
import test from "ava";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { KMSClient, ListKeysCommand } from "@aws-sdk/client-kms";
import { KeyClient } from "@azure/keyvault-keys";
import { adminFetch } from "./common/admin-http.js";

test("run.ts starts both emulators on the given ports, prints how to reach them, and exits 0 on SIGTERM", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "mcko-emu-run-"));
  const child = spawn(
    process.execPath,
    ["--import=tsx", "test/emulators/run.ts", "--only", "aws,azure", "--aws-port", "0", "--aws-admin-port", "0", "--azure-port", "0", "--azure-admin-port", "0", "--state-dir", stateDir],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    let readyLine: string | undefined;
    for await (const line of createInterface({ input: child.stdout })) {
      if (line.startsWith("MCKO_EMULATORS_READY ")) {
        readyLine = line;
        break;
      }
    }
    t.truthy(readyLine);
    const ready = JSON.parse((readyLine ?? "").slice("MCKO_EMULATORS_READY ".length)) as Record<string, Record<string, string>>;
    const aws = ready["aws-kms"] ?? {};
    const azure = ready["azure-keyvault"] ?? {};

    const kms = new KMSClient({
      endpoint: aws["endpoint"],
      region: aws["region"] ?? "",
      credentials: { accessKeyId: aws["accessKeyId"] ?? "", secretAccessKey: aws["secretAccessKey"] ?? "" },
      maxAttempts: 1,
    });
    t.deepEqual((await kms.send(new ListKeysCommand({}))).Keys, []);
    kms.destroy();
    const awsAdmin = (aws["admin"] ?? "").replace(/\/_emulator\/keys$/, "");
    t.deepEqual(await adminFetch(awsAdmin, "GET", "/keys"), []);

    const ca = readFileSync(azure["caCertPath"] ?? "", "utf8");
    const token = azure["token"] ?? "";
    const keys = new KeyClient(azure["endpoint"] ?? "", { getToken: async () => ({ token, expiresOnTimestamp: Date.now() + 3600e3 }) }, {
      disableChallengeResourceVerification: true,
      tlsOptions: { ca },
      retryOptions: { maxRetries: 0 },
    });
    const k = await keys.createKey("from-run", "oct-HSM");
    t.is(k.name, "from-run");
  } finally {
    child.kill("SIGTERM");
    t.is(await exited, 0);
    rmSync(stateDir, { recursive: true, force: true });
  }
});
