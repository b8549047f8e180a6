/** mcko.v1.MasterKeyService: master-key rotation as a long-running operation. Admin on `*` only. */
import type { MasterKeyServiceServer } from "../../../protos/gen/mcko/v1/master_key_service.js";
import { InvalidArgumentError } from "../core/errors.js";
import { parseRotationName, type MasterKeyRotationService } from "../core/master-key-rotation.js";
import { rotationOperation } from "./convert/master-key.js";
import { unary, type ApiDeps } from "./unary.js";

const SVC = "/mcko.v1.MasterKeyService/";

export function masterKeyServiceHandlers(deps: ApiDeps & { masterKeyRotation: MasterKeyRotationService }): MasterKeyServiceServer {
  return {
    rotateMasterKey: unary(deps, `${SVC}RotateMasterKey`, { mutating: true }, async (_req, ctx) => {
      ctx.resource = "masterKeyRotations";
      ctx.authorize("masterKey.rotate", "*");
      const rotation = await deps.masterKeyRotation.start(ctx.actor);
      return { operation: rotationOperation(rotation) };
    }),

    getMasterKeyRotation: unary(deps, `${SVC}GetMasterKeyRotation`, { mutating: false }, async (req, ctx) => {
      ctx.resource = req.name || "masterKeyRotations";
      ctx.authorize("masterKey.get", "*");
      const id = parseRotationName(req.name);
      if (id === undefined) throw new InvalidArgumentError([{ field: "name", description: "must be masterKeyRotations/{id} as returned by RotateMasterKey" }]);
      return { operation: rotationOperation(await deps.masterKeyRotation.get(id)) };
    }),
  };
}
