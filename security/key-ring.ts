/**
 * The encryption keys of `security.encryption`: read from a file or an environment variable, one
 * `key-id=<base64 of 32 bytes>` entry per line (or comma), checked once. The active key encrypts;
 * every listed key decrypts, so a rotation adds a new key in front and keeps the old ones listed
 * until no history needs them. Messages name key ids and where they came from, never key bytes.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { createSecretKey, type KeyObject } from "node:crypto";
import type { SageConfig } from "../core/config/schema.js";
import { EncryptionKeyError } from "./errors.js";

/** One AES-256 key and where it was read. */
export interface EncryptionKey {
  readonly id: string;
  readonly key: KeyObject;
  /** `file /etc/sage/keys, line 2`, `environment variable SAGE_KEYS, entry 1`. */
  readonly origin: string;
}

/** The loaded keys: the one that encrypts, and every one that decrypts, by id. */
export interface KeyRing {
  readonly active: EncryptionKey;
  readonly keys: ReadonlyMap<string, EncryptionKey>;
  /** Where the keys came from: `file /etc/sage/keys` or `environment variable SAGE_KEYS`. */
  readonly source: string;
}

/** Bytes of an AES-256 key. */
const KEY_BYTES = 32;
const KEY_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const BASE64 = /^[A-Za-z0-9+/_-]+={0,2}$/;

/** One `id=key` entry; `where` names it for errors (its value is never repeated). */
function parseEntry(entry: string, where: string): { id: string; key: KeyObject } {
  const eq = entry.indexOf("=");
  const id = eq > 0 ? entry.slice(0, eq).trim() : "";
  const text = eq > 0 ? entry.slice(eq + 1).trim() : "";
  if (!KEY_ID.test(id) || !BASE64.test(text)) {
    throw new EncryptionKeyError(
      `${where} is not "key-id=<base64 key>" (a key id is letters, digits and . _ : -; a key is 32 random bytes in base64, e.g. from \`openssl rand -base64 32\`)`,
    );
  }
  const bytes = Buffer.from(text, "base64");
  if (bytes.length !== KEY_BYTES) throw new EncryptionKeyError(`encryption key "${id}" (${where}) is ${bytes.length} bytes; AES-256 needs ${KEY_BYTES}`);
  return { id, key: createSecretKey(bytes) };
}

/**
 * Parses a key list. Entries are separated by newlines or commas; blank lines and `#` comments are
 * skipped. The active key is `activeId`, else the first entry.
 */
export function parseKeyRing(text: string, source: string, activeId?: string): KeyRing {
  const keys = new Map<string, EncryptionKey>();
  const lines = text.split(/\r?\n/);
  const byLine = source.startsWith("file ");
  let n = 0;
  lines.forEach((line, i) => {
    for (const part of line.split(",")) {
      const entry = part.trim();
      if (entry === "" || entry.startsWith("#")) continue;
      n++;
      const origin = `${source}, ${byLine ? `line ${i + 1}` : `entry ${n}`}`;
      const { id, key } = parseEntry(entry, origin);
      const earlier = keys.get(id);
      if (earlier) throw new EncryptionKeyError(`encryption key id "${id}" is listed twice (${earlier.origin} and ${origin}); a key id names one key`);
      keys.set(id, { id, key, origin });
    }
  });
  if (keys.size === 0) throw new EncryptionKeyError(`${source} holds no encryption keys; add one "key-id=<base64 of 32 bytes>" entry`);
  const active = activeId === undefined ? keys.values().next().value! : keys.get(activeId);
  if (!active) {
    throw new EncryptionKeyError(`security.encryption.active-key = "${activeId}" is not among the keys of ${source} (${[...keys.keys()].join(", ")})`);
  }
  return { active, keys, source };
}

/**
 * Loads the keys `security.encryption` names, or returns null when it names none (encryption off).
 * Throws `EncryptionKeyError` when they cannot be used, so a client or worker fails before it starts.
 */
export function loadKeyRing(settings: SageConfig["security"]["encryption"], env: NodeJS.ProcessEnv = process.env): KeyRing | null {
  const file = settings["keys-file"];
  const variable = settings["keys-env"];
  const active = settings["active-key"];
  if (file && variable) throw new EncryptionKeyError("security.encryption names both keys-file and keys-env; name one place for the keys");
  if (!file && !variable) {
    if (active) throw new EncryptionKeyError(`security.encryption.active-key = "${active}" is set, but no keys-file or keys-env says where the keys are`);
    return null;
  }
  if (file) {
    const path = resolve(file);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      throw new EncryptionKeyError(
        `cannot read the encryption keys file "${path}" (security.encryption.keys-file): ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    return parseKeyRing(text, `file ${path}`, active);
  }
  const text = env[variable!];
  if (!text?.trim()) throw new EncryptionKeyError(`security.encryption.keys-env names the environment variable ${variable}, which is not set or empty`);
  return parseKeyRing(text, `environment variable ${variable}`, active);
}
