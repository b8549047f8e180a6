/**
 * List filters: a conjunction of `field = value` terms joined by `AND` (AIP-160 subset). Values may be quoted.
 * Fields are checked against an allow-list per resource; errors name the `filter` field.
 */
import { InvalidArgumentError } from "./errors.js";

export interface FilterTerm {
  readonly field: string;
  readonly value: string;
}

export function parseFilter(filter: string, isAllowedField: (field: string) => boolean, fieldPath = "filter"): FilterTerm[] {
  const text = filter.trim();
  if (text === "") return [];
  if (text.length > 2048) throw new InvalidArgumentError([{ field: fieldPath, description: "must be at most 2048 characters" }]);
  const terms: FilterTerm[] = [];
  for (const part of text.split(/\s+AND\s+/)) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s"]+))\s*$/.exec(part);
    if (!m) {
      throw new InvalidArgumentError([
        { field: fieldPath, description: `cannot parse ${JSON.stringify(part.trim())}: expected terms like state = ACTIVE joined by AND` },
      ]);
    }
    const field = m[1]!;
    if (!isAllowedField(field)) throw new InvalidArgumentError([{ field: fieldPath, description: `unknown filter field ${JSON.stringify(field)}` }]);
    terms.push({ field, value: m[2] !== undefined ? m[2].replace(/\\(.)/g, "$1") : m[3]! });
  }
  return terms;
}
