// The generated CDKTF bindings (provider/cdktf, `npm run gen:cdktf`) are what the generators make from today's
// schema (regenerated from scratch into a temp folder, with no terraform on PATH, and compared), carry the DO-NOT-EDIT header, cover every
// resource and data source, and compile with the examples under the project's compiler options. Both example apps
// synthesize, without terraform, the same configuration, which names only schema attributes.
import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative } from "node:path";
import { promisify } from "node:util";
import test from "ava";
import { mckoProvider } from "../../../provider/src/provider.js";
import { REPO } from "../../support/daemon.js";

const run = promisify(execFile);
const GENERATED = join(REPO, "provider/cdktf");
const LIBRARIES = ["cdktf", "cdktn"] as const;
const provider = mckoProvider({ env: {} });

function tree(dir: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (d: string): void => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      if (statSync(p).isDirectory()) walk(p);
      else out.set(relative(dir, p), readFileSync(p));
    }
  };
  walk(dir);
  return out;
}

/** The environment without the daemon's settings and without any PATH directory holding a `terraform`: none is needed. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith("MCKO_") || k.startsWith("CDKTF_") || k === "NODE_OPTIONS") delete env[k];
  const path = (env["PATH"] ?? "").split(":").filter((d) => d !== "" && !existsSync(join(d, "terraform")));
  return { ...env, PATH: path.join(":"), CHECKPOINT_DISABLE: "1", ...extra };
}

test("regenerating provider/cdktf from the schema gives exactly the committed files", async (t) => {
  t.timeout(120_000);
  const base = mkdtempSync(join(tmpdir(), "mcko-gen-cdktf-"));
  try {
    await run(process.execPath, [join(REPO, ".ci/gen-cdktf.mjs"), base], { cwd: REPO, env: cleanEnv() });
    const fresh = tree(join(base, "provider/cdktf"));
    const committed = tree(GENERATED);
    t.deepEqual([...committed.keys()].sort(), [...fresh.keys()].sort(), "the same files");
    const differing = [...fresh.keys()].filter((k) => !fresh.get(k)!.equals(committed.get(k) ?? Buffer.alloc(0)));
    t.deepEqual(differing, [], "run `npm run gen:cdktf` and commit the result");
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
});

test("every generated file says DO NOT EDIT; each library's bindings have one class per resource and data source", (t) => {
  const files = tree(GENERATED);
  t.true(files.size > 10);
  for (const [name, content] of files) t.regex(content.toString("utf8").split("\n")[0]!, /DO NOT EDIT/, `${name}: first line`);
  for (const lib of LIBRARIES) {
    const classes = { resource: new Set<string>(), data: new Set<string>(), provider: new Set<string>() };
    for (const [name, content] of files) {
      if (!name.startsWith(`${lib}/`)) continue;
      const text = content.toString("utf8");
      const other = lib === "cdktf" ? "cdktn" : "cdktf";
      t.false(text.includes(`from '${other}'`), `${name} does not import ${other}`);
      for (const m of text.matchAll(/export class \w+ extends (\w+)\.(TerraformResource|TerraformDataSource|TerraformProvider) \{\n[\s\S]*?tfResourceType = "([a-z_]+)"/g)) {
        t.is(m[1], lib, `${name}: base class from ${lib}`);
        classes[m[2] === "TerraformResource" ? "resource" : m[2] === "TerraformDataSource" ? "data" : "provider"].add(m[3]!);
      }
    }
    t.deepEqual([...classes.resource].sort(), provider.resources.map((r) => r.typeName).sort(), `${lib}: resources`);
    t.deepEqual([...classes.data].sort(), provider.dataSources.map((d) => d.typeName).sort(), `${lib}: data sources`);
    t.deepEqual([...classes.provider], ["mcko"], `${lib}: provider`);
  }
});

test("the bindings and the example apps compile under the project's compiler options (tsc --noEmit)", async (t) => {
  t.timeout(180_000);
  const dir = mkdtempSync(join(tmpdir(), "mcko-tsc-cdktf-"));
  try {
    // The project's tsconfig, restricted to the generated bindings and the CDKTF examples (the full tree is checked by repo-checks).
    const config = join(dir, "tsconfig.json");
    writeFileSync(
      config,
      JSON.stringify({
        extends: join(REPO, "tsconfig.json"),
        compilerOptions: { typeRoots: [join(REPO, "node_modules/@types")] },
        include: [join(REPO, "provider/cdktf/**/*.ts"), join(REPO, "examples/cdktf/**/*.ts")],
      }),
    );
    const r = await run(process.execPath, [join(REPO, "node_modules/typescript/bin/tsc"), "-p", config, "--noEmit", "--listFilesOnly"], { cwd: REPO });
    const listed = r.stdout.split("\n").filter((f) => f.startsWith(GENERATED) || f.startsWith(join(REPO, "examples/cdktf")));
    t.true(listed.length >= 20, `the bindings of both libraries and both apps are in the program (${listed.length} files)`);
    const tsc = await run(process.execPath, [join(REPO, "node_modules/typescript/bin/tsc"), "-p", config, "--noEmit"], { cwd: REPO }).catch((e: { stdout: string }) => e);
    t.is(tsc.stdout.trim(), "");
    const project = JSON.parse(readFileSync(join(REPO, "tsconfig.json"), "utf8")) as { include: string[]; exclude?: string[] };
    t.true(project.include.includes("provider/cdktf/**/*.ts") && project.include.includes("examples/**/*.ts"), "`tsc -p .` covers them too");
    t.false((project.exclude ?? []).some((e) => e.includes("cdktf")));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface Synthesized {
  "//": { metadata: Record<string, unknown> };
  resource: Record<string, Record<string, Record<string, unknown>>>;
  data: Record<string, Record<string, Record<string, unknown>>>;
  provider: Record<string, Record<string, unknown>[]>;
}

test("both example apps synthesize, without terraform or the daemon, the same configuration of schema attributes", async (t) => {
  t.timeout(120_000);
  const dir = mkdtempSync(join(tmpdir(), "mcko-synth-"));
  try {
    const out: Synthesized[] = [];
    for (const [app, lib] of [["main.ts", "cdktf"], ["main-cdktn.ts", "cdktn"]] as const) {
      const outdir = join(dir, lib);
      await run(process.execPath, ["--import", "tsx", join(REPO, "examples/cdktf", app)], { cwd: REPO, env: cleanEnv({ CDKTF_OUTDIR: outdir }) });
      const json = JSON.parse(readFileSync(join(outdir, "stacks/keys/cdk.tf.json"), "utf8")) as Synthesized;
      const version = (JSON.parse(readFileSync(join(REPO, "node_modules", lib, "package.json"), "utf8")) as { version: string }).version;
      t.is(json["//"].metadata["version"], version, `${app} is synthesized by ${lib}`);
      out.push(json);
    }
    const [a, b] = out as [Synthesized, Synthesized];
    delete a["//"].metadata["version"];
    delete b["//"].metadata["version"];
    t.deepEqual(a, b, "cdktf and cdktn produce the same cdk.tf.json apart from their version");

    const schemaOf = new Map([
      ...provider.resources.map((r) => [`resource.${r.typeName}`, r.schema.block] as const),
      ...provider.dataSources.map((d) => [`data.${d.typeName}`, d.schema.block] as const),
    ]);
    const meta = new Set(["//", "depends_on", "count", "for_each", "provider", "lifecycle"]);
    let checked = 0;
    for (const kind of ["resource", "data"] as const) {
      for (const [type, byName] of Object.entries(a[kind])) {
        const block = schemaOf.get(`${kind}.${type}`);
        t.truthy(block, `${kind} ${type} is in the schema`);
        for (const [name, body] of Object.entries(byName)) {
          for (const attr of Object.keys(body)) {
            if (meta.has(attr)) continue;
            checked++;
            t.true(Boolean(block?.attributes[attr] ?? block?.blocks?.[attr]), `${type}.${name}.${attr} is a schema attribute`);
          }
        }
      }
    }
    t.true(checked >= 10, `${checked} attributes checked`);
    t.deepEqual(Object.keys(a.provider["mcko"]?.[0] ?? {}), [], "the provider block is empty: connection and credentials come from the environment");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
