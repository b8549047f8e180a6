// Import-cycle and layer check (part of `npm run lint`, and run by test/unit/layers.test.ts).
// Layers (DESIGN.md, STYLE.md §2): cli → api → core → {hsm, cloud, store}; adapters (hsm, cloud, store) never import
// core, api or cli; core never imports @grpc/grpc-js or generated protos; only api/convert, api/* and cli touch
// protos/gen on the daemon side; the provider never reaches into daemon/src/{core,store,hsm,cloud}; process.env is
// read only by the configuration modules.
// Prints every violation and every cycle; exits 1 if there is any.
import { readFileSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const files = [];
const walk = (d) => {
  for (const n of readdirSync(d)) {
    const p = join(d, n);
    if (statSync(p).isDirectory()) walk(p);
    else if (p.endsWith(".ts")) files.push(p);
  }
};
for (const d of ["daemon/src", "provider/src"]) {
  try {
    walk(join(root, d));
  } catch {
    // folder not there yet
  }
}

const importRe = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;
const graph = new Map();
const problems = [];
const layerOf = (rel) => {
  const m = /^daemon\/src\/([^/]+)\//.exec(rel);
  return m ? m[1] : rel.startsWith("provider/src/") ? "provider" : undefined;
};
const rules = {
  core: { deny: ["api", "cli"], denyPkgs: ["@grpc/grpc-js"], denyGen: true },
  hsm: { deny: ["core", "api", "cli", "cloud", "store"] },
  store: { deny: ["core", "api", "cli", "hsm", "cloud"] },
  cloud: { deny: ["core", "api", "cli"] },
  pki: { deny: ["core", "api", "cli"] },
  api: { deny: ["cli"] },
  provider: { denyDaemon: ["core", "store", "hsm", "cloud"] },
};

const ENV_READERS = ["daemon/src/config/", "daemon/src/cli/client-config.ts", "provider/src/config.ts"];

for (const f of files) {
  const rel = relative(root, f);
  const text = readFileSync(f, "utf8");
  const deps = [];
  for (const m of text.matchAll(importRe)) {
    const spec = m[1] ?? m[2];
    const layer = layerOf(rel);
    const rule = rules[layer] ?? {};
    if (!spec.startsWith(".")) {
      if (rule.denyPkgs?.includes(spec)) problems.push(`${rel}: ${layer}/ must not import ${spec}`);
      continue;
    }
    const target = relative(root, resolve(dirname(f), spec.replace(/\.js$/, ".ts")));
    deps.push(target);
    const tl = layerOf(target);
    if (rule.deny?.includes(tl)) problems.push(`${rel}: ${layer}/ must not import ${tl}/ (${spec})`);
    if (rule.denyGen && target.startsWith("protos/gen/")) problems.push(`${rel}: ${layer}/ must not import generated protos (${spec})`);
    if (rule.denyDaemon && rule.denyDaemon.some((l) => target.startsWith(`daemon/src/${l}/`))) problems.push(`${rel}: the provider must not reach into ${target}`);
  }
  graph.set(rel, deps);
  // Configuration is read in one place per program (DESIGN.md): the daemon's config/, the CLI's client-config.ts
  // (flags, MCKO_* variables, the home's client file) and the provider's config.ts.
  if (/process\.env\b/.test(text) && !ENV_READERS.some((r) => rel === r || rel.startsWith(r))) {
    problems.push(`${rel}: reads process.env outside the configuration modules (${ENV_READERS.join(", ")})`);
  }
}

// Cycles: depth-first search with colours.
const colour = new Map();
const stack = [];
const cycles = [];
const visit = (n) => {
  colour.set(n, 1);
  stack.push(n);
  for (const d of graph.get(n) ?? []) {
    if (!graph.has(d)) continue;
    if (colour.get(d) === 1) cycles.push([...stack.slice(stack.indexOf(d)), d].join(" → "));
    else if (!colour.get(d)) visit(d);
  }
  stack.pop();
  colour.set(n, 2);
};
for (const n of graph.keys()) if (!colour.get(n)) visit(n);
for (const c of cycles) problems.push(`import cycle: ${c}`);

if (problems.length) {
  console.error(problems.join("\n"));
  console.error(`${problems.length} layer/cycle problem(s) in ${files.length} files`);
  process.exit(1);
}
console.log(`layers ok: ${files.length} files, no cycles`);
