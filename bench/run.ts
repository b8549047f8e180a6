/**
 * `npm run bench`: every benchmark, measured in one run, each printed as a ratio against a baseline measured in the
 * same run (the machine's speed cancels out). Goals come from the issues; a line says `ok` or `MISSED`.
 * `npm run bench -- --only daemon,hsm` runs a subset (groups: daemon, store, hsm, provider, distribute); `--quick` uses small sizes (for a smoke run, not for figures).
 */
import { benchDaemon } from "./daemon.js";
import { benchDistribute } from "./distribute.js";
import { benchHsm } from "./hsm.js";
import { benchPlan300, benchProviderStartup } from "./provider.js";
import { benchStore } from "./store.js";

const args = process.argv.slice(2);
const only = args.find((a) => a.startsWith("--only="))?.slice(7).split(",") ?? (args.includes("--only") ? args[args.indexOf("--only") + 1]!.split(",") : undefined);
const quick = args.includes("--quick");
const want = (name: string) => !only || only.includes(name);
const lines: string[] = [];

function report(name: string, value: number, goal: string, ok: boolean | undefined, detail: string): void {
  const line = `${name.padEnd(58)} ${value.toFixed(2).padStart(8)}   goal ${goal.padEnd(7)} ${ok === undefined ? "" : ok ? "ok" : "MISSED"}   ${detail}`;
  lines.push(line);
  console.log(line);
}

console.log(`MCKO benchmarks (${quick ? "quick" : "full"}) on ${new Date().toISOString()}, node ${process.version}`);

if (want("daemon")) {
  const d = await benchDaemon(quick ? { seconds: 2, rounds: 1, largeKeys: 5_000, smallKeys: 500, samples: 100 } : {});
  report("(a) durable CreateKey/s (16 clients) / mTLS echo calls/s", d.throughputRatio, ">= 0.5", d.throughputRatio >= 0.5, `median of rounds ${d.roundRatios.map((x) => x.toFixed(2)).join(", ")}: ${d.createKeysPerSec.toFixed(0)} / ${d.echoCallsPerSec.toFixed(0)} per s; CPU per call: daemon ${d.daemonCpuUs.toFixed(0)} µs, echo server ${d.echoServerCpuUs.toFixed(0)} µs, client ${d.createKeyClientCpuUs.toFixed(0)} / ${d.echoClientCpuUs.toFixed(0)} µs`);
  const sep = d.separate;
  report("    same with a connection per client (info)", sep.ratio, "(info)", undefined, `${sep.createKey.callsPerSec.toFixed(0)} / ${sep.echo.callsPerSec.toFixed(0)} per s; CPU per call: daemon ${sep.createKey.serverCpuUsPerCall.toFixed(0)} µs, echo server ${sep.echo.serverCpuUsPerCall.toFixed(0)} µs, client ${sep.createKey.clientCpuUsPerCall.toFixed(0)} / ${sep.echo.clientCpuUsPerCall.toFixed(0)} µs`);
  report(`(b) CreateKey p50 with ${d.largeKeys} keys / with 1,000`, d.p50Ratio, "<= 1.5", d.p50Ratio <= 1.5, `${d.p50LargeMs.toFixed(2)} ms / ${d.p50SmallMs.toFixed(2)} ms`);
  report(`(c) cold start with ${d.largeKeys} keys, seconds`, d.coldStartMs / 1000, "<= 3", d.coldStartMs <= 3000, "spawn to serving");
  report(`(c) daemon RSS with ${d.largeKeys} keys, MB`, d.rssMb, "<= 500", d.rssMb <= 500, "after the p50 run");
}
if (want("store")) {
  const s = await benchStore(quick ? { smallRecords: 500, largeRecords: 5_000, samples: 100 } : {});
  report("store commit p50 with 100k records / with 1k", s.latencyRatio, "<= 1.5", s.latencyRatio <= 1.5, `${s.large.p50Ms.toFixed(3)} ms / ${s.small.p50Ms.toFixed(3)} ms`);
}
if (want("hsm")) {
  const h = await benchHsm(quick ? { operations: 500, rounds: 1 } : {});
  report("pkcs11 CreateKey/s / software CreateKey/s", h.createKeyRatio, "(info)", undefined, `${h.pkcs11CreateKeyPerSecond.toFixed(0)} / ${h.softwareCreateKeyPerSecond.toFixed(0)} per s`);
  report("pkcs11 BYOK re-wrap ops/s / bare C_WrapKey loop", h.byokRatio, ">= 0.7", h.byokRatio >= 0.7, `${h.byokRewrapPerSecond.toFixed(0)} / ${h.bareWrapPerSecond.toFixed(0)} per s`);
  report("pkcs11 BYOK re-wrap / bare C_UnwrapKey+C_WrapKey loop", h.byokRatioLikeForLike, "(info)", undefined, `${h.byokRewrapPerSecond.toFixed(0)} / ${h.bareUnwrapWrapPerSecond.toFixed(0)} per s`);
}
if (want("provider")) {
  const p = await benchProviderStartup(quick ? 3 : undefined);
  report("provider start-to-handshake, ms / bare node start, ms", p.providerMs / p.nodeMs, "(info)", undefined, `${p.providerMs.toFixed(0)} ms / ${p.nodeMs.toFixed(0)} ms (medians; load ${p.load.toFixed(1)})`);
  const plan = await benchPlan300(quick ? 1 : undefined, quick ? 30 : 300);
  report(
    `terraform plan over ${plan.resources} MCKO resources / over ${plan.resources} terraform_data`,
    plan.ratio,
    "<= 2.0",
    plan.ratio <= 2,
    `${plan.mckoPlanMs.toFixed(0)} ms / ${plan.terraformDataPlanMs.toFixed(0)} ms (medians; rounds ${plan.roundRatios.map((x) => x.toFixed(2)).join(", ")}; load ${plan.load.min.toFixed(1)}–${plan.load.max.toFixed(1)})`,
  );
  if (plan.cpu) {
    const c = plan.cpu;
    report(
      `  same plans, CPU: terraform+provider+daemon / terraform`,
      (c.mckoMs + c.daemonMs) / c.terraformDataMs,
      "(info)",
      undefined,
      `(${c.mckoMs.toFixed(0)} + daemon ${c.daemonMs.toFixed(0)}) ms / ${c.terraformDataMs.toFixed(0)} ms (medians)`,
    );
    report(
      `  terraform's own CPU in the MCKO plan / the terraform plan`,
      c.terraformOnlyMs / c.terraformDataMs,
      "(info)",
      undefined,
      `${c.terraformOnlyMs.toFixed(0)} ms / ${c.terraformDataMs.toFixed(0)} ms; the provider processes used ${c.providerMs.toFixed(0)} ms. Run as parallel as the terraform_data plan, terraform's own work alone takes this multiple of that plan's wall time, before any provider work`,
    );
    report(
      `  same, with a trivial Node.js fixture provider instead`,
      c.fixture.terraformOnlyMs / c.terraformDataMs,
      "(info)",
      undefined,
      `${c.fixture.terraformOnlyMs.toFixed(0)} ms / ${c.terraformDataMs.toFixed(0)} ms; its plan took ${c.fixture.planMs.toFixed(0)} ms (${(c.fixture.planMs / plan.terraformDataPlanMs).toFixed(2)} × terraform_data), its provider processes ${c.fixture.providerMs.toFixed(0)} ms of CPU`,
    );
    // Terraform runs three provider processes one after the other (schema, validate, plan), each waited for.
    const starts = (3 * p.nodeMs) / plan.terraformDataPlanMs;
    const floor = c.fixture.terraformOnlyMs / c.terraformDataMs + starts;
    report(
      `  floor of the plan ratio for any Node.js provider`,
      floor,
      "(info)",
      undefined,
      `terraform's own work with the fixture provider at the terraform_data plan's parallelism (${(c.fixture.terraformOnlyMs / c.terraformDataMs).toFixed(2)}) + three bare node starts (3 × ${p.nodeMs.toFixed(0)} ms = ${starts.toFixed(2)} × ${plan.terraformDataPlanMs.toFixed(0)} ms), before any provider work`,
    );
  }
}
if (want("distribute")) {
  const d = await benchDistribute(quick ? { keys: 100 } : {});
  report(`distribute ${d.keys} keys to AWS (${d.latencyMs} ms/call): wall / ideal`, d.ratio, "<= 1.25", d.ratio <= 1.25, `${(d.wallMs / 1000).toFixed(1)} s / (${d.cloudCalls} calls × ${d.latencyMs} ms ÷ ${d.concurrencyLimit}) = ${(d.idealMs / 1000).toFixed(1)} s`);
  console.log(`  cloud calls: ${Object.entries(d.callsByOperation).map(([op, n]) => `${op} ${n}`).join(", ")}`);
}

const missed = lines.filter((l) => l.includes("MISSED")).length;
console.log(missed ? `\n${missed} goal(s) missed` : "\nall goals met");
