// Starts the Key Protect emulator standalone and prints its endpoints: `node --import=tsx test/emulators/key-protect/main.ts`.
// Environment: KEY_PROTECT_PORT, KEY_PROTECT_ADMIN_PORT (default 0 = any free port), KEY_PROTECT_TOKENS and
// KEY_PROTECT_INSTANCES (comma lists), KEY_PROTECT_TLS=1 for HTTPS (the CA certificate is printed as caCertPem).
import { DEFAULT_TOKEN, startKeyProtectEmulator } from "./server.js";

const list = (v: string | undefined) => v?.split(",").filter(Boolean);
const instances = list(process.env.KEY_PROTECT_INSTANCES);
const emulator = await startKeyProtectEmulator({
  port: Number(process.env.KEY_PROTECT_PORT ?? 0),
  adminPort: Number(process.env.KEY_PROTECT_ADMIN_PORT ?? 0),
  tokens: list(process.env.KEY_PROTECT_TOKENS) ?? [DEFAULT_TOKEN],
  instances: instances && instances.length > 0 ? instances : undefined,
  tls: process.env.KEY_PROTECT_TLS === "1",
});
process.stdout.write(
  `${JSON.stringify({ emulator: "key-protect", endpoint: emulator.endpoint, adminUrl: emulator.adminUrl, caCertPem: emulator.caCertPem })}\n`,
);
const stop = () => void emulator.close().then(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
