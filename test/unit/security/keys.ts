/** Test keys for the security unit tests: fresh random AES-256 keys as key-list text. */
import { randomBytes } from "node:crypto";
import { parseKeyRing, type KeyRing } from "../../../security/key-ring.js";

/** A fresh random key in base64. */
export function newKey(): string {
  return randomBytes(32).toString("base64");
}

/** A key ring from `id -> base64 key` entries, as if read from `file /keys/<name>`. */
export function ringOf(entries: Record<string, string>, name = "test", active?: string): KeyRing {
  const text = Object.entries(entries)
    .map(([id, key]) => `${id}=${key}`)
    .join("\n");
  return parseKeyRing(text, `file /keys/${name}`, active);
}
