/** Proto ↔ domain conversion for master-key rotations: a rotation as a google.longrunning.Operation (AIP-151). */
import { Any } from "../../../../protos/gen/google/protobuf/any.js";
import type { Operation } from "../../../../protos/gen/google/longrunning/operations.js";
import { MasterKeyRotation as PbRotation, MasterKeyRotationState } from "../../../../protos/gen/mcko/v1/master_key_service.js";
import type { MasterKeyRotation, RotationState } from "../../core/master-key-rotation.js";

const STATES: Record<RotationState, MasterKeyRotationState> = {
  CREATING: MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_CREATING,
  REWRAPPING: MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_REWRAPPING,
  FINISHING: MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_FINISHING,
  DONE: MasterKeyRotationState.MASTER_KEY_ROTATION_STATE_DONE,
};

const TYPE_URL = "type.googleapis.com/mcko.v1.MasterKeyRotation";

export function rotationToProto(r: MasterKeyRotation): PbRotation {
  return {
    name: r.name,
    state: STATES[r.state],
    oldMasterKcv: r.oldMasterKcv,
    newMasterKcv: r.newMasterKcv,
    keysTotal: BigInt(r.keysTotal),
    keysDone: BigInt(r.keysDone),
    blobsRewrapped: BigInt(r.blobsRewrapped),
    requestedBy: r.requestedBy,
    createTime: r.createTime,
    updateTime: r.updateTime,
    ...(r.endTime ? { endTime: r.endTime } : {}),
    lastError: r.lastError,
  };
}

/** The operation of a rotation: metadata is always the progress; once done, the response is the same message. */
export function rotationOperation(r: MasterKeyRotation): Operation {
  const packed: Any = { typeUrl: TYPE_URL, value: Buffer.from(PbRotation.encode(rotationToProto(r)).finish()) };
  const done = r.state === "DONE";
  return { name: r.name, metadata: packed, done, ...(done ? { result: { $case: "response", value: packed } } : {}) };
}

/** Decodes an operation's MasterKeyRotation (metadata or response), for clients such as the CLI. */
export function rotationOfOperation(op: Operation): PbRotation | undefined {
  const any = op.result?.$case === "response" ? op.result.value : op.metadata;
  return any && any.typeUrl === TYPE_URL ? PbRotation.decode(any.value) : undefined;
}
