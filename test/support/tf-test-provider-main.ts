// Entry point serving the test provider as a real plugin process (see tf-test-provider.ts).
import { readPluginEnv } from "../../provider/src/plugin/handshake.js";
import { serve } from "../../provider/src/plugin/server.js";
import { testProvider } from "./tf-test-provider.js";

await serve(testProvider(), { env: readPluginEnv(process.env) });
