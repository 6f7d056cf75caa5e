/**
 * Refuses encryption key bytes in configuration: `security.encryption` names where the keys are
 * (a file, an environment variable), never the keys themselves, because a config file is committed,
 * copied and logged. The message never repeats the value it refuses.
 */
import { ConfigError } from "../errors.js";

/** The settings `security.encryption` accepts; anything else there is taken for key material. */
const ENCRYPTION_SETTINGS = ["keys-file", "keys-env", "active-key"];

/** AES-256 keys as text: 32 bytes in base64, base64url or hex, or a `key-id=<key>` entry of a key list. */
const KEY_TEXT = [/^[A-Za-z0-9+/]{43}=?$/, /^[A-Za-z0-9_-]{43}$/, /^[0-9a-fA-F]{64}$/, /=\s*[A-Za-z0-9+/_-]{40,}/];

/**
 * True for a value of `name` that is a key rather than what the setting names (a path may look like
 * base64, but it starts with / . or ~ and does not end in base64's padding). An unknown name is key material when it is called so (`key`,
 * `keys`, `secret`, ...) or its value looks like a key; other unknown names are left to the schema's
 * "unknown config key" error, which does not repeat the value either.
 */
function holdsKey(name: string, value: unknown): boolean {
  const text = typeof value === "string" ? value.trim() : typeof value === "object" && value !== null ? JSON.stringify(value) : "";
  const keyLike = KEY_TEXT.some((re) => re.test(text));
  if (!ENCRYPTION_SETTINGS.includes(name)) return /^(keys?|secrets?|key-?material|(aes|encryption|data)-?keys?)$/i.test(name) || keyLike;
  if (name === "keys-file" && /^[/.~]/.test(text) && !text.endsWith("=")) return false;
  return keyLike;
}

/**
 * Throws a `ConfigError` when the raw configuration holds key material under `security.encryption`:
 * a key other than the three settings, or a setting whose value is a key rather than a path, a
 * variable name or a key id. `origins` say where each value came from.
 */
export function refuseKeyMaterial(raw: unknown, origins: ReadonlyMap<string, string>): void {
  const security = raw && typeof raw === "object" ? (raw as Record<string, unknown>).security : undefined;
  const encryption = security && typeof security === "object" ? (security as Record<string, unknown>).encryption : undefined;
  if (!encryption || typeof encryption !== "object" || Array.isArray(encryption)) return;
  const bad: string[] = [];
  for (const [name, value] of Object.entries(encryption)) {
    const key = `security.encryption.${name}`;
    if (holdsKey(name, value)) bad.push(`${key}${origins.has(key) ? ` (from ${origins.get(key)})` : ""}`);
  }
  if (bad.length === 0) return;
  throw new ConfigError(
    `key material does not belong in the configuration: ${bad.join(", ")}; ` +
      `put the keys (one "key-id=<base64 of 32 bytes>" per line) in a file named by security.encryption.keys-file, ` +
      `or in an environment variable named by security.encryption.keys-env, and only the key id in security.encryption.active-key`,
  );
}
