// `node --import=tsx bench/provider.ts`: the provider's start-to-handshake time (spawn → handshake line), the cost
// Terraform pays for each of the 3–4 provider processes of every command. Baseline in the same run: a bare node
// process that prints one line, so the ratio shows what the provider adds over Node's own start-up.
import { spawn } from "node:child_process";
import { MCKO_PROVIDER_BIN, measureStartToHandshake } from "../test/support/tf-plugin-launcher.js";

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

export async function benchProviderStartup(runs = RUNS): Promise<{ providerMs: number; nodeMs: number }> {
  await measureStartToHandshake({ command: MCKO_PROVIDER_BIN }); // warm the tsx cache
  const provider: number[] = [];
  const node: number[] = [];
  for (let i = 0; i < runs; i++) {
    provider.push(await measureStartToHandshake({ command: MCKO_PROVIDER_BIN }));
    node.push(await bareNode());
  }
  return { providerMs: median(provider), nodeMs: median(node) };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const r = await benchProviderStartup();
  console.log(
    `provider start-to-handshake: median ${r.providerMs.toFixed(0)} ms over ${RUNS} runs ` +
      `(bare node start ${r.nodeMs.toFixed(0)} ms; ratio ${(r.providerMs / r.nodeMs).toFixed(1)}x)`,
  );
}
