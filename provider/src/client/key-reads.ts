// Refresh reads of keys (mcko_key's ReadResource), served per vault from one ListKeys call instead of one GetKey per
// key. Terraform refreshes every resource of a configuration with its own ReadResource, ten at a time, so a
// configuration with 300 keys cost 300 daemon calls per plan.
//
// What a read returns is still the daemon's live state, as of a moment within this command:
// - The first read of a vault goes to GetKey (a configuration with one key never lists its vault). The second read of
//   the same vault lists it (one ListKeys page of up to 1,000 keys); the reads arriving while that call is out wait
//   for it.
// - A listing answers reads for at most SNAPSHOT_TTL_MS after it was *started*, and only while no write went through
//   this daemon client since it was started (DaemonClient.writes(); a write bumps the count when it starts and when it
//   ends). After that the next read lists again. So within a plan every key is at most a couple of seconds old —
//   about what the refresh of a large configuration takes anyway — and a key changed out of band before the command
//   started is always seen (drift shows as before): every Terraform command configures the provider anew, which
//   makes a new daemon client (provider.ts), and with it new, empty listings.
// - A key missing from a complete listing is gone (null), exactly as GetKey's NOT_FOUND. A vault of more than one
//   page is not listed again by this client: keys past the first page are read with GetKey.
// - If ListKeys fails (the caller may get keys but not list them, the vault is gone, the daemon is busy), this client
//   stops listing that vault and every read goes to GetKey, whose errors are the ones the resource already handles.
import type { Key } from "../../../protos/gen/mcko/v1/key.js";
import type { DaemonClient } from "./daemon-client.js";
import { isServiceError } from "./errors.js";
import { status as Code } from "@grpc/grpc-js";

/** How long a listing may answer reads, from the moment it was requested. */
export const SNAPSHOT_TTL_MS = 2_000;
/** ListKeys' largest page. */
const PAGE_SIZE = 1_000;

interface Listing {
  /** performance.now() when ListKeys was called. */
  readonly startedAt: number;
  /** DaemonClient.writes() when ListKeys was called. */
  readonly writes: number;
  /** Keys by resource name; undefined while the call is out or when it failed. */
  keys?: Map<string, Key>;
  /** True when the vault fits in one page: a name not in `keys` is then a key that does not exist. */
  complete?: boolean;
  /** The call has ended (well or not): no need to wait on `done`. */
  settled?: boolean;
  readonly done: Promise<void>;
}

interface VaultReads {
  reads: number;
  /** No more listings of this vault by this client (it failed, or the vault is larger than one page). */
  noListing: boolean;
  listing?: Listing;
}

const perClient = new WeakMap<DaemonClient, Map<string, VaultReads>>();

/**
 * Reads the key `name` (`vaults/{vault}/keys/{key}`): the key, or null when the daemon says it does not exist.
 * Other daemon errors reject as GetKey's would.
 */
export async function readKey(client: DaemonClient, name: string, signal?: AbortSignal, now: () => number = () => performance.now()): Promise<Key | null> {
  const vault = /^(vaults\/[^/]+)\/keys\/[^/]+$/.exec(name)?.[1];
  if (vault === undefined) return getKey(client, name, signal);
  let vaults = perClient.get(client);
  if (!vaults) perClient.set(client, (vaults = new Map()));
  let v = vaults.get(vault);
  if (!v) vaults.set(vault, (v = { reads: 0, noListing: false }));
  v.reads += 1;

  let listing = v.listing;
  if (listing && !fresh(client, listing, now())) listing = undefined;
  if (!listing && v.reads > 1 && !v.noListing) listing = v.listing = startListing(client, vault, v, now());
  if (!listing) return getKey(client, name, signal);
  // Waiting costs an abort listener (slow in Node's EventTarget); most reads find the listing already there.
  if (!listing.settled) await abortable(listing.done, signal);
  else if (signal?.aborted) throw signal.reason;
  if (listing.keys) {
    const key = listing.keys.get(name);
    if (key) return key;
    if (listing.complete) return null;
  }
  return getKey(client, name, signal);
}

function fresh(client: DaemonClient, l: Listing, t: number): boolean {
  return t - l.startedAt <= SNAPSHOT_TTL_MS && client.writes() === l.writes;
}

function startListing(client: DaemonClient, vault: string, v: VaultReads, t: number): Listing {
  const listing: { -readonly [K in keyof Listing]: Listing[K] } = { startedAt: t, writes: client.writes(), done: Promise.resolve() };
  listing.done = client
    .unary(client.keys.listKeys.bind(client.keys), { parent: vault, pageSize: PAGE_SIZE, pageToken: "", filter: "" })
    .then(
      (resp) => {
        listing.keys = new Map(resp.keys.map((k) => [k.name, k]));
        listing.complete = resp.nextPageToken === "";
        listing.settled = true;
        if (!listing.complete) v.noListing = true;
      },
      () => {
        listing.settled = true;
        v.noListing = true;
        if (v.listing === listing) v.listing = undefined;
      },
    );
  return listing;
}

async function getKey(client: DaemonClient, name: string, signal?: AbortSignal): Promise<Key | null> {
  try {
    const { key } = await client.unary(client.keys.getKey.bind(client.keys), { name }, signal);
    if (!key) throw new Error(`the daemon answered GetKey for ${name} without a key`);
    return key;
  } catch (err) {
    if (isServiceError(err) && err.code === Code.NOT_FOUND) return null;
    throw err;
  }
}

/** Waits for `p` (which never rejects) unless `signal` aborts first (StopProvider). */
function abortable(p: Promise<void>, signal?: AbortSignal): Promise<void> {
  if (!signal) return p;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    void p.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
