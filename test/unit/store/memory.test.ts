import test from "ava";
import { MemoryStore } from "../../../daemon/src/store/memory/memory-store.js";
import { storeContract } from "../../contract/store.js";

storeContract(test, async (t, options) => {
  const store = new MemoryStore(options);
  t.teardown(() => store.close());
  return store;
});
