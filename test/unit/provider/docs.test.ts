// The provider docs (provider/docs/, registry layout) stay in step with the schema: every attribute of every
// resource, data source and the provider block is documented in its page, in the right section, and every
// documented attribute exists. Arguments say (Required)/(Optional), and force-new ones say so. Each resource page
// has an example using its type and an Import section; each example's HCL names only documented attributes.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import test from "ava";
import type { Attribute, Block } from "../../../provider/src/plugin/schema.js";
import { mckoProvider } from "../../../provider/src/provider.js";
import { REPO_ROOT } from "../../support/tf-plugin-launcher.js";

const DOCS = join(REPO_ROOT, "provider/docs");
const provider = mckoProvider({ env: {} });

interface Page {
  readonly sections: Map<string, { name: string; text: string }[]>;
  readonly text: string;
}

/** Bullets `- \`name\` - text` grouped by the heading above them ("Argument Reference", "Nested Schema for `x`"). */
function parsePage(file: string): Page {
  const text = readFileSync(file, "utf8");
  const sections = new Map<string, { name: string; text: string }[]>();
  let heading = "";
  let inCode = false;
  for (const line of text.split("\n")) {
    if (line.startsWith("```")) inCode = !inCode;
    if (inCode) continue;
    const h = /^#{2,3} (.*)$/.exec(line);
    if (h) {
      heading = h[1]!.trim();
      continue;
    }
    const b = /^- `([a-z0-9_]+)` - (.*)$/.exec(line);
    if (b) {
      const list = sections.get(heading) ?? [];
      list.push({ name: b[1]!, text: b[2]! });
      sections.set(heading, list);
    }
  }
  return { sections, text };
}

const names = (xs: { name: string }[] | undefined): string[] => (xs ?? []).map((x) => x.name).sort();
const isArgument = (a: Attribute): boolean => Boolean(a.required || a.optional);

function checkBlock(t: import("ava").ExecutionContext, page: Page, block: Block, where: string): void {
  const attrs = Object.entries(block.attributes);
  const args = page.sections.get("Argument Reference");
  t.deepEqual(names(args), attrs.filter(([, a]) => isArgument(a)).map(([n]) => n).sort(), `${where}: Argument Reference lists exactly the arguments`);
  t.deepEqual(
    names(page.sections.get("Attribute Reference")),
    attrs.filter(([, a]) => !isArgument(a)).map(([n]) => n).sort(),
    `${where}: Attribute Reference lists exactly the computed-only attributes`,
  );
  for (const b of args ?? []) {
    const a = block.attributes[b.name];
    if (!a) continue;
    t.true(b.text.startsWith(a.required ? "(Required" : "(Optional"), `${where}.${b.name}: says (Required) or (Optional)`);
    t.is(b.text.includes("Changing this forces a new resource"), Boolean(a.requiresReplace), `${where}.${b.name}: force-new is documented exactly when it applies`);
    if (a.sensitive) t.regex(b.text, /Sensitive/, `${where}.${b.name}: marked Sensitive`);
  }
  const nestedSections = [...page.sections.keys()].filter((h) => h.startsWith("Nested Schema for"));
  const expected: string[] = [];
  const walk = (prefix: string, as: Readonly<Record<string, Attribute>>): void => {
    for (const [n, a] of Object.entries(as)) {
      if (!a.nested) continue;
      const path = prefix ? `${prefix}.${n}` : n;
      expected.push(`Nested Schema for \`${path}\``);
      t.deepEqual(names(page.sections.get(`Nested Schema for \`${path}\``)), Object.keys(a.nested.attributes).sort(), `${where}: nested ${path}`);
      walk(path, a.nested.attributes);
    }
  };
  walk("", block.attributes);
  t.deepEqual(nestedSections.sort(), expected.sort(), `${where}: one nested section per nested attribute`);
}

/** Attribute names used in `resource|data "<type>" "x" { ... }` blocks of the page's HCL examples. */
function exampleAttributes(text: string, kind: "resource" | "data", type: string): string[][] {
  const out: string[][] = [];
  const re = new RegExp(`^${kind} "${type}" "[a-z0-9_]+" \\{\\n([\\s\\S]*?)^\\}`, "gm");
  for (const m of text.matchAll(re)) out.push([...m[1]!.matchAll(/^ {2}([a-z_]+)\s*=/gm)].map((x) => x[1]!));
  return out;
}

test("provider/docs/index.md documents every provider argument", (t) => {
  const page = parsePage(join(DOCS, "index.md"));
  checkBlock(t, page, provider.schema.block, "provider");
  t.regex(page.text, /## Example Usage/);
});

for (const r of provider.resources) {
  const file = join(DOCS, "resources", `${r.typeName.replace(/^mcko_/, "")}.md`);
  test(`${r.typeName}: resources page matches the schema`, (t) => {
    t.true(existsSync(file), `${file} exists`);
    const page = parsePage(file);
    checkBlock(t, page, r.schema.block, r.typeName);
    t.regex(page.text, new RegExp(`^# ${r.typeName} \\(Resource\\)`, "m"));
    t.regex(page.text, /## Import\n[\s\S]*terraform import /);
    const examples = exampleAttributes(page.text, "resource", r.typeName);
    t.true(examples.length > 0, "has an example");
    for (const used of examples) for (const n of used) t.true(n in r.schema.block.attributes, `example uses a real attribute: ${n}`);
  });
}

for (const d of provider.dataSources) {
  const file = join(DOCS, "data-sources", `${d.typeName.replace(/^mcko_/, "")}.md`);
  test(`${d.typeName}: data-sources page matches the schema`, (t) => {
    t.true(existsSync(file), `${file} exists`);
    const page = parsePage(file);
    checkBlock(t, page, d.schema.block, `data.${d.typeName}`);
    t.regex(page.text, new RegExp(`^# ${d.typeName} \\(Data Source\\)`, "m"));
    const examples = exampleAttributes(page.text, "data", d.typeName);
    t.true(examples.length > 0, "has an example");
    for (const used of examples) for (const n of used) t.true(n in d.schema.block.attributes, `example uses a real attribute: ${n}`);
  });
}

test("examples/terraform uses only documented types and attributes", (t) => {
  const text = readFileSync(join(REPO_ROOT, "examples/terraform/main.tf"), "utf8");
  for (const r of provider.resources) for (const used of exampleAttributes(text, "resource", r.typeName)) for (const n of used) t.true(n in r.schema.block.attributes, `${r.typeName}.${n}`);
  for (const d of provider.dataSources) {
    for (const used of exampleAttributes(text, "data", d.typeName)) for (const n of used) t.true(n in d.schema.block.attributes || n === "depends_on", `data.${d.typeName}.${n}`);
  }
  t.regex(text, /resource "mcko_key"/);
});
