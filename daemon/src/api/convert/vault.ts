/** Proto ↔ domain conversion for vaults. */
import type { Vault as PbVault } from "../../../../protos/gen/mcko/v1/vault.js";
import type { Vault } from "../../core/vaults.js";

export function vaultToProto(v: Vault): PbVault {
  return {
    name: v.name,
    displayName: v.displayName,
    description: v.description,
    createTime: v.createTime,
    updateTime: v.updateTime,
    etag: v.etag,
    keyCount: BigInt(v.keyCount),
  };
}
