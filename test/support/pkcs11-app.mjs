#!/usr/bin/env node
// A plain PKCS#11 application (pkcs11js only, no MCKO code), run as its own process by the PKCS#11 token keystore
// tests: it opens the target token the way any application would, finds a key object by label and uses it, or
// reports what the token holds. It reads one JSON request on stdin and writes one JSON answer on stdout:
//   { module, token, op: "use", label, data (hex), hash? }  →  AES: { iv, ciphertext } (CKM_AES_CBC_PAD);
//     HMAC: { mac } (CKM_SHA<hash>_HMAC); RSA: { signature } (CKM_SHA256_RSA_PKCS); EC: { signature } (CKM_ECDSA
//     over SHA-256, r||s). A refusal by the token is { error: "CKR_…" }.
//   { module, token, op: "inspect" }  →  { objects: [{ class, label, id, keyType, application, flags…, kcv? }] } (kcv:
//     an AES key's enc-zero check value, computed in the token where the key may encrypt)
//   { module, token, op: "modify", id (hex CKA_ID), set: { encrypt: false, … } }  →  { changed: n } (someone at
//     the token turning usage off behind MCKO's back)
//   { module, token, op: "destroy", id }  →  { destroyed: n } (C_DestroyObject of the key objects with that CKA_ID)
// The user PIN comes from the environment variable APP_PIN (never argv).
import { createHash, randomBytes } from "node:crypto";
import pkcs11js from "pkcs11js";

const P = pkcs11js;
const chunks = [];
for await (const c of process.stdin) chunks.push(c);
const req = JSON.parse(Buffer.concat(chunks).toString("utf8"));

const pk = new P.PKCS11();
pk.load(req.module);
pk.C_Initialize({ flags: P.CKF_OS_LOCKING_OK });
const out = (x) => process.stdout.write(JSON.stringify(x) + "\n");
const ckr = (e) => (/^(CKR_[A-Z_]+)/.exec(e?.message ?? "")?.[1] ?? String(e?.message ?? e));

try {
  const slot = pk.C_GetSlotList(true).find((s) => pk.C_GetTokenInfo(s).label.replace(/[ \0]+$/, "") === req.token);
  if (slot === undefined) throw new Error(`no token labelled ${req.token}`);
  const s = pk.C_OpenSession(slot, P.CKF_SERIAL_SESSION | P.CKF_RW_SESSION);
  pk.C_Login(s, P.CKU_USER, process.env.APP_PIN ?? "");
  const find = (template) => {
    pk.C_FindObjectsInit(s, template);
    try {
      return pk.C_FindObjects(s, 1000);
    } finally {
      pk.C_FindObjectsFinal(s);
    }
  };
  const bool = (v) => Buffer.isBuffer(v) && v.some((b) => b !== 0);
  const ulong = (v) => (Buffer.isBuffer(v) && v.length ? v.readUIntLE(0, Math.min(6, v.length)) : undefined);
  const attr = (h, type) => {
    try {
      return pk.C_GetAttributeValue(s, h, [{ type }])[0].value;
    } catch {
      return undefined;
    }
  };

  const usage = { encrypt: P.CKA_ENCRYPT, decrypt: P.CKA_DECRYPT, sign: P.CKA_SIGN, verify: P.CKA_VERIFY, wrap: P.CKA_WRAP, unwrap: P.CKA_UNWRAP };
  const byId = (id) => [P.CKO_SECRET_KEY, P.CKO_PRIVATE_KEY].flatMap((cls) => find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_ID, value: Buffer.from(id, "hex") }]));
  if (req.op === "modify") {
    const keys = byId(req.id);
    for (const h of keys) pk.C_SetAttributeValue(s, h, Object.entries(req.set).map(([name, value]) => ({ type: usage[name], value })));
    out({ changed: keys.length });
  } else if (req.op === "destroy") {
    const keys = byId(req.id);
    for (const h of keys) pk.C_DestroyObject(s, h);
    out({ destroyed: keys.length });
  } else if (req.op === "inspect") {
    const objects = [];
    for (const cls of [P.CKO_SECRET_KEY, P.CKO_PRIVATE_KEY, P.CKO_PUBLIC_KEY, P.CKO_DATA]) {
      for (const h of find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_TOKEN, value: true }])) {
        const o = {
          class: { [P.CKO_SECRET_KEY]: "secret", [P.CKO_PRIVATE_KEY]: "private", [P.CKO_PUBLIC_KEY]: "public", [P.CKO_DATA]: "data" }[cls],
          label: attr(h, P.CKA_LABEL)?.toString("utf8") ?? "",
        };
        if (cls === P.CKO_DATA) {
          o.application = attr(h, P.CKA_APPLICATION)?.toString("utf8") ?? "";
          o.value = attr(h, P.CKA_VALUE)?.toString("utf8") ?? "";
        } else {
          o.id = attr(h, P.CKA_ID)?.toString("hex") ?? "";
          o.keyType = ulong(attr(h, P.CKA_KEY_TYPE));
          for (const [name, type] of Object.entries({ private: P.CKA_PRIVATE, sensitive: P.CKA_SENSITIVE, extractable: P.CKA_EXTRACTABLE, neverExtractable: P.CKA_NEVER_EXTRACTABLE, encrypt: P.CKA_ENCRYPT, decrypt: P.CKA_DECRYPT, sign: P.CKA_SIGN, verify: P.CKA_VERIFY, wrap: P.CKA_WRAP, unwrap: P.CKA_UNWRAP, derive: P.CKA_DERIVE })) {
            const v = attr(h, type);
            if (v !== undefined) o[name] = bool(v);
          }
          if (cls !== P.CKO_PUBLIC_KEY) {
            try {
              pk.C_GetAttributeValue(s, h, [{ type: cls === P.CKO_SECRET_KEY ? P.CKA_VALUE : P.CKA_PRIVATE_EXPONENT }]);
              o.valueReadable = true;
            } catch {
              o.valueReadable = false;
            }
            if (cls === P.CKO_PRIVATE_KEY && o.keyType === P.CKK_EC) o.valueReadable = o.valueReadable || attr(h, P.CKA_VALUE) !== undefined;
          }
          if (o.keyType === P.CKK_AES && o.encrypt) {
            pk.C_EncryptInit(s, { mechanism: P.CKM_AES_ECB }, h);
            o.kcv = pk.C_Encrypt(s, Buffer.alloc(16), Buffer.alloc(16)).subarray(0, 3).toString("hex");
          }
        }
        objects.push(o);
      }
    }
    out({ objects });
  } else if (req.op === "use") {
    const keys = [P.CKO_SECRET_KEY, P.CKO_PRIVATE_KEY].flatMap((cls) => find([{ type: P.CKA_CLASS, value: cls }, { type: P.CKA_LABEL, value: req.label }]));
    if (keys.length !== 1) {
      out({ error: `found ${keys.length} key objects labelled ${req.label}` });
    } else {
      const key = keys[0];
      const data = Buffer.from(req.data, "hex");
      const keyType = ulong(attr(key, P.CKA_KEY_TYPE));
      try {
        if (keyType === P.CKK_AES) {
          const iv = randomBytes(16);
          pk.C_EncryptInit(s, { mechanism: P.CKM_AES_CBC_PAD, parameter: iv }, key);
          const ciphertext = pk.C_Encrypt(s, data, Buffer.alloc(data.length + 32));
          out({ iv: iv.toString("hex"), ciphertext: ciphertext.toString("hex") });
        } else if (keyType === P.CKK_GENERIC_SECRET) {
          const mechanism = { sha256: P.CKM_SHA256_HMAC, sha384: P.CKM_SHA384_HMAC, sha512: P.CKM_SHA512_HMAC }[req.hash ?? "sha256"];
          pk.C_SignInit(s, { mechanism }, key);
          out({ mac: pk.C_Sign(s, data, Buffer.alloc(64)).toString("hex") });
        } else if (keyType === P.CKK_RSA) {
          pk.C_SignInit(s, { mechanism: P.CKM_SHA256_RSA_PKCS }, key);
          out({ signature: pk.C_Sign(s, data, Buffer.alloc(1024)).toString("hex") });
        } else if (keyType === P.CKK_EC) {
          pk.C_SignInit(s, { mechanism: P.CKM_ECDSA }, key);
          out({ signature: pk.C_Sign(s, createHash("sha256").update(data).digest(), Buffer.alloc(256)).toString("hex") });
        } else {
          out({ error: `unexpected key type ${keyType}` });
        }
      } catch (e) {
        out({ error: ckr(e) });
      }
    }
  } else {
    out({ error: `unknown op ${req.op}` });
  }
  pk.C_CloseSession(s);
} finally {
  pk.C_Finalize();
  pk.close();
}
