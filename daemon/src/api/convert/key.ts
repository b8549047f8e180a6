/** Proto ↔ domain conversion for keys. Only api/convert and provider/src/plugin touch generated types. */
import { Key as PbKey, KeyAlgorithm as PbAlg, KeyState as PbState } from "../../../../protos/gen/mcko/v1/key.js";
import type { Duration } from "../../../../protos/gen/google/protobuf/duration.js";
import { KEY_ALGORITHMS, type KeyAlgorithm } from "../../hsm/hsm.js";
import { KEY_STATES, type KeyState } from "../../core/key-state.js";
import type { Key } from "../../core/keys.js";

export function algorithmFromProto(v: PbAlg): KeyAlgorithm | undefined {
  const name = PbAlg[v] as string | undefined;
  if (!name || !name.startsWith("KEY_ALGORITHM_")) return undefined;
  const short = name.slice("KEY_ALGORITHM_".length);
  return (KEY_ALGORITHMS as readonly string[]).includes(short) ? (short as KeyAlgorithm) : undefined;
}

export function algorithmToProto(a: KeyAlgorithm): PbAlg {
  return PbAlg[`KEY_ALGORITHM_${a}` as keyof typeof PbAlg] as PbAlg;
}

export function stateFromProto(v: PbState): KeyState | undefined {
  const name = PbState[v] as string | undefined;
  if (!name || !name.startsWith("KEY_STATE_")) return undefined;
  const short = name.slice("KEY_STATE_".length);
  return (KEY_STATES as readonly string[]).includes(short) ? (short as KeyState) : undefined;
}

export function stateToProto(s: KeyState): PbState {
  return PbState[`KEY_STATE_${s}` as keyof typeof PbState] as PbState;
}

export const ALGORITHM_NAMES = KEY_ALGORITHMS.join(", ");
export const STATE_NAMES = KEY_STATES.join(", ");

export function durationSeconds(d: Duration): number {
  return Number(d.seconds) + d.nanos / 1e9;
}

export function keyToProto(k: Key): PbKey {
  return {
    name: k.name,
    algorithm: algorithmToProto(k.algorithm),
    state: stateToProto(k.state),
    versions: k.versions.map((v) => ({
      versionNumber: v.number,
      kcv: k.state === "DESTROYED" || k.state === "DESTROYED_COMPROMISED" ? "" : v.kcv,
      kcvMethod: v.kcvMethod,
      createTime: v.createTime,
      publicKey: v.publicKey ?? Buffer.alloc(0),
      destroyTime: v.destroyTime,
    })),
    primaryVersion: k.primaryVersion,
    activationTime: k.activationTime,
    deactivationTime: k.deactivationTime,
    rotationPeriod: k.rotationPeriodSeconds ? { seconds: BigInt(k.rotationPeriodSeconds), nanos: 0 } : undefined,
    nextRotationTime: k.nextRotationTime,
    labels: { ...k.labels },
    createTime: k.createTime,
    updateTime: k.updateTime,
    etag: k.etag,
    protectionLevel: k.protectionLevel,
    compromiseTime: k.compromiseTime,
    destroyTime: k.destroyTime,
  };
}
