/**
 * Writes and reads the audit log. Events of successful changes are committed by the core services in the same
 * store commit as the change (`event()` builds them); `recordFailure` commits events for denied or failed calls
 * on their own. Reading and verification go through the store's journal and the journal file itself, so a
 * verification sees exactly what is on disk.
 */
import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import type { KeyObject } from "node:crypto";
import type { Store } from "../../store/store.js";
import type { Clock } from "../clock.js";
import type { Principal } from "../authz.js";
import { UnavailableError } from "../errors.js";
import { parseAuditLine, toJournalEntry, verifyChain, type AuditEventInput, type AuditRecord, type ChainVerification } from "./chain.js";

/** Who is acting, through which method: every core call takes one, so every event names both. */
export interface Actor {
  readonly principal: Principal;
  /** Full gRPC method (`/mcko.v1.KeyService/CreateKey`) or a system action (`system/activate`). */
  readonly method: string;
}

export interface AuditLogDeps {
  readonly store: Store;
  readonly clock: Clock;
  /** The journal file the store appends to (read directly for verification). */
  readonly journalFile: string;
  readonly publicKey: KeyObject;
}

export class AuditLog {
  constructor(private readonly deps: AuditLogDeps) {}

  event(actor: Actor, resource: string, vault: string | null, details: Record<string, string> = {}, result = "OK", reason = ""): AuditEventInput {
    return {
      time: this.deps.clock.now().toISOString(),
      principal: actor.principal.subject,
      method: actor.method,
      resource,
      vault,
      result,
      reason,
      details,
    };
  }

  /** Commits events that go with no change (denials, failed calls). Fails with UNAVAILABLE if it cannot write. */
  async record(events: readonly AuditEventInput[]): Promise<void> {
    try {
      await this.deps.store.commit({ mutations: [], journal: events.map(toJournalEntry) });
    } catch (e) {
      throw new UnavailableError("AUDIT_WRITE_FAILED", "the audit log could not be written; the operation was not performed", {}, { cause: e });
    }
  }

  /** Records with seq in [fromSeq, fromSeq+limit) that match `keep`, scanning at most `scanLimit` records. */
  async read(fromSeq: number, limit: number, keep: (r: AuditRecord) => boolean, scanLimit = 50_000): Promise<{ records: AuditRecord[]; nextSeq: number | undefined }> {
    const head = await this.deps.store.journalHead();
    const out: AuditRecord[] = [];
    let seq = Math.max(1, fromSeq);
    let scanned = 0;
    while (seq <= head.seq && out.length < limit && scanned < scanLimit) {
      const batch = await this.deps.store.readJournal(seq, Math.min(1000, head.seq - seq + 1));
      if (batch.length === 0) break;
      for (const line of batch) {
        const rec = parseAuditLine(line);
        seq += 1;
        scanned += 1;
        if (rec && keep(rec)) {
          out.push(rec);
          if (out.length >= limit) break;
        }
      }
    }
    return { records: out, nextSeq: seq <= head.seq ? seq : undefined };
  }

  async verify(): Promise<ChainVerification> {
    const head = await this.deps.store.journalHead();
    return verifyJournalFile(this.deps.journalFile, head, this.deps.publicKey);
  }
}

export async function verifyJournalFile(file: string, head: Parameters<typeof verifyChain>[1], publicKey: KeyObject): Promise<ChainVerification> {
  const stream = createReadStream(file, { encoding: "utf8" });
  const lines = createInterface({ input: stream, crlfDelay: Infinity });
  try {
    return await verifyChain(lines, head, publicKey);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "ENOENT") return verifyChain([], head, publicKey);
    throw e;
  } finally {
    lines.close();
    stream.destroy();
  }
}
