// Runs the provider bundle built by provider/bin/build-provider (node_modules/.cache/mcko-provider/main.cjs) with a
// V8 code cache next to it, so that most of the bundle's compilation is skipped on every later start (Node 20 has no
// module.enableCompileCache). provider/bin/terraform-provider-mcko execs `node` on this file.
//
// The cache belongs to exactly one build of the bundle: its first line names the bundle's inode, size and mtime (a
// rebuild is a new file renamed into place), and V8 checks its own version and flags on top. A cache that is
// missing, belongs to another build or is rejected by V8 is written anew when the process exits (to a temporary
// file renamed into place, so concurrent providers never see half a file). Failing to read or write it only costs time.
"use strict";
const fs = require("node:fs");
const path = require("node:path");
const vm = require("node:vm");
const { createRequire, wrap } = require("node:module");

const bundle = path.join(__dirname, "..", "..", "node_modules", ".cache", "mcko-provider", "main.cjs");
const cacheFile = `${bundle}.v8cache`;

const fd = fs.openSync(bundle, "r");
const st = fs.fstatSync(fd);
const source = fs.readFileSync(fd, "utf8");
fs.closeSync(fd);
const stamp = Buffer.from(`${st.ino}-${st.size}-${st.mtimeMs}\n`);

let cachedData;
try {
  const c = fs.readFileSync(cacheFile);
  if (c.length > stamp.length && c.subarray(0, stamp.length).equals(stamp)) cachedData = c.subarray(stamp.length);
} catch {
  // no cache yet
}

const script = new vm.Script(wrap(source), { filename: bundle, ...(cachedData ? { cachedData } : {}) });
if (!cachedData || script.cachedDataRejected) {
  // At exit the cache also holds the functions this run compiled lazily (the RPC handlers), not just the top level.
  process.once("exit", (code) => {
    if (code !== 0) return; // e.g. run by hand: stopped before it compiled anything worth keeping
    const tmp = `${cacheFile}.${process.pid}`;
    try {
      fs.writeFileSync(tmp, Buffer.concat([stamp, script.createCachedData()]));
      fs.renameSync(tmp, cacheFile);
    } catch {
      try {
        fs.rmSync(tmp, { force: true });
      } catch {
        // nothing more to do
      }
    }
  });
}
const mod = { exports: {}, filename: bundle, id: bundle, loaded: false };
script.runInThisContext()(mod.exports, createRequire(bundle), mod, bundle, path.dirname(bundle));
