/**
 * Keystore credentials at rest: AES-256-GCM under the daemon's internal credential key (itself wrapped under the
 * master key in the internal store), with the keystore's resource name as associated data so a sealed blob cannot
 * be moved to another keystore. Plaintext exists only while a connector is being built.
 */
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import type { Secret } from "../util/secret.js";
import { InternalError } from "./errors.js";

export interface SealedCredentials {
  readonly v: 1;
  readonly iv: string;
  readonly tag: string;
  readonly ct: string;
}

export class CredentialCipher {
  constructor(private readonly key: Secret) {}

  seal(credentials: Readonly<Record<string, string>>, resource: string): SealedCredentials {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key.expose(), iv);
    cipher.setAAD(Buffer.from(resource, "utf8"));
    const plain = Buffer.from(JSON.stringify(credentials), "utf8");
    try {
      const ct = Buffer.concat([cipher.update(plain), cipher.final()]);
      return { v: 1, iv: iv.toString("base64"), tag: cipher.getAuthTag().toString("base64"), ct: ct.toString("base64") };
    } finally {
      plain.fill(0);
    }
  }

  open(sealed: SealedCredentials, resource: string): Record<string, string> {
    const decipher = createDecipheriv("aes-256-gcm", this.key.expose(), Buffer.from(sealed.iv, "base64"));
    decipher.setAAD(Buffer.from(resource, "utf8"));
    decipher.setAuthTag(Buffer.from(sealed.tag, "base64"));
    let plain: Buffer | undefined;
    try {
      plain = Buffer.concat([decipher.update(Buffer.from(sealed.ct, "base64")), decipher.final()]);
      return JSON.parse(plain.toString("utf8")) as Record<string, string>;
    } catch {
      throw new InternalError(`the stored credentials of ${resource} do not decrypt (wrong credential key?)`);
    } finally {
      plain?.fill(0);
    }
  }
}
