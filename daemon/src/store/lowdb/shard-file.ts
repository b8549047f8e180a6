/**
 * One shard file, `shards/<n>.json`: a lowdb document holding the records whose key hashes to shard n, as of a
 * checkpoint. It is plain JSON, one record per line, with a CRC-32 of the record lines in the first line:
 *
 *   {"format":"mcko-store-shard/1","shard":7,"count":2,"crc32":"89abcdef","records":{
 *   "vaults/v1/keys/k1":{"version":3,"value":{...}},
 *   "vaults/v1/keys/k2":{"version":1,"value":{...}}
 *   }}
 *
 * Reading relies on that exact layout (only this module writes it) instead of a full JSON.parse: each value is
 * sliced out of its line as text, which is what memory holds anyway. That is what keeps a cold open of 100,000
 * records fast; the checksum stands in for the validation a full parse would have done.
 */
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { crc32 } from "node:zlib";
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

const RECORD_MARK = '":{"version":';
const VALUE_MARK = ',"value":';

function stringifyShard(shard: number, records: ShardRecords): string {
  const lines: string[] = [];
  for (const [key, entry] of records) lines.push(`${JSON.stringify(key)}:{"version":${entry.version},"value":${entry.json}}`);
  const body = lines.join(",\n");
  const crc = crc32(body).toString(16).padStart(8, "0");
  return `{"format":"${FORMAT}","shard":${shard},"count":${lines.length},"crc32":"${crc}","records":{\n${body}\n}}\n`;
}

function parseShard(path: string, shard: number, text: string): ShardRecords {
  const corrupt = (why: string) => new StoreCorruptError(`shard file ${path} is damaged: ${why}`);
  const headerEnd = text.indexOf("\n");
  const header = /^\{"format":"([^"]*)","shard":(\d+),"count":(\d+),"crc32":"([0-9a-f]{8})","records":\{$/.exec(
    text.slice(0, headerEnd),
  );
  if (header === null || header[1] !== FORMAT || Number(header[2]) !== shard) throw corrupt(`not shard ${shard} in format ${FORMAT}`);
  const count = Number(header[3]);
  const trailer = "\n}}\n";
  if (!text.endsWith(trailer)) throw corrupt("truncated");
  const body = text.slice(headerEnd + 1, text.length - trailer.length);
  if (crc32(body).toString(16).padStart(8, "0") !== header[4]) throw corrupt("checksum mismatch");
  const records = new Map<string, StoredEntry>();
  if (count === 0) return records;
  const lines = body.split(",\n");
  if (lines.length !== count) throw corrupt(`${lines.length} records where ${count} were written`);
  for (const line of lines) {
    // A quote inside the key's JSON text is always escaped, so the first RECORD_MARK ends the key.
    const keyEnd = line.indexOf(RECORD_MARK);
    const valueMark = line.indexOf(VALUE_MARK, keyEnd + RECORD_MARK.length);
    if (keyEnd < 0 || valueMark < 0 || !line.endsWith("}")) throw corrupt("malformed record line");
    const keyText = line.slice(0, keyEnd + 1);
    const key = keyText.includes("\\") ? (JSON.parse(keyText) as string) : keyText.slice(1, -1);
    const version = Number(line.slice(keyEnd + RECORD_MARK.length, valueMark));
    if (!Number.isSafeInteger(version) || version < 1) throw corrupt(`record ${keyText} has a bad version`);
    records.set(key, { version, json: line.slice(valueMark + VALUE_MARK.length, -1) });
  }
  return records;
}
