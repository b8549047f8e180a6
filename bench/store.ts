/**
 * Store benchmark: what one durable commit costs as the vault grows, how long a cold open takes and how much
 * memory it needs, and how many durable commits per second 16 concurrent committers get.
 *
 *   node --import=tsx bench/store.ts [--large 100000] [--small 1000] [--samples 1500]
 *
 * Commits look like CreateKey: one new key record (about 700 bytes of JSON) with expectVersion 0 and one journal
 * entry, through the SHA-256 test sealer. The interesting numbers are ratios measured in the same run:
 * p50(large) / p50(small) (goal <= 1.5), cold open of the large store (goal <= 3 s, RSS <= 500 MB).
 */
import { spawn } from "node:child_process";
import { cp, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { LowdbStore } from "../daemon/src/store/lowdb/lowdb-store.js";
import type { JsonValue } from "../daemon/src/store/store.js";
import { sha256Sealer } from "../test/support/store-sealer.js";

export interface StoreBenchOptions {
  readonly smallRecords?: number;
  readonly largeRecords?: number;
  /** Sequential commits timed per store size. */
  readonly samples?: number;
  /** How long the concurrent phase runs, in milliseconds. */
  readonly concurrentMs?: number;
  readonly shardCount?: number;
  readonly log?: (line: string) => void;
}

export interface CommitLatency {
  readonly records: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
}

export interface ColdOpen {
  readonly openMs: number;
  readonly rssMb: number;
  readonly walMb: number;
}

export interface StoreBenchResult {
  readonly small: CommitLatency;
  readonly large: CommitLatency;
  /** p50(large) / p50(small). */
  readonly latencyRatio: number;
  /** After close (a final checkpoint): shards only. */
  readonly coldOpen: ColdOpen;
  /** After a crash with the WAL just under the checkpoint threshold (a quarter of the data): the worst case. */
  readonly coldOpenAfterCrash: ColdOpen;
  /** A full checkpoint of the large store. */
  readonly fullCheckpointMs: number;
  /** Durable CreateKey-like commits per second with 16 concurrent committers, small and large store. */
  readonly concurrentSmallPerSec: number;
  readonly concurrentLargePerSec: number;
}

const CONCURRENCY = 16;
const PRELOAD_BATCH = 1000;

/** About 700 bytes of JSON, shaped like a vault key record. */
function keyRecord(i: number): JsonValue {
  return {
    name: `vaults/bench/keys/key-${i}`,
    algorithm: "AES_256",
    state: "ACTIVE",
    primaryVersion: 1,
    versions: [
      {
        number: 1,
        kcv: (i * 2654435761).toString(16).padStart(6, "0").slice(-6),
        wrapped: Buffer.alloc(40, i % 251).toString("base64"),
        masterKcv: "a1b2c3",
        createTime: "2026-12-03T18:00:00.000Z",
      },
    ],
    rotationPeriodSeconds: 7776000,
    labels: { team: `team-${i % 17}`, env: i % 2 === 0 ? "prod" : "dev", costCenter: `cc-${i % 101}` },
    activationTime: "2026-12-03T18:00:00.000Z",
    etag: `W/"${i.toString(36)}-1"`,
    createTime: "2026-12-03T18:00:00.000Z",
    updateTime: "2026-12-03T18:00:00.000Z",
    description: "benchmark key record with a realistic amount of metadata around a wrapped AES-256 key",
  };
}

function createKey(store: LowdbStore, i: number): Promise<unknown> {
  return store.commit({
    mutations: [{ op: "put", key: `vaults/bench/keys/key-${i}`, value: keyRecord(i), expectVersion: 0 }],
    journal: [{ method: "CreateKey", resource: `vaults/bench/keys/key-${i}`, principal: "CN=bench", result: "OK" }],
  });
}

async function preload(store: LowdbStore, records: number): Promise<void> {
  for (let start = 0; start < records; start += PRELOAD_BATCH) {
    const end = Math.min(records, start + PRELOAD_BATCH);
    const ids = Array.from({ length: end - start }, (_, j) => start + j);
    await store.commit({
      mutations: ids.map((i) => ({ op: "put", key: `vaults/bench/keys/key-${i}`, value: keyRecord(i), expectVersion: 0 })),
      journal: ids.map((i) => ({ method: "CreateKey", resource: `vaults/bench/keys/key-${i}`, principal: "CN=bench", result: "OK" })),
    });
  }
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? Number.NaN;
}

/**
 * Times `samples` commits on each store, alternating between them, so both see the same background load (the
 * machines are shared; a sequential A-then-B run mostly measures the neighbours).
 */
async function timeAlternating(
  stores: readonly { store: LowdbStore; records: number; from: number }[],
  samples: number,
): Promise<CommitLatency[]> {
  for (const s of stores) for (let i = 0; i < 50; i++) await createKey(s.store, s.from + samples + i); // warm-up
  const ms = stores.map((): number[] => []);
  for (let i = 0; i < samples; i++) {
    for (const [j, s] of stores.entries()) {
      const t0 = performance.now();
      await createKey(s.store, s.from + i);
      ms[j]!.push(performance.now() - t0);
    }
  }
  return stores.map((s, j) => {
    const sorted = ms[j]!.sort((a, b) => a - b);
    return { records: s.records, p50Ms: percentile(sorted, 0.5), p90Ms: percentile(sorted, 0.9), p99Ms: percentile(sorted, 0.99) };
  });
}

/** Commits per second with CONCURRENCY committers, in alternating windows per store (same reason as above). */
async function timeConcurrent(stores: readonly { store: LowdbStore; from: number }[], durationMs: number): Promise<number[]> {
  const windows = 6;
  const done = stores.map(() => 0);
  const elapsed = stores.map(() => 0);
  const next = stores.map((s) => s.from);
  for (let w = 0; w < windows; w++) {
    for (const [j, s] of stores.entries()) {
      const t0 = performance.now();
      const until = t0 + durationMs / windows;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (performance.now() < until) {
            await createKey(s.store, next[j]!++);
            done[j]!++;
          }
        }),
      );
      // A checkpoint the window started is part of its cost, and must not run into the other store's window.
      await s.store.idle();
      elapsed[j]! += performance.now() - t0;
    }
  }
  return done.map((n, j) => n / (elapsed[j]! / 1000));
}

/** Opens the store in a fresh process, so RSS is the store's own plus Node's baseline. */
async function coldOpen(dir: string): Promise<ColdOpen> {
  const self = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, ["--import=tsx", self, "--cold-open", dir], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`cold-open child failed (${code})`);
  return JSON.parse(out) as ColdOpen;
}

async function coldOpenChild(dir: string): Promise<void> {
  const t0 = performance.now();
  const store = await LowdbStore.open({ dir, sealer: sha256Sealer });
  const openMs = performance.now() - t0;
  const result: ColdOpen = {
    openMs,
    rssMb: process.memoryUsage().rss / 2 ** 20,
    walMb: store.stats().walBytes / 2 ** 20,
  };
  process.stdout.write(JSON.stringify(result));
  // No close: a close would checkpoint, which is not part of opening.
  process.exit(0);
}

export async function benchStore(options: StoreBenchOptions = {}): Promise<StoreBenchResult> {
  const smallRecords = options.smallRecords ?? 1000;
  const largeRecords = options.largeRecords ?? 100_000;
  const samples = options.samples ?? 1500;
  const concurrentMs = options.concurrentMs ?? 3000;
  const log = options.log ?? ((line: string) => console.log(line));
  const root = await mkdtemp(join(tmpdir(), "mcko-bench-store-"));
  try {
    const open = (dir: string) =>
      LowdbStore.open({ dir, sealer: sha256Sealer, ...(options.shardCount === undefined ? {} : { shardCount: options.shardCount }) });

    const smallDir = join(root, "small");
    const small = await open(smallDir);
    await preload(small, smallRecords);
    await small.checkpoint();
    const largeDir = join(root, "large");
    const large = await open(largeDir);
    let t0 = performance.now();
    await preload(large, largeRecords);
    log(`preloaded ${largeRecords} records in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    t0 = performance.now();
    await large.checkpoint();
    log(`checkpoint after preload: ${(performance.now() - t0).toFixed(0)} ms`);

    const [smallLatency, largeLatency] = (await timeAlternating(
      [
        { store: small, records: smallRecords, from: smallRecords },
        { store: large, records: largeRecords, from: largeRecords },
      ],
      samples,
    )) as [CommitLatency, CommitLatency];
    for (const l of [smallLatency, largeLatency]) {
      log(`commit p50 with ${l.records} records: ${l.p50Ms.toFixed(3)} ms (p90 ${l.p90Ms.toFixed(3)}, p99 ${l.p99Ms.toFixed(3)})`);
    }
    const [concurrentSmallPerSec, concurrentLargePerSec] = (await timeConcurrent(
      [
        { store: small, from: 10_000_000 },
        { store: large, from: 20_000_000 },
      ],
      2 * concurrentMs,
    )) as [number, number];
    log(`16 concurrent committers: ${concurrentSmallPerSec.toFixed(0)} commits/s with ${smallRecords} records, ${concurrentLargePerSec.toFixed(0)} with ${largeRecords}`);
    await small.close();

    // A full checkpoint: every shard rewritten (an update of every key forces that).
    t0 = performance.now();
    await large.checkpoint();
    const fullCheckpointMs = performance.now() - t0;
    log(`checkpoint of the large store (${large.stats().records} records): ${fullCheckpointMs.toFixed(0)} ms`);

    // Worst case for a crash: WAL grown to just under the checkpoint threshold (a quarter of the data), and no
    // checkpoint running while the directory is copied.
    const walTarget = 0.95 * large.stats().checkpointThresholdBytes;
    for (let i = 0; large.stats().walBytes < walTarget; i += PRELOAD_BATCH) {
      const ids = Array.from({ length: PRELOAD_BATCH }, (_, j) => (i + j) % largeRecords);
      await large.commit({ mutations: ids.map((k) => ({ op: "put", key: `vaults/bench/keys/key-${k}`, value: keyRecord(k + 1) })) });
    }
    const crashDir = join(root, "crash");
    await cp(largeDir, crashDir, { recursive: true });
    // The copied lock names this (running) process; after a real crash its owner would be gone.
    await rm(join(crashDir, "store.lock"));
    await large.close();

    const coldClean = await coldOpen(largeDir);
    log(`cold open of ${largeRecords} records after close: ${coldClean.openMs.toFixed(0)} ms, RSS ${coldClean.rssMb.toFixed(0)} MB`);
    const coldCrash = await coldOpen(crashDir);
    log(
      `cold open after a crash with ${coldCrash.walMb.toFixed(1)} MB of WAL: ${coldCrash.openMs.toFixed(0)} ms, RSS ${coldCrash.rssMb.toFixed(0)} MB`,
    );
    const latencyRatio = largeLatency.p50Ms / smallLatency.p50Ms;
    log(`ratio p50(${largeRecords}) / p50(${smallRecords}) = ${latencyRatio.toFixed(2)} (goal <= 1.5)`);
    return {
      small: smallLatency,
      large: largeLatency,
      latencyRatio,
      coldOpen: coldClean,
      coldOpenAfterCrash: coldCrash,
      fullCheckpointMs,
      concurrentSmallPerSec,
      concurrentLargePerSec,
    };
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

function argValue(name: string): number | undefined {
  const i = process.argv.indexOf(name);
  const value = i < 0 ? undefined : Number(process.argv[i + 1]);
  return value === undefined || Number.isNaN(value) ? undefined : value;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const coldDir = process.argv.indexOf("--cold-open");
  if (coldDir >= 0) {
    await coldOpenChild(process.argv[coldDir + 1]!);
  } else {
    const shardCount = argValue("--shards");
    const smallRecords = argValue("--small");
    const largeRecords = argValue("--large");
    const samples = argValue("--samples");
    const result = await benchStore({
      ...(shardCount === undefined ? {} : { shardCount }),
      ...(smallRecords === undefined ? {} : { smallRecords }),
      ...(largeRecords === undefined ? {} : { largeRecords }),
      ...(samples === undefined ? {} : { samples }),
    });
    console.log(JSON.stringify(result, null, 2));
  }
}
