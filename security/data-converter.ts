/**
 * The data converter every client and worker of a configuration uses: Temporal's default, plus the
 * encryption codec when `security.encryption` names keys, with failures' messages and stacks moved
 * into encrypted attributes (`encrypted-failures.cjs`). Record batches are gzip'd by the shim
 * before they become payloads, so encryption already runs on compressed bytes; a compressing codec
 * added later must come before this one in `payloadCodecs` (codecs encode in order), since
 * ciphertext does not compress.
 */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { DataConverter } from "@temporalio/common";
import type { SageConfig } from "../core/config/schema.js";
import { AesGcmCodec } from "./aes-gcm-codec.js";
import { loadKeyRing } from "./key-ring.js";

/** The failure converter module of encrypted jobs (loaded by path; workflow bundles include it). */
export const ENCRYPTED_FAILURES_PATH = resolve(dirname(fileURLToPath(import.meta.url)), "encrypted-failures.cjs");

/**
 * The data converter of `config`. Keys are read and checked here, so a client or worker whose keys
 * cannot be used fails before it connects or starts anything (`EncryptionKeyError`).
 */
export function dataConverterOf(config: SageConfig, env: NodeJS.ProcessEnv = process.env): DataConverter {
  const ring = loadKeyRing(config.security.encryption, env);
  return ring ? { payloadCodecs: [new AesGcmCodec(ring)], failureConverterPath: ENCRYPTED_FAILURES_PATH } : {};
}
