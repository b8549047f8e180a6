/**
 * Independent check (DESIGN.md "Tests use real parts"): OpenSSL's command line, not MCKO's code, opens the BYOK
 * blobs both backends produce for a keystore RSA key that OpenSSL generated, and computes the KCV of what it
 * recovered; it must equal the vault's KCV. RSA-OAEP with `pkeyutl`, RFC 5649 with `enc -id-aes256-wrap-pad`.
 */
import test from "ava";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { keyFamily, type ByokFormat, type Hsm, type KeyAlgorithm } from "../../daemon/src/hsm/hsm.js";
import { Pkcs11Hsm } from "../../daemon/src/hsm/pkcs11/pkcs11-hsm.js";
import { SoftwareHsm } from "../../daemon/src/hsm/software/software-hsm.js";
import { Secret } from "../../daemon/src/util/secret.js";
import { createSoftHsmToken, type SoftHsmToken } from "../support/softhsm.js";

const execFileAsync = promisify(execFile);
let dir = "";
let token: SoftHsmToken | undefined;
let keystoreSpki = Buffer.alloc(0);
const backends = new Map<"software" | "pkcs11", Hsm>();
let fileNo = 0;

async function openssl(...args: string[]): Promise<void> {
  await execFileAsync("openssl", args);
}

async function tempFile(content?: Buffer): Promise<string> {
  const path = join(dir, `f${++fileNo}`);
  if (content !== undefined) await writeFile(path, content, { mode: 0o600 });
  return path;
}

/** OpenSSL RSA-OAEP decryption with the keystore's private key (hash and MGF1 hash the same, empty label). */
async function oaepDecrypt(data: Buffer, hash: "sha1" | "sha256"): Promise<Buffer> {
  const out = await tempFile();
  await openssl(
    "pkeyutl", "-decrypt", "-inkey", join(dir, "keystore.pem"), "-in", await tempFile(data), "-out", out,
    "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", `rsa_oaep_md:${hash}`, "-pkeyopt", `rsa_mgf1_md:${hash}`,
  );
  return readFile(out);
}

async function kwpUnwrapWithOpenssl(kek: Buffer, data: Buffer): Promise<Buffer> {
  const out = await tempFile();
  await openssl(
    "enc", "-d", "-id-aes256-wrap-pad", "-iv", "A65959A6", "-K", kek.toString("hex"),
    "-in", await tempFile(data), "-out", out,
  );
  return readFile(out);
}

/** The KCV of `material` as OpenSSL computes it (enc-zero, hmac-empty, spki-sha256). */
async function kcvWithOpenssl(algorithm: KeyAlgorithm, material: Buffer): Promise<string> {
  const out = await tempFile();
  switch (keyFamily(algorithm)) {
    case "AES":
      await openssl(
        "enc", "-e", `-aes-${material.length * 8}-ecb`, "-nopad", "-K", material.toString("hex"),
        "-in", await tempFile(Buffer.alloc(16)), "-out", out,
      );
      return (await readFile(out)).subarray(0, 3).toString("hex");
    case "HMAC":
      await openssl(
        "dgst", `-${algorithm.slice("HMAC_".length).toLowerCase()}`, "-mac", "HMAC", "-macopt", `hexkey:${material.toString("hex")}`, "-binary",
        "-out", out, await tempFile(Buffer.alloc(0)),
      );
      return (await readFile(out)).subarray(0, 3).toString("hex");
    default: {
      const spki = await tempFile();
      await openssl("pkey", "-inform", "DER", "-in", await tempFile(material), "-pubout", "-outform", "DER", "-out", spki);
      await openssl("dgst", "-sha256", "-binary", "-out", out, spki);
      return (await readFile(out)).toString("hex");
    }
  }
}

test.before(async () => {
  dir = await mkdtemp(join(tmpdir(), "mcko-openssl-"));
  const pem = join(dir, "keystore.pem");
  await openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", pem);
  await openssl("pkey", "-in", pem, "-pubout", "-outform", "DER", "-out", join(dir, "keystore.der"));
  keystoreSpki = await readFile(join(dir, "keystore.der"));

  const masterKeyFile = join(dir, "master.keyring");
  const softwareKcv = await SoftwareHsm.initMasterKeyFile(masterKeyFile);
  backends.set("software", await SoftwareHsm.create({ masterKeyFile, expectedMasterKcv: softwareKcv }));

  token = await createSoftHsmToken({ tokenLabel: "mcko-openssl" });
  process.env.SOFTHSM2_CONF = token.conf;
  const common = { modulePath: token.modulePath, tokenLabel: token.tokenLabel, masterKeyLabel: "mcko-master" };
  const pin = Secret.copyOf(Buffer.from(token.pin));
  const kcv = await Pkcs11Hsm.initMasterKey({ ...common, pin, adopt: false });
  backends.set("pkcs11", await Pkcs11Hsm.create({ ...common, pin, expectedMasterKcv: kcv }));
  pin.dispose();
});

test.after.always(async () => {
  for (const hsm of backends.values()) await hsm.close();
  await token?.cleanup();
  if (dir !== "") await rm(dir, { recursive: true, force: true });
});

const cases: Array<[ByokFormat, KeyAlgorithm]> = [
  ["RSA_OAEP_SHA1", "AES_256"],
  ["RSA_OAEP_SHA1", "HMAC_SHA384"],
  ["RSA_OAEP_SHA256", "AES_128"],
  ["RSA_OAEP_SHA256", "HMAC_SHA256"],
  ["RSA_AES_KWP_SHA1", "AES_256"],
  ["RSA_AES_KWP_SHA1", "HMAC_SHA512"],
  ["RSA_AES_KWP_SHA1", "RSA_2048"],
  ["RSA_AES_KWP_SHA1", "EC_P384"],
  ["RSA_AES_KWP_SHA256", "AES_192"],
  ["RSA_AES_KWP_SHA256", "RSA_2048"],
  ["RSA_AES_KWP_SHA256", "EC_P256"],
];

for (const kind of ["software", "pkcs11"] as const) {
  for (const [format, algorithm] of cases) {
    test(`${kind}: OpenSSL opens a ${format} blob of ${algorithm} and gets the vault's KCV`, async (t) => {
      const hsm = backends.get(kind);
      if (hsm === undefined) throw new Error(`${kind} backend not started`);
      const key = await hsm.generateKey(algorithm);
      const hash = format.endsWith("SHA1") ? "sha1" : "sha256";
      // SoftHSM2 lacks OAEP-SHA-256: RSA_OAEP_SHA256 over the material needs the keystore's allow_software_wrap.
      const byok = await hsm.wrapForKeystore(key, { wrappingKeySpki: keystoreSpki, format, allowSoftwareWrap: true });
      if (kind === "pkcs11") {
        const expected = hash === "sha1" ? "none" : format.startsWith("RSA_OAEP_") ? "rsa-over-material" : "rsa-over-ephemeral-key";
        t.is(byok.softwareStep, expected);
      }
      let material: Buffer;
      if (format.startsWith("RSA_OAEP_")) {
        t.is(byok.blob.length, 256);
        material = await oaepDecrypt(byok.blob, hash);
      } else {
        const ephemeral = await oaepDecrypt(byok.blob.subarray(0, 256), hash);
        t.is(ephemeral.length, 32, "the ephemeral key is AES-256");
        material = await kwpUnwrapWithOpenssl(ephemeral, byok.blob.subarray(256));
      }
      t.is(await kcvWithOpenssl(algorithm, material), key.kcv);
    });
  }
}
