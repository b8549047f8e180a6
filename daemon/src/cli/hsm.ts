/**
 * `mcko hsm rotate-master`: starts a master-key rotation (or attaches to the one in progress) and shows its
 * progress until the old master key is destroyed. The daemon does the work in the background; interrupting this
 * command does not stop it (`--no-wait` returns at once).
 */
import * as grpc from "@grpc/grpc-js";
import cliProgress from "cli-progress";
import type { Command } from "commander";
import type { Operation } from "../../../protos/gen/google/longrunning/operations.js";
import { MasterKeyRotation, MasterKeyServiceClient, masterKeyRotationStateToJSON } from "../../../protos/gen/mcko/v1/master_key_service.js";
import { rotationOfOperation } from "../api/convert/master-key.js";
import { call, decodeError } from "./client.js";
import type { ClientConnection } from "./client-config.js";
import { printJson } from "./output.js";

export interface HsmCommandDeps {
  readonly connection: () => ClientConnection;
  readonly json: () => boolean;
}

const POLL_INTERVAL_MS = 500;

export function addHsmCommands(program: Command, deps: HsmCommandDeps): void {
  const hsm = program.command("hsm").description("the HSM master key");
  hsm
    .command("rotate-master")
    .description("make a new master key, re-wrap every key under it in the background and destroy the old one")
    .option("--no-wait", "return once the rotation has started")
    .action(async (o: { wait: boolean }) => {
      const conn = deps.connection();
      const creds = grpc.credentials.createSsl(conn.caPem, conn.keyPem, conn.certPem);
      const client = new MasterKeyServiceClient(conn.address, creds, { "grpc.service_config_disable_resolution": 1 });
      try {
        let op: Operation;
        try {
          op = (await call(client.rotateMasterKey, client, {})).operation!;
        } catch (e) {
          const d = decodeError(e);
          const name = d.reason === "MASTER_KEY_ROTATION_IN_PROGRESS" ? d.metadata?.operation : undefined;
          if (!name) throw e;
          process.stderr.write(`a master key rotation is already running: ${name}; following it\n`);
          op = (await call(client.getMasterKeyRotation, client, { name })).operation!;
        }
        const bar = deps.json() ? undefined : new cliProgress.SingleBar(
          { format: "re-wrapping [{bar}] {value}/{total} keys | {state}", stream: process.stderr, noTTYOutput: true, notTTYSchedule: 1000, hideCursor: true },
          cliProgress.Presets.shades_classic,
        );
        let r = rotationOfOperation(op);
        bar?.start(Number(r?.keysTotal ?? 0n), Number(r?.keysDone ?? 0n), { state: stateName(r) });
        while (o.wait && !op.done) {
          await new Promise((res) => setTimeout(res, POLL_INTERVAL_MS));
          op = (await call(client.getMasterKeyRotation, client, { name: op.name })).operation!;
          r = rotationOfOperation(op);
          bar?.setTotal(Number(r?.keysTotal ?? 0n));
          bar?.update(Number(r?.keysDone ?? 0n), { state: stateName(r) });
        }
        bar?.stop();
        if (deps.json()) return printJson({ operation: op.name, done: op.done, rotation: r ? MasterKeyRotation.toJSON(r) : null });
        if (!r) return;
        if (op.done) {
          process.stdout.write(
            `master key rotated: KCV ${r.oldMasterKcv} -> ${r.newMasterKcv}; ${r.keysDone} keys, ${r.blobsRewrapped} blobs re-wrapped; old master destroyed (${op.name})\n`,
          );
        } else {
          process.stdout.write(`master key rotation ${op.name} started: KCV ${r.oldMasterKcv} -> ${r.newMasterKcv || "(creating)"}; it continues in the daemon\n`);
        }
      } finally {
        client.close();
      }
    });
}

function stateName(r: MasterKeyRotation | undefined): string {
  if (!r) return "?";
  const s = masterKeyRotationStateToJSON(r.state).replace("MASTER_KEY_ROTATION_STATE_", "");
  return r.lastError ? `${s} (paused: ${r.lastError})` : s;
}
