/** Proto ↔ domain conversion for distributions. */
import { CloudKeyState, SyncState, type Distribution as PbDistribution } from "../../../../protos/gen/mcko/v1/distribution.js";
import type { CloudState, Distribution, SyncState as DomainSync } from "../../core/distributions.js";

const SYNC: Record<DomainSync, SyncState> = {
  PENDING: SyncState.SYNC_STATE_PENDING,
  IN_SYNC: SyncState.SYNC_STATE_IN_SYNC,
  DRIFTED: SyncState.SYNC_STATE_DRIFTED,
  FAILED: SyncState.SYNC_STATE_FAILED,
};
const CLOUD: Record<CloudState, CloudKeyState> = {
  ABSENT: CloudKeyState.CLOUD_KEY_STATE_ABSENT,
  ENABLED: CloudKeyState.CLOUD_KEY_STATE_ENABLED,
  DISABLED: CloudKeyState.CLOUD_KEY_STATE_DISABLED,
  DELETION_SCHEDULED: CloudKeyState.CLOUD_KEY_STATE_DELETION_SCHEDULED,
};

export function distributionToProto(d: Distribution): PbDistribution {
  return {
    name: d.name,
    keystore: d.keystoreName,
    cloudName: d.cloudName,
    cloudKeyId: d.cloudKeyId,
    cloudKeyUri: d.cloudKeyUri,
    cloudAlias: d.cloudAlias,
    desiredState: CLOUD[d.desired],
    observedState: CLOUD[d.observed],
    syncState: SYNC[d.sync],
    drift: [...d.drift],
    lastError: d.lastError,
    warnings: [...d.warnings],
    versions: d.versions.map((v) => ({ versionNumber: v.number, cloudKeyId: v.cloudKeyId, cloudVersionId: v.versionId, pushTime: v.pushTime })),
    requestId: d.requestId,
    softwareStep: d.softwareStep,
    createTime: d.createTime,
    updateTime: d.updateTime,
    lastSyncTime: d.lastSyncTime,
    etag: d.etag,
  };
}
