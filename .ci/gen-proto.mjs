// Regenerates protos/gen from protos/ with buf and the local ts-proto plugin (buf.gen.yaml; no download at run
// time). `node .ci/gen-proto.mjs [BASE_DIR]` writes BASE_DIR/protos/gen; BASE_DIR defaults to the repository
// (the drift test passes a temp folder and compares).
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const base = resolve(process.argv[2] ?? root);
const out = join(base, "protos/gen");
const buf = join(root, "node_modules/.bin/buf");
rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
execFileSync(buf, ["generate", "--output", base], { cwd: root, stdio: "inherit" });
// The descriptor set feeds server reflection (@grpc/reflection needs a proto-loader PackageDefinition).
execFileSync(buf, ["build", "--exclude-source-info", "-o", join(out, "mcko.binpb")], { cwd: root, stdio: "inherit" });
