// Passes ava's TAP output through and ends it with the plain `N passed, N failed[, N skipped]` line CI reads.
// Exits 1 when a test failed or when no test ran.
import { createInterface } from "node:readline";

let passed = 0;
let failed = 0;
let skipped = 0;
for await (const line of createInterface({ input: process.stdin })) {
  process.stdout.write(line + "\n");
  const m = /^(not ok|ok) \d+/.exec(line);
  if (!m) continue;
  if (/# SKIP/i.test(line)) skipped++;
  else if (m[1] === "ok") passed++;
  else failed++;
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exitCode = failed > 0 || passed === 0 ? 1 : 0;
