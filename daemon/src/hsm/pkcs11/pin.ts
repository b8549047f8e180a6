/** Reading the token's user PIN from a file (config may also take it from the environment; never from argv). */
import { constants as fsConstants } from "node:fs";
import { open } from "node:fs/promises";
import { HsmError } from "../hsm.js";
import { Secret } from "../../util/secret.js";

/**
 * Reads a PIN file: the whole content without a trailing newline. Refused if group or others can access it, if
 * it is empty, or if it is not a regular file. The returned secret is the caller's to dispose.
 */
export async function readPinFile(path: string): Promise<Secret> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? "error";
    throw new HsmError("HSM_LOGIN_FAILED", `cannot read the PIN file ${path} (${code})`, { cause });
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw new HsmError("HSM_LOGIN_FAILED", `the PIN file ${path} is not a regular file`);
    if ((stat.mode & 0o077) !== 0) {
      throw new HsmError(
        "HSM_LOGIN_FAILED",
        `the PIN file ${path} is accessible by group or others; run \`chmod 600 ${path}\``,
      );
    }
    const content = await handle.readFile();
    let end = content.length;
    while (end > 0 && (content[end - 1] === 0x0a || content[end - 1] === 0x0d)) end--;
    const pin = Secret.copyOf(content.subarray(0, end));
    content.fill(0);
    if (pin.length === 0) {
      pin.dispose();
      throw new HsmError("HSM_LOGIN_FAILED", `the PIN file ${path} is empty`);
    }
    return pin;
  } finally {
    await handle.close();
  }
}
