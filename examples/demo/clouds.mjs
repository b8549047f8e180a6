#!/usr/bin/env node
// What the demo's five targets hold, read from outside MCKO: the four cloud emulators' admin endpoints (clouds never
// return key material or KCVs) and the PKCS#11 target token itself, opened as any PKCS#11 application would
// (pkcs11js, by label, the user PIN from its 0600 file). Plain Node, no MCKO code.
//
//   node examples/demo/clouds.mjs env READY_JSON_FILE
//       prints shell assignments (endpoints, admin URLs, credentials) from the emulators' MCKO_EMULATORS_READY line
//   node examples/demo/clouds.mjs state TARGETS_JSON ENABLED|DISABLED [KCV]
//       waits (up to 60 s) until every target shows the key in that state (and, with a KCV, holding that material as
//       current), then prints what each holds; exit 1 if they did not get there
//   node examples/demo/clouds.mjs kcv TARGETS_JSON KEY_JSON
//       prints every target's KCVs next to the vault's (KEY_JSON = `mcko -o json key show`); exit 1 on any mismatch
//
// TARGETS_JSON: { key, aws: {admin}, azure: {admin}, gcp: {admin, cryptoKey}, keyProtect: {admin},
//                 pkcs11: {module, token, pinFile, label} }
// KCV of an AES key: the first 3 bytes of AES-ECB(key, zero block), hex.
import { readFileSync } from "node:fs";
import pkcs11js from "pkcs11js";

const [command, ...args] = process.argv.slice(2);
const readJson = (file) => JSON.parse(readFileSync(file, "utf8"));

async function get(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: HTTP ${r.status}`);
  return r.json();
}

/** The PKCS#11 target token: every AES key object of the distribution (`label`, and `label#<version>` for older versions). */
function readToken({ module, token, pinFile, label }) {
  const P = pkcs11js;
  const pk = new P.PKCS11();
  pk.load(module);
  pk.C_Initialize();
  try {
    const slot = pk.C_GetSlotList(true).find((s) => pk.C_GetTokenInfo(s).label.replace(/[ \0]+$/, "") === token);
    if (slot === undefined) throw new Error(`no PKCS#11 token labelled ${token}`);
    const s = pk.C_OpenSession(slot, P.CKF_SERIAL_SESSION);
    const pin = readFileSync(pinFile, "utf8").replace(/\r?\n$/, "");
    pk.C_Login(s, P.CKU_USER, pin);
    try {
      pk.C_FindObjectsInit(s, [{ type: P.CKA_CLASS, value: P.CKO_SECRET_KEY }, { type: P.CKA_TOKEN, value: true }]);
      const handles = pk.C_FindObjects(s, 1000);
      pk.C_FindObjectsFinal(s);
      const objects = [];
      for (const h of handles) {
        const [l, enc, dec, extractable] = pk.C_GetAttributeValue(s, h, [{ type: P.CKA_LABEL }, { type: P.CKA_ENCRYPT }, { type: P.CKA_DECRYPT }, { type: P.CKA_EXTRACTABLE }]).map((a) => a.value);
        const objectLabel = l.toString("utf8");
        if (objectLabel !== label && !objectLabel.startsWith(`${label}#`)) continue;
        const o = { label: objectLabel, encrypt: enc[0] === 1, decrypt: dec[0] === 1, extractable: extractable[0] === 1 };
        if (o.encrypt) {
          // The KCV, computed the only way a non-extractable key allows: by the token, with the key.
          pk.C_EncryptInit(s, { mechanism: P.CKM_AES_ECB }, h);
          o.kcv = pk.C_Encrypt(s, Buffer.alloc(16), Buffer.alloc(16)).subarray(0, 3).toString("hex");
        }
        objects.push(o);
      }
      // Older versions (`label#<version>`) first, by version, then the current object: the vault's order.
      const rank = (o) => (o.label === label ? Infinity : Number(o.label.slice(label.length + 1)) || 0);
      return objects.sort((x, y) => rank(x) - rank(y));
    } finally {
      pk.C_Logout(s);
      pk.C_CloseSession(s);
    }
  } finally {
    pk.C_Finalize();
    pk.close();
  }
}

/** One view per target: state (ENABLED, DISABLED or something else), current KCV, every KCV held, a line to print. */
async function readTargets(t) {
  const aws = await get(`${t.aws.admin}/${encodeURIComponent(`alias/${t.key}`)}`);
  const az = await get(`${t.azure.admin}/${encodeURIComponent(t.key)}`);
  const gcpState = await get(t.gcp.admin);
  const ck = gcpState.cryptoKeys.find((k) => k.name === t.gcp.cryptoKey);
  if (!ck) throw new Error(`the Google Cloud KMS emulator has no CryptoKey ${t.gcp.cryptoKey}`);
  const kp = (await get(t.keyProtect.admin)).find((k) => k.name === t.key && !k.deleted);
  if (!kp) throw new Error(`the Key Protect emulator has no live key named ${t.key}`);
  const objects = readToken(t.pkcs11);
  // ENABLED when every copy is usable, DISABLED when none is, MIXED in between (e.g. while the daemon is at work).
  const state = (xs, on, off) => (xs.length > 0 && xs.every(on) ? "ENABLED" : xs.length > 0 && xs.every(off) ? "DISABLED" : xs.length === 0 ? "ABSENT" : "MIXED");
  const azLatest = az.versions.find((v) => v.version === az.latestVersion);
  const gcpPrimary = ck.versions.find((v) => v.name === ck.primary);
  const kpStates = { 0: "Pre-activation", 1: "Active", 2: "Suspended", 3: "Deactivated", 5: "Destroyed" };
  const current = objects.find((o) => o.label === t.pkcs11.label);
  return [
    {
      name: "AWS KMS emulator",
      state: aws.enabled ? "ENABLED" : "DISABLED",
      kcv: aws.kcv,
      kcvs: aws.materials.map((m) => m.kcv),
      line: `key ${aws.keyId} is ${aws.keyState}; key materials: ${aws.materials.map((m) => `${m.kcv} (${m.state})`).join(", ")}`,
    },
    {
      name: "Azure Key Vault emulator",
      state: state(az.versions, (v) => v.enabled, (v) => !v.enabled),
      kcv: azLatest?.kcv,
      kcvs: az.versions.map((v) => v.kcv),
      line: `key ${t.key}, versions ${az.versions.map((v) => (v.enabled ? "enabled" : "disabled")).join(", ")}`,
    },
    {
      name: "Google Cloud KMS emulator",
      state: state(ck.versions, (v) => v.state === "ENABLED", (v) => v.state === "DISABLED"),
      kcv: gcpPrimary?.kcv,
      kcvs: ck.versions.map((v) => v.kcv),
      line: `CryptoKey ${ck.name.replace(/^.*\/keyRings\//, "…/keyRings/")}, versions ${ck.versions.map((v) => `${v.id} ${v.state}`).join(", ")}; primary ${gcpPrimary ? gcpPrimary.id : "none"}`,
    },
    {
      name: "IBM Key Protect emulator",
      state: kp.state === 1 ? "ENABLED" : kp.state === 2 ? "DISABLED" : kpStates[kp.state] ?? String(kp.state),
      kcv: kp.kcv,
      kcvs: kp.versions.map((v) => v.kcv),
      line: `root key ${kp.id} is ${kpStates[kp.state] ?? kp.state} (state ${kp.state}), ${kp.versions.length} version(s), imported ${kp.imported}, extractable ${kp.extractable}`,
    },
    {
      name: `PKCS#11 token ${t.pkcs11.token}`,
      state: state(objects, (o) => o.encrypt && o.decrypt, (o) => !o.encrypt && !o.decrypt),
      kcv: current?.kcv,
      kcvs: objects.map((o) => o.kcv),
      line: `objects ${objects.map((o) => `${o.label} (encrypt ${o.encrypt ? "on" : "off"}, decrypt ${o.decrypt ? "on" : "off"}, extractable ${o.extractable})`).join(", ")}`,
    },
  ];
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const shellQuote = (v) => `'${String(v).replace(/'/g, "'\\''")}'`;

if (command === "env") {
  const ready = readJson(args[0]);
  const vars = {
    aws_endpoint: ready["aws-kms"].endpoint,
    aws_region: ready["aws-kms"].region,
    aws_access_key_id: ready["aws-kms"].accessKeyId,
    aws_secret_access_key: ready["aws-kms"].secretAccessKey,
    aws_admin: ready["aws-kms"].admin,
    azure_endpoint: ready["azure-keyvault"].endpoint,
    azure_ca: ready["azure-keyvault"].caCertPath,
    azure_token: ready["azure-keyvault"].token,
    azure_admin: ready["azure-keyvault"].admin,
    gcp_endpoint: ready["gcp-kms"].endpoint,
    gcp_admin: ready["gcp-kms"].admin,
    kp_endpoint: ready["key-protect"].endpoint,
    kp_token: ready["key-protect"].token,
    kp_admin: ready["key-protect"].admin,
  };
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) throw new Error(`the emulators did not report ${k}`);
    process.stdout.write(`${k}=${shellQuote(v)}\n`);
  }
} else if (command === "state") {
  const [targetsFile, want, kcv] = args;
  const targets = readJson(targetsFile);
  const until = Date.now() + 60_000;
  for (;;) {
    const views = await readTargets(targets);
    const done = views.every((v) => v.state === want && (!kcv || v.kcv === kcv));
    if (done || Date.now() > until) {
      for (const v of views) console.log(`  ${`${v.name}:`.padEnd(36)} ${v.line}`);
      if (!done) {
        const late = views.filter((v) => v.state !== want || (kcv && v.kcv !== kcv)).map((v) => `${v.name} (${v.state}${kcv ? `, current KCV ${v.kcv ?? "none"}` : ""})`);
        console.log(`not every target reached ${want}${kcv ? ` with KCV ${kcv}` : ""} within 60 s: ${late.join("; ")}`);
        process.exit(1);
      }
      console.log(`all five targets: ${want}${kcv ? `, current material KCV ${kcv}` : ""}`);
      break;
    }
    await sleep(100);
  }
} else if (command === "kcv") {
  const [targetsFile, keyFile] = args;
  const targets = readJson(targetsFile);
  const key = readJson(keyFile);
  const vault = key.versions.map((v) => v.kcv);
  const primary = key.versions.find((v) => Number(v.versionNumber) === Number(key.primaryVersion)).kcv;
  const sameSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x)) && b.every((x) => a.includes(x));
  const views = await readTargets(targets);
  const row = (what, current, every, verdict) => console.log(`  ${what.padEnd(34)} ${current.padEnd(14)} ${every.padEnd(24)} ${verdict}`);
  row("where", "current KCV", "every version's KCV", "");
  row(`vault (HSM), primary version ${key.primaryVersion}`, primary, vault.join(" "), "");
  let bad = 0;
  for (const v of views) {
    const ok = v.kcv === primary && sameSet(v.kcvs.map(String), vault);
    if (!ok) bad++;
    row(v.name, v.kcv ?? "none", v.kcvs.map((k) => k ?? "none").join(" "), ok ? "match" : "MISMATCH");
  }
  if (bad > 0) {
    console.log(`MISMATCH: ${bad} of ${views.length} targets do not hold the vault's versions`);
    process.exit(1);
  }
  console.log(`every target's copy matches the vault: all ${views.length} targets hold every version, current = the vault's primary`);
} else {
  process.stderr.write("usage: clouds.mjs env READY_JSON | state TARGETS_JSON ENABLED|DISABLED [KCV] | kcv TARGETS_JSON KEY_JSON\n");
  process.exit(2);
}
