/**
 * The HSM backends behind one factory, for the composition root (`main.ts`) and `mcko init`. Both backends
 * implement `MasterRotatableHsm`.
 */
import type { MasterRotatableHsm } from "./hsm.js";
import { Pkcs11Hsm, type Pkcs11HsmOptions, type Pkcs11InitMasterKeyOptions } from "./pkcs11/pkcs11-hsm.js";
import { SoftwareHsm, type SoftwareHsmOptions } from "./software/software-hsm.js";

export { SoftwareHsm, type SoftwareHsmOptions } from "./software/software-hsm.js";
export {
  DEFAULT_SESSION_POOL_SIZE,
  Pkcs11Hsm,
  type Pkcs11HsmOptions,
  type Pkcs11InitMasterKeyOptions,
} from "./pkcs11/pkcs11-hsm.js";
export { readPinFile } from "./pkcs11/pin.js";
export { aesKcv, hmacKcv, kcvOfMaterial, spkiKcv } from "./kcv.js";

export type HsmConfig = ({ readonly kind: "software" } & SoftwareHsmOptions) | ({ readonly kind: "pkcs11" } & Pkcs11HsmOptions);

export type InitMasterKeyConfig =
  | { readonly kind: "software"; readonly masterKeyFile: string }
  | ({ readonly kind: "pkcs11" } & Pkcs11InitMasterKeyOptions);

/** Starts the configured backend; refuses with a typed `HsmError` a person can act on. */
export function createHsm(config: HsmConfig): Promise<MasterRotatableHsm> {
  return config.kind === "software" ? SoftwareHsm.create(config) : Pkcs11Hsm.create(config);
}

/**
 * `mcko init`: creates the master key (software: a new 0600 keyring file; pkcs11: a token object, or adopts an
 * existing one with `adopt`) and returns its KCV, which the vault records and checks on every start.
 */
export function initMasterKey(config: InitMasterKeyConfig): Promise<string> {
  return config.kind === "software"
    ? SoftwareHsm.initMasterKeyFile(config.masterKeyFile)
    : Pkcs11Hsm.initMasterKey(config);
}
