/**
 * The software backend's master keyring file: the one place MCKO keeps key material on disk in plaintext
 * (development only). Text, one record per line, so an operator can see which master is current:
 *
 *   mcko-master-keyring v1
 *   current <kcv>
 *   key <kcv> <64 hex digits>
 *
 * The file must be mode 0600 (no group/other bits); a looser file is refused. Key bytes are decoded straight from
 * the file buffer into their own buffers and never become JS strings (which cannot be zeroed); every buffer that
 * held key bytes is zeroed after use. Writes go to a temp file (O_EXCL, 0600), are fsynced, renamed over the file
 * and the folder is fsynced, so a crash leaves either the old or the new keyring.
 */
import { constants as fsConstants } from "node:fs";
import { open, rename, unlink, type FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { basename, dirname, join } from "node:path";
import { HsmError } from "../hsm.js";
import { aesKcv } from "../kcv.js";

const HEADER = "mcko-master-keyring v1";
export const MASTER_KEY_BYTES = 32;

export interface MasterKeyring {
  /** KCV (enc-zero) of the current master. */
  readonly current: string;
  /** Master keys by KCV; the caller owns and zeroes the buffers. */
  readonly keys: Map<string, Buffer>;
}

/** Reads and checks the keyring at `path`; errors say what is wrong and what to do. */
export async function readKeyring(path: string): Promise<MasterKeyring> {
  let handle: FileHandle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (code === "ENOENT") {
      throw new HsmError(
        "HSM_MASTER_KEY_NOT_FOUND",
        `master key file ${path} does not exist; create it with \`mcko init --hsm software\``,
        { cause },
      );
    }
    throw new HsmError("HSM_UNAVAILABLE", `cannot open master key file ${path} (${code ?? "error"})`, { cause });
  }
  let content: Buffer | undefined;
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new HsmError("HSM_UNAVAILABLE", `master key file ${path} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      const mode = (stat.mode & 0o777).toString(8).padStart(4, "0");
      throw new HsmError(
        "HSM_UNAVAILABLE",
        `master key file ${path} is accessible by group or others (mode ${mode}); refusing to start. ` +
          `Run \`chmod 600 ${path}\` and check who could have read it.`,
      );
    }
    content = await handle.readFile();
    return parseKeyring(path, content);
  } finally {
    content?.fill(0);
    await handle.close();
  }
}

function parseKeyring(path: string, content: Buffer): MasterKeyring {
  const bad = (what: string): HsmError =>
    new HsmError("HSM_INVALID_INPUT", `master key file ${path} is not a valid keyring: ${what}`);
  const keys = new Map<string, Buffer>();
  let current: string | undefined;
  let lineNo = 0;
  try {
    for (const line of splitLines(content)) {
      lineNo++;
      if (line.length === 0) continue;
      if (lineNo === 1) {
        if (line.toString("latin1") !== HEADER) throw bad(`the first line must be "${HEADER}"`);
        continue;
      }
      // Only the first two fields are decoded as text; the third (key hex) stays in buffers.
      const firstSpace = line.indexOf(0x20);
      const tag = firstSpace < 0 ? line.toString("latin1") : line.subarray(0, firstSpace).toString("latin1");
      if (tag === "current") {
        current = line.subarray(firstSpace + 1).toString("latin1");
        if (!/^[0-9a-f]{6}$/.test(current)) throw bad(`line ${lineNo}: "current" needs a 6-digit KCV`);
      } else if (tag === "key") {
        const rest = line.subarray(firstSpace + 1);
        const secondSpace = rest.indexOf(0x20);
        if (secondSpace !== 6) throw bad(`line ${lineNo}: expected "key <kcv> <hex>"`);
        const kcv = rest.subarray(0, 6).toString("latin1");
        const key = decodeHex(rest.subarray(7));
        if (key === undefined || key.length !== MASTER_KEY_BYTES) {
          key?.fill(0);
          throw bad(`line ${lineNo}: a master key is ${MASTER_KEY_BYTES * 2} hex digits`);
        }
        if (aesKcv(key) !== kcv) {
          key.fill(0);
          throw bad(`line ${lineNo}: the key does not match its KCV ${kcv} (file corrupted?)`);
        }
        keys.set(kcv, key);
      } else {
        throw bad(`line ${lineNo}: unknown record`);
      }
    }
    if (lineNo === 0) throw bad("the file is empty");
    if (current === undefined) throw bad(`no "current" line`);
    if (!keys.has(current)) throw bad(`the current master ${current} is not in the file`);
    return { current, keys };
  } catch (e) {
    for (const k of keys.values()) k.fill(0);
    throw e;
  }
}

function* splitLines(content: Buffer): Generator<Buffer> {
  let start = 0;
  while (start < content.length) {
    let end = content.indexOf(0x0a, start);
    if (end < 0) end = content.length;
    let line = content.subarray(start, end);
    if (line.length > 0 && line[line.length - 1] === 0x0d) line = line.subarray(0, line.length - 1);
    yield line;
    start = end + 1;
  }
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

function decodeHex(hex: Buffer): Buffer | undefined {
  if (hex.length % 2 !== 0) return undefined;
  const out = Buffer.alloc(hex.length / 2);
  for (let i = 0; i < out.length; i++) {
    const hi = hexValue(hex[2 * i] ?? -1);
    const lo = hexValue(hex[2 * i + 1] ?? -1);
    if (hi < 0 || lo < 0) {
      out.fill(0);
      return undefined;
    }
    out[i] = hi * 16 + lo;
  }
  return out;
}

const HEX_DIGITS = Buffer.from("0123456789abcdef", "latin1");

function encodeKeyring(keyring: MasterKeyring): Buffer {
  const parts: Buffer[] = [Buffer.from(`${HEADER}\ncurrent ${keyring.current}\n`, "latin1")];
  for (const [kcv, key] of keyring.keys) {
    const line = Buffer.alloc(4 + 6 + 1 + key.length * 2 + 1);
    line.write(`key ${kcv} `, 0, "latin1");
    let at = 11;
    for (const byte of key) {
      line[at++] = HEX_DIGITS[byte >> 4] ?? 0;
      line[at++] = HEX_DIGITS[byte & 0x0f] ?? 0;
    }
    line[at] = 0x0a;
    parts.push(line);
  }
  const out = Buffer.concat(parts);
  for (const p of parts) p.fill(0);
  return out;
}

/**
 * Writes `keyring` to `path`. With `exclusive`, `path` must not exist yet (O_EXCL create, for initialisation);
 * otherwise the file is replaced atomically.
 */
export async function writeKeyring(path: string, keyring: MasterKeyring, exclusive: boolean): Promise<void> {
  const content = encodeKeyring(keyring);
  const target = exclusive ? path : join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  try {
    let handle: FileHandle;
    try {
      handle = await open(target, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, 0o600);
    } catch (cause) {
      const code = (cause as NodeJS.ErrnoException).code;
      if (code === "EEXIST" && exclusive) {
        throw new HsmError("HSM_INVALID_INPUT", `master key file ${path} already exists; refusing to overwrite it`, {
          cause,
        });
      }
      throw new HsmError("HSM_UNAVAILABLE", `cannot create ${target} (${code ?? "error"})`, { cause });
    }
    try {
      await handle.chmod(0o600);
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    if (!exclusive) {
      try {
        await rename(target, path);
      } catch (cause) {
        await unlink(target).catch(() => undefined);
        throw new HsmError("HSM_UNAVAILABLE", `cannot replace master key file ${path}`, { cause });
      }
    }
    await syncDirectory(dirname(path));
  } finally {
    content.fill(0);
  }
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
