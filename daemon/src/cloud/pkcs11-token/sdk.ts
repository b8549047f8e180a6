/**
 * The narrow surface of pkcs11js the PKCS#11 token connector uses: a lazily opened connection to one token (library
 * loaded through the process-wide module registry, slot found by token label, a few sessions, user login) and
 * the handful of session calls the connector makes, bound to a borrowed session.
 *
 * The library is shared through `hsm/pkcs11/module.ts`, the one registry of loaded PKCS#11 libraries in the
 * process: when the target module is also the daemon's own HSM module (SoftHSM2 in tests), it is loaded and
 * `C_Initialize`d (with CKF_OS_LOCKING_OK) once, and the last user finalises it. A second `C_Initialize` of one
 * library in one process fails, and a `C_Finalize` by one user would pull the library from under the other.
 * Logins are per token and per process in PKCS#11; the registry shares them and refuses a second PIN.
 */
import pkcs11js from "pkcs11js";
import { acquireModule, findSlotByTokenLabel, login, logoutUser, openSession, type Handle, type Pkcs11, type Pkcs11Module } from "../../hsm/pkcs11/module.js";
import { SessionPool } from "../../hsm/pkcs11/session-pool.js";
import { Secret } from "../../util/secret.js";
import { isConnectionLost } from "./errors.js";

export type { Handle };
export type Template = pkcs11js.Template;
export type Mechanism = pkcs11js.Mechanism;

/** Sessions per connection: each connector call borrows one for its whole duration. */
const SESSIONS = 2;

export interface TokenDescription {
  readonly label: string;
  readonly manufacturer: string;
  readonly model: string;
  readonly serial: string;
}

/** pkcs11js calls bound to one borrowed session. Handles are valid only inside the `withSession` callback. */
export interface TokenSession {
  describeToken(): TokenDescription;
  mechanisms(): ReadonlySet<number>;
  find(template: Template, max?: number): Handle[];
  getAttributes(handle: Handle, types: readonly number[]): pkcs11js.Attribute[];
  setAttributes(handle: Handle, template: Template): void;
  destroy(handle: Handle): void;
  createObject(template: Template): Handle;
  generateKeyPair(mechanism: Mechanism, publicTemplate: Template, privateTemplate: Template): Promise<{ publicKey: Handle; privateKey: Handle }>;
  unwrapKey(mechanism: Mechanism, unwrappingKey: Handle, wrapped: Buffer, template: Template): Promise<Handle>;
  /** C_UnwrapKey on the calling thread: for token objects, which are created from one thread only (token-connector.ts). */
  unwrapKeySync(mechanism: Mechanism, unwrappingKey: Handle, wrapped: Buffer, template: Template): Handle;
}

export interface Pkcs11TokenApi {
  /** Connects if needed and runs `fn` with a session of its own; a lost token drops the connection afterwards. */
  withSession<T>(fn: (session: TokenSession) => Promise<T>): Promise<T>;
  /** Closes the sessions (after running calls finish), ends the login and releases the library. */
  close(): void;
}

interface Connection {
  readonly mod: Pkcs11Module;
  readonly slot: Handle;
  readonly pool: SessionPool;
  closed: boolean;
}

export function createPkcs11TokenApi(options: { modulePath: string; tokenLabel: string; pin: string }): Pkcs11TokenApi {
  let current: Promise<Connection> | undefined;
  let closed = false;

  const connect = async (): Promise<Connection> => {
    const mod = acquireModule(options.modulePath);
    const sessions: Handle[] = [];
    let slot: Handle | undefined;
    let loggedIn = false;
    try {
      slot = findSlotByTokenLabel(mod, options.tokenLabel);
      for (let i = 0; i < SESSIONS; i++) sessions.push(openSession(mod, slot));
      // pkcs11js takes the PIN as a string; the Secret only carries it to the registry's keyed digest and C_Login.
      const pin = Secret.copyOf(Buffer.from(options.pin, "utf8"));
      try {
        login(mod, slot, sessions[0]!, pin, options.tokenLabel);
      } finally {
        pin.dispose();
      }
      loggedIn = true;
      return { mod, slot, pool: new SessionPool(mod.pkcs11, sessions), closed: false };
    } catch (e) {
      for (const s of sessions) {
        try {
          mod.pkcs11.C_CloseSession(s);
        } catch {
          // gone already
        }
      }
      if (loggedIn && slot !== undefined) logoutUser(mod, slot);
      mod.release();
      throw e;
    }
  };

  const disconnect = (conn: Connection): void => {
    if (conn.closed) return;
    conn.closed = true;
    void conn.pool.close().finally(() => {
      logoutUser(conn.mod, conn.slot);
      conn.mod.release();
    });
  };

  const open = (): Promise<Connection> => {
    if (closed) return Promise.reject(new Error("the PKCS#11 token connector is closed"));
    if (current === undefined) {
      const p = connect();
      current = p;
      p.catch(() => {
        if (current === p) current = undefined;
      });
    }
    return current;
  };

  return {
    async withSession<T>(fn: (session: TokenSession) => Promise<T>): Promise<T> {
      const conn = await open();
      try {
        return await conn.pool.use((s) => fn(bind(conn.mod.pkcs11, conn.slot, s)));
      } catch (e) {
        if (isConnectionLost(e) && current !== undefined && (await current.catch(() => undefined)) === conn) {
          current = undefined;
          disconnect(conn);
        }
        throw e;
      }
    },
    close(): void {
      if (closed) return;
      closed = true;
      const p = current;
      current = undefined;
      void p?.then(disconnect, () => undefined);
    },
  };
}

const text = (s: string) => s.replace(/[ \0]+$/, "");

function bind(pk: Pkcs11, slot: Handle, s: Handle): TokenSession {
  return {
    describeToken() {
      const info = pk.C_GetTokenInfo(slot);
      return { label: text(info.label), manufacturer: text(info.manufacturerID), model: text(info.model), serial: text(info.serialNumber) };
    },
    mechanisms: () => new Set(pk.C_GetMechanismList(slot)),
    find(template, max = 1000) {
      pk.C_FindObjectsInit(s, template);
      try {
        return pk.C_FindObjects(s, max);
      } finally {
        pk.C_FindObjectsFinal(s);
      }
    },
    getAttributes: (handle, types) => pk.C_GetAttributeValue(s, handle, types.map((type) => ({ type }))),
    setAttributes: (handle, template) => void pk.C_SetAttributeValue(s, handle, template),
    destroy: (handle) => pk.C_DestroyObject(s, handle),
    createObject: (template) => pk.C_CreateObject(s, template),
    generateKeyPair: (mechanism, publicTemplate, privateTemplate) => pk.C_GenerateKeyPairAsync(s, mechanism, publicTemplate, privateTemplate),
    unwrapKey: (mechanism, key, wrapped, template) => pk.C_UnwrapKeyAsync(s, mechanism, key, wrapped, template),
    unwrapKeySync: (mechanism, key, wrapped, template) => pk.C_UnwrapKey(s, mechanism, key, wrapped, template),
  };
}
