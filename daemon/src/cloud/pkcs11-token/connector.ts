/**
 * PKCS#11 token connector (the design is in token-connector.ts): a keystore that is one token of a PKCS#11 module.
 * This file is what the registry sees. The implementation, and the pkcs11js native module with it, is loaded on the
 * first call that reaches the token, as the cloud SDKs are (a daemon with no PKCS#11 keystore never loads it), and
 * `unsupportedReason` answers from the settings alone.
 */
import type { KeyAlgorithm } from "../../hsm/hsm.js";
import type {
  CallPolicy,
  CloudKeyRef,
  CloudKeyView,
  ConnectorCredentials,
  ConnectorFactory,
  ConnectorSettings,
  KeystoreConnector,
  PushRequest,
  PushResult,
  RotateRequest,
} from "../connector.js";
import { PKCS11_CREDENTIAL_FIELDS, compilePkcs11Settings, objectIdFor, usageProblem, validatePkcs11Settings, type Pkcs11TokenSettings } from "./config.js";

export { objectIdFor };

type Impl = typeof import("./token-connector.js");
let implModule: Promise<Impl> | undefined;
const loadImpl = (): Promise<Impl> => (implModule ??= import("./token-connector.js"));

export class Pkcs11TokenKeystore implements KeystoreConnector {
  readonly type = "PKCS11" as const;
  #impl: Promise<KeystoreConnector> | undefined;
  #closed = false;

  constructor(
    private readonly settings: Pkcs11TokenSettings,
    private readonly policy: CallPolicy,
    private readonly credentials: ConnectorCredentials,
  ) {}

  unsupportedReason(algorithm: KeyAlgorithm): string | undefined {
    const why = usageProblem(algorithm, this.settings.keyUsage);
    return why ? `${why} (key_usage ${this.settings.keyUsage} of this PKCS#11 keystore); ${algorithm} cannot be pushed here` : undefined;
  }

  testConnection(): Promise<{ readonly detail: string }> {
    return this.#use((c) => c.testConnection());
  }
  push(request: PushRequest): Promise<PushResult> {
    return this.#use((c) => c.push(request));
  }
  rotate(request: RotateRequest): Promise<PushResult> {
    return this.#use((c) => c.rotate(request));
  }
  setEnabled(key: CloudKeyRef, enabled: boolean): Promise<void> {
    return this.#use((c) => c.setEnabled(key, enabled));
  }
  scheduleDeletion(key: CloudKeyRef, windowDays: number): ReturnType<KeystoreConnector["scheduleDeletion"]> {
    return this.#use((c) => c.scheduleDeletion(key, windowDays));
  }
  describe(key: CloudKeyRef): Promise<CloudKeyView> {
    return this.#use((c) => c.describe(key));
  }
  resolveName(cloudName: string): Promise<CloudKeyRef | undefined> {
    return this.#use((c) => c.resolveName(cloudName));
  }
  findByRequestId(requestId: string): Promise<CloudKeyRef[]> {
    return this.#use((c) => c.findByRequestId(requestId));
  }

  close(): void {
    this.#closed = true;
    void this.#impl?.then((c) => c.close(), () => undefined);
  }

  async #use<T>(fn: (c: KeystoreConnector) => Promise<T>): Promise<T> {
    if (this.#closed) throw new Error("the PKCS#11 token connector is closed");
    this.#impl ??= loadImpl().then((m) => m.createTokenConnector(this.settings, this.policy, this.credentials));
    return fn(await this.#impl);
  }
}

export const pkcs11TokenFactory: ConnectorFactory = {
  type: "PKCS11",
  credentialFields: PKCS11_CREDENTIAL_FIELDS,
  validate: (settings: ConnectorSettings, credentials: ConnectorCredentials | undefined) => validatePkcs11Settings(settings, credentials),
  create: (settings: ConnectorSettings, credentials: ConnectorCredentials, policy: CallPolicy): KeystoreConnector => new Pkcs11TokenKeystore(compilePkcs11Settings(settings), policy, credentials),
};
