// Public surface of the Cloud KMS emulator (see README.md).
export { startGcpKmsEmulator, type GcpKmsEmulator, type GcpKmsEmulatorOptions } from "./server.js";
export type { GcpCallRecord, GcpKmsAdmin } from "./admin.js";
export type { GcpCapturedImport, GcpCryptoKeyState, GcpImportJobState, GcpKmsState, GcpVersionState } from "./backend.js";
export { crc32c, kcvOf, type KcvMethod } from "./crypto.js";
