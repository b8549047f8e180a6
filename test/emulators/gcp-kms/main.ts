// Starts the Cloud KMS emulator standalone and prints its endpoints: `node --import=tsx test/emulators/gcp-kms/main.ts`.
// Environment: GCP_KMS_PORT, GCP_KMS_ADMIN_PORT (default 0 = any free port), GCP_KMS_PROJECTS (comma list).
import { startGcpKmsEmulator } from "./server.js";

const projects = process.env.GCP_KMS_PROJECTS?.split(",").filter(Boolean);
const emulator = await startGcpKmsEmulator({
  port: Number(process.env.GCP_KMS_PORT ?? 0),
  adminPort: Number(process.env.GCP_KMS_ADMIN_PORT ?? 0),
  projects: projects && projects.length > 0 ? projects : undefined,
});
process.stdout.write(`${JSON.stringify({ emulator: "gcp-kms", endpoint: emulator.endpoint, adminUrl: emulator.adminUrl })}\n`);
const stop = () => void emulator.close().then(() => process.exit(0));
process.once("SIGINT", stop);
process.once("SIGTERM", stop);
