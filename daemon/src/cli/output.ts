/** Output for people (aligned tables) and for scripts (`--output json`). */

export type OutputFormat = "table" | "json";

export function printTable(rows: ReadonlyArray<Record<string, string>>, columns: readonly string[], out: NodeJS.WritableStream = process.stdout): void {
  if (rows.length === 0) {
    out.write("(none)\n");
    return;
  }
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => (r[c] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd() + "\n";
  out.write(line(columns.map((c) => c.toUpperCase())));
  for (const r of rows) out.write(line(columns.map((c) => r[c] ?? "")));
}

export function printJson(value: unknown, out: NodeJS.WritableStream = process.stdout): void {
  out.write(JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : Buffer.isBuffer(v) ? v.toString("base64") : v), 2) + "\n");
}

export function printFields(fields: ReadonlyArray<[string, string]>, out: NodeJS.WritableStream = process.stdout): void {
  const w = Math.max(...fields.map(([k]) => k.length));
  for (const [k, v] of fields) out.write(`${k.padEnd(w)}  ${v}\n`);
}
