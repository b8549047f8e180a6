// Public surface of the AWS KMS emulator (see README.md).
export {
  DEFAULT_ACCESS_KEY_ID,
  DEFAULT_SECRET_ACCESS_KEY,
  startAwsKmsEmulator,
  type AwsKmsAdmin,
  type AwsKmsEmulator,
  type AwsKmsEmulatorOptions,
  type AwsKmsKeyView,
  type AwsKmsMaterialExport,
} from "./server.js";
export { decryptBlob, encodeEncryptionContext, encryptBlob, parseCiphertextBlob, type ParsedBlob } from "./ciphertext.js";
