/**
 * The resume paths of a master-key rotation interrupted while the HSM made its new master, on SoftHSM2: a master
 * object the vault never recorded (C_GenerateKey landed, then the crash) is destroyed, not left on the token, and a
 * fresh one is made; without it the resume simply makes one. Serial: one token per test, one library per process.
 */
import test from "ava";
import { interruptedWhileCreating } from "../support/rotation-world.js";

test.serial("pkcs11: interrupted in CREATING after the token made the new master: the unrecorded master is destroyed, a new one made", (t) => interruptedWhileCreating(t, "pkcs11", true));
test.serial("pkcs11: interrupted in CREATING before the token made the new master: the resume makes it and finishes", (t) => interruptedWhileCreating(t, "pkcs11", false));
