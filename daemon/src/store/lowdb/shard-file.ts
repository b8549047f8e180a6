/**
 * One shard file, `shards/<n>.json`: a lowdb document holding the records whose key hashes to shard n, as of a
 * checkpoint. Format (one record per line, so a diff or a human can read it):
 *
 *   {"format":"mcko-store-shard/1","shard":7,"records":{
 *   "vaults/v1/keys/k1":{"version":3,"value":{...}},
 *   ...
 *   }}
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Low } from "lowdb";
import { StoreCorruptError } from "../store.js";
import type { StoredEntry } from "../memory/record-table.js";
import { DurableJsonFile } from "./durable-file.js";

export type ShardRecords = ReadonlyMap<string, StoredEntry>;

const FORMAT = "mcko-store-shard/1";
const SHARD_NAME = /^(\d{5})\.json$/;

export function shardPath(shardsDir: string, shard: number): string {
  return join(shardsDir, `${String(shard).padStart(5, "0")}.json`);
}

/** Shard numbers that have a file in `shardsDir`. */
export async function listShardFiles(shardsDir: string): Promise<number[]> {
  return (await readdir(shardsDir))
    .map((name) => SHARD_NAME.exec(name)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number);
}

/**
 * A lowdb handle on one shard file. Writing does not fsync the directory: a checkpoint writes many shards and
 * syncs the directory once, before it drops the WAL segments the shards replace.
 */
export function shardDb(shardsDir: string, shard: number, records: ShardRecords): Low<ShardRecords> {
  const path = shardPath(shardsDir, shard);
  const adapter = new DurableJsonFile<ShardRecords>(path, {
    syncDirectory: false,
    stringify: (data) => stringifyShard(shard, data),
    parse: (text) => parseShard(path, shard, text),
  });
  return new Low<ShardRecords>(adapter, records);
}

function stringifyShard(shard: number, records: ShardRecords): string {
  const lines: string[] = [];
  for (const [key, entry] of records) lines.push(`${JSON.stringify(key)}:{"version":${entry.version},"value":${entry.json}}`);
  return `{"format":"${FORMAT}","shard":${shard},"records":{\n${lines.join(",\n")}\n}}\n`;
}

function parseShard(path: string, shard: number, text: string): ShardRecords {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (error) {
    throw new StoreCorruptError(`shard file ${path} is not valid JSON`, { cause: error });
  }
  const d = doc as { format?: unknown; shard?: unknown; records?: unknown };
  if (d.format !== FORMAT || d.shard !== shard || typeof d.records !== "object" || d.records === null) {
    throw new StoreCorruptError(`shard file ${path} is not shard ${shard} in format ${FORMAT}`);
  }
  const records = new Map<string, StoredEntry>();
  for (const [key, raw] of Object.entries(d.records as Record<string, unknown>)) {
    const r = raw as { version?: unknown; value?: unknown } | null;
    if (r === null || typeof r !== "object" || !Number.isSafeInteger(r.version) || !("value" in r)) {
      throw new StoreCorruptError(`shard file ${path}: record ${JSON.stringify(key)} is malformed`);
    }
    records.set(key, { version: r.version as number, json: JSON.stringify(r.value) });
  }
  return records;
}
