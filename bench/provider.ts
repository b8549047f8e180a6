// `node --import=tsx bench/provider.ts`: the provider's start-to-handshake time (spawn → handshake line), the cost
// Terraform pays for each of the 3–4 provider processes of every command. Baseline in the same run: a bare node
// process that prints one line, so the ratio shows what the provider adds over Node's own start-up.
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { launchPlugin, MCKO_PROVIDER_BIN, measureStartToHandshake } from "../test/support/tf-plugin-launcher.js";

const RUNS = Number(process.env["BENCH_RUNS"] ?? 7);

async function bareNode(): Promise<number> {
  const t0 = performance.now();
  await new Promise<void>((res) => {
    const p = spawn(process.execPath, ["-e", "process.stdout.write('1\\n')"], { stdio: ["ignore", "pipe", "ignore"] });
    p.stdout.once("data", () => res());
  });
  return performance.now() - t0;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/**
 * One provider process ended the way Terraform ends it (GRPCController.Shutdown, exit 0): it builds the bundle if it
 * is stale and leaves the V8 code cache behind, as the first provider process of any Terraform command does.
 */
async function warmProvider(): Promise<void> {
  const p = await launchPlugin({ command: MCKO_PROVIDER_BIN });
  await p.call(p.controller, "shutdown", {});
  await p.exited;
  await p.close();
}

export async function benchProviderStartup(runs = RUNS): Promise<{ providerMs: number; nodeMs: number; load: number }> {
  await warmProvider();
  const load = loadavg()[0] ?? 0;
  const provider: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < runs; i++) {
    provider.push(await measureStartToHandshake({ command: MCKO_PROVIDER_BIN }));
    node.push(await bareNode());
  }
  return { providerMs: median(provider), nodeMs: median(node), load };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchProviderStartup();
  console.log(
    `provider start-to-handshake: median ${r.providerMs.toFixed(0)} ms over ${RUNS} runs ` +
      `(bare node start ${r.nodeMs.toFixed(0)} ms; ratio ${(r.providerMs / r.nodeMs).toFixed(1)}x)`,
  );
}

// ---------------------------------------------------------------------------------------------------------------
// `terraform plan` over 300 MCKO resources (a vault and 299 keys, each refreshed from the real daemon) against the
// same plan over 300 `terraform_data` resources (Terraform's built-in provider: no plugin process, no network), in
// the same run. Both configurations are applied first; then rounds of one plan each, interleaved, and the medians.
// The ratio is what the MCKO provider (Node start-up ×3 processes, 300 ValidateResourceConfig in the validate
// process, 300 UpgradeResourceState + ReadResource + ValidateResourceConfig + PlanResourceChange over gRPC in the
// plan process, the key reads from the daemon) costs over Terraform's own per-resource work. The machine is shared:
// the 1-minute load average is recorded at every plan.

export interface PlanBench {
  readonly resources: number;
  readonly mckoPlanMs: number;
  readonly terraformDataPlanMs: number;
  readonly ratio: number;
  /**
   * CPU time per plan (medians): terraform with the provider processes it ran, plus the daemon's for MCKO; less
   * sensitive than wall time to other work on a shared machine. Undefined without Linux /proc.
   */
  readonly cpu?: {
    readonly mckoMs: number;
    readonly terraformDataMs: number;
    readonly daemonMs: number;
    /** Of `mckoMs`: what the MCKO provider processes used (each reports its own at exit), and terraform alone. */
    readonly providerMs: number;
    readonly terraformOnlyMs: number;
    /**
     * The same plan over `resources` resources of the test suite's fixture provider (a trivial Node.js provider:
     * one small resource type kept in a JSON file, no daemon): wall time, terraform's own CPU and the provider's.
     * What terraform itself spends with a provider that does next to nothing.
     */
    readonly fixture: { readonly planMs: number; readonly terraformOnlyMs: number; readonly providerMs: number };
  };
  /** Each round's MCKO ÷ terraform_data, in order. */
  readonly roundRatios: readonly number[];
  /** The 1-minute load average at the start of each plan: lowest and highest. */
  readonly load: { readonly min: number; readonly max: number };
}

export async function benchPlan300(rounds = Number(process.env["BENCH_ROUNDS"] ?? 5), count = 300): Promise<PlanBench> {
  const { startAcc, PROVIDER_HEADER } = await import("../test/provider/acc-harness.js");
  const { makeWorkspace } = await import("../test/support/tf-terraform.js");
  const { TEST_PROVIDER_MAIN } = await import("../test/support/tf-plugin-launcher.js");
  const acc = await startAcc();
  // Each provider process appends its own CPU time at exit (a --require'd preload; the provider is not changed), so
  // terraform's own share of the MCKO plan's CPU can be told apart from the provider's.
  const probeDir = mkdtempSync(join(tmpdir(), "mcko-bench-cpu-"));
  const probe = join(probeDir, "cpu-at-exit.cjs");
  const cpuLog = join(probeDir, "provider-cpu.log");
  writeFileSync(
    probe,
    `const { appendFileSync } = require("node:fs");\nprocess.on("exit", () => { const c = process.cpuUsage(); appendFileSync(${JSON.stringify(cpuLog)}, ((c.user + c.system) / 1000) + "\\n"); });\n`,
  );
  let fixtureWs: { cleanup(): void } | undefined;
  try {
    const mcko = acc.workspace({ NODE_OPTIONS: `--require ${probe}` });
    const keys = Array.from(
      { length: count - 1 },
      (_, i) => `resource "mcko_key" "k${i}" {\n  vault     = mcko_vault.b.id\n  name      = "k${i}"\n  algorithm = "AES_256"\n  labels    = { n = "${i}" }\n}\n`,
    ).join("");
    mcko.writeConfig(`${PROVIDER_HEADER}\nresource "mcko_vault" "b" {\n  name = "bench"\n}\n${keys}`);
    const base = acc.workspace();
    base.writeConfig(Array.from({ length: count }, (_, i) => `resource "terraform_data" "d${i}" {\n  input = { name = "k${i}", n = "${i}" }\n}\n`).join(""));
    const fixture = makeWorkspace({ source: "example.com/mcko/tftest", type: "tftest", entry: TEST_PROVIDER_MAIN, env: { NODE_OPTIONS: `--require ${probe}` } });
    fixtureWs = fixture;
    fixture.writeConfig(
      `terraform {\n  required_providers {\n    tftest = { source = "example.com/mcko/tftest" }\n  }\n}\n` +
        `provider "tftest" {\n  store_path = ${JSON.stringify(join(fixture.dir, "store.json"))}\n}\n` +
        Array.from({ length: count }, (_, i) => `resource "tftest_thing" "t${i}" {\n  name = "k${i}"\n  tags = { n = "${i}" }\n}\n`).join(""),
    );
    for (const ws of [mcko, base, fixture]) {
      const r = await ws.run("apply", "-no-color", "-input=false", "-auto-approve");
      if (r.code !== 0) throw new Error(`bench setup apply failed:\n${r.stdout}\n${r.stderr}`);
    }
    const loads: number[] = [];
    const daemonPid = acc.daemon.child.pid;
    const providerCpu: number[] = [];
    const fixtureProviderCpu: number[] = [];
    const time = async (ws: typeof mcko, cpu: number[], daemonCpu: number[]): Promise<number> => {
      loads.push(loadavg()[0] ?? 0);
      writeFileSync(cpuLog, "");
      const c0 = reapedChildrenCpuMs();
      const d0 = daemonPid === undefined ? undefined : processCpuMs(daemonPid);
      const t0 = performance.now();
      const r = await ws.run("plan", "-no-color", "-input=false", "-detailed-exitcode");
      const ms = performance.now() - t0;
      if (r.code !== 0) throw new Error(`bench plan was not clean (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
      const c1 = reapedChildrenCpuMs();
      const d1 = daemonPid === undefined ? undefined : processCpuMs(daemonPid);
      if (c0 !== undefined && c1 !== undefined) cpu.push(c1 - c0);
      if (d0 !== undefined && d1 !== undefined) daemonCpu.push(d1 - d0);
      const providersCpu = readFileSync(cpuLog, "utf8").split("\n").filter(Boolean).reduce((sum, l) => sum + Number(l), 0);
      if (ws === mcko) providerCpu.push(providersCpu);
      if (ws === fixture) fixtureProviderCpu.push(providersCpu);
      return ms;
    };
    const a: number[] = [];
    const b: number[] = [];
    const aCpu: number[] = [];
    const bCpu: number[] = [];
    const dCpu: number[] = [];
    const f: number[] = [];
    const fCpu: number[] = [];
    for (let i = 0; i < rounds; i++) {
      a.push(await time(mcko, aCpu, dCpu));
      b.push(await time(base, bCpu, []));
      f.push(await time(fixture, fCpu, []));
    }
    const mckoPlanMs = median(a);
    const terraformDataPlanMs = median(b);
    for (const ws of [mcko, base]) await ws.run("destroy", "-no-color", "-input=false", "-auto-approve");
    return {
      resources: count,
      mckoPlanMs,
      terraformDataPlanMs,
      ratio: mckoPlanMs / terraformDataPlanMs,
      ...(aCpu.length === rounds && bCpu.length === rounds && fCpu.length === rounds
        ? {
            cpu: {
              mckoMs: median(aCpu),
              terraformDataMs: median(bCpu),
              daemonMs: dCpu.length === rounds ? median(dCpu) : 0,
              providerMs: median(providerCpu),
              terraformOnlyMs: median(aCpu.map((c, i) => c - (providerCpu[i] as number))),
              fixture: {
                planMs: median(f),
                terraformOnlyMs: median(fCpu.map((c, i) => c - (fixtureProviderCpu[i] as number))),
                providerMs: median(fixtureProviderCpu),
              },
            },
          }
        : {}),
      roundRatios: a.map((x, i) => x / (b[i] as number)),
      load: { min: Math.min(...loads), max: Math.max(...loads) },
    };
  } finally {
    await acc.close();
    fixtureWs?.cleanup();
    rmSync(probeDir, { recursive: true, force: true });
  }
}

// Linux /proc/<pid>/stat: utime and stime are fields 14 and 15, cutime and cstime (CPU of the children the process
// has waited for, and of theirs) 16 and 17, in clock ticks of 1/100 s. terraform waits for its provider processes,
// and this process for terraform, so this process's cutime+cstime grows by a plan's whole CPU.
function statFields(pid: number | "self"): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    return s.slice(s.lastIndexOf(")") + 2).split(" "); // [0] is field 3
  } catch {
    return undefined;
  }
}
function reapedChildrenCpuMs(): number | undefined {
  const f = statFields("self");
  return f ? (Number(f[13]) + Number(f[14])) * 10 : undefined;
}
function processCpuMs(pid: number): number | undefined {
  const f = statFields(pid);
  return f ? (Number(f[11]) + Number(f[12])) * 10 : undefined;
}

if (import.meta.url === `file://${process.argv[1]}` && process.argv.includes("--plan")) {
  const r = await benchPlan300();
  console.log(
    `terraform plan over ${r.resources} resources: MCKO ${r.mckoPlanMs.toFixed(0)} ms, terraform_data ${r.terraformDataPlanMs.toFixed(0)} ms ` +
      `(median; ratio ${r.ratio.toFixed(2)}x; rounds ${r.roundRatios.map((x) => x.toFixed(2)).join(", ")}; load ${r.load.min.toFixed(1)}–${r.load.max.toFixed(1)})`,
  );
}
