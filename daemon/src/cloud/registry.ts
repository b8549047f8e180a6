/** The connector registry: keystore type → factory. Built once in main.ts; targets without a connector are absent. */
import type { ConnectorFactory, KeystoreType } from "./connector.js";

export class ConnectorRegistry {
  readonly #factories = new Map<KeystoreType, ConnectorFactory>();
  constructor(factories: readonly ConnectorFactory[]) {
    for (const f of factories) this.#factories.set(f.type, f);
  }
  get(type: KeystoreType): ConnectorFactory | undefined {
    return this.#factories.get(type);
  }
  types(): KeystoreType[] {
    return [...this.#factories.keys()];
  }
}
