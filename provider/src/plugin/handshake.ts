// The go-plugin handshake as Terraform runs it (TFPLUGIN.md §1): the magic-cookie check, the protocol-version
// check, the AutoMTLS server certificate and the single handshake line on stdout. This file and provider/src/config.ts
// are the only places the provider reads the environment.

export const MAGIC_COOKIE_KEY = "TF_PLUGIN_MAGIC_COOKIE";
export const MAGIC_COOKIE_VALUE = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/** go-plugin's own words when a plugin is run by hand (server.go); printed to stderr, then exit 1. */
export const NOT_A_PLUGIN_MESSAGE =
  "This binary is a plugin. These are not meant to be executed directly.\n" +
  "Please execute the program that consumes these plugins, which will\n" +
  "load any plugins automatically\n";

export const CORE_PROTOCOL_VERSION = 1;
export const APP_PROTOCOL_VERSION = 6;

/** What the plugin reads from the environment Terraform gives it. */
export interface PluginEnv {
  readonly magicCookie: string | undefined;
  /** PLUGIN_PROTOCOL_VERSIONS, e.g. "5,6". */
  readonly protocolVersions: string | undefined;
  /** PEM of Terraform's client certificate (AutoMTLS); absent with TF_DISABLE_PLUGIN_TLS. */
  readonly clientCertPem: string | undefined;
}

export function readPluginEnv(env: NodeJS.ProcessEnv): PluginEnv {
  return {
    magicCookie: env[MAGIC_COOKIE_KEY],
    protocolVersions: env["PLUGIN_PROTOCOL_VERSIONS"],
    clientCertPem: env["PLUGIN_CLIENT_CERT"] || undefined,
  };
}

export type HandshakeCheck = { readonly ok: true } | { readonly ok: false; readonly message: string };

/** The checks go-plugin's server makes before serving. */
export function checkPluginEnv(env: PluginEnv): HandshakeCheck {
  if (env.magicCookie !== MAGIC_COOKIE_VALUE) return { ok: false, message: NOT_A_PLUGIN_MESSAGE };
  if (env.protocolVersions !== undefined && env.protocolVersions.trim() !== "") {
    const offered = env.protocolVersions.split(",").map((v) => v.trim());
    if (!offered.includes(String(APP_PROTOCOL_VERSION))) {
      return {
        ok: false,
        message:
          `This provider speaks Terraform plugin protocol ${APP_PROTOCOL_VERSION}, but the client accepts only ` +
          `${env.protocolVersions}. Use Terraform 1.0 or later.\n`,
      };
    }
  }
  return { ok: true };
}

/** `1|6|tcp|127.0.0.1:PORT|grpc|<base64 DER, no padding>` plus newline; empty last field without TLS. */
export function handshakeLine(network: "tcp" | "unix", address: string, certDer?: Buffer): string {
  const cert = certDer ? certDer.toString("base64").replace(/=+$/, "") : "";
  return `${CORE_PROTOCOL_VERSION}|${APP_PROTOCOL_VERSION}|${network}|${address}|grpc|${cert}\n`;
}
