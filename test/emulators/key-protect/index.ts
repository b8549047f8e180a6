// Public surface of the IBM Key Protect emulator (see README.md).
export { DEFAULT_INSTANCE, DEFAULT_TOKEN, startKeyProtectEmulator, type KeyProtectEmulator, type KeyProtectEmulatorOptions } from "./server.js";
export type { KeyProtectAdmin, KeyProtectStateView, KpKeyView } from "./admin.js";
export type { KpCapturedImport, KpKeyState } from "./state.js";
export { parseCiphertext } from "./crypto.js";
