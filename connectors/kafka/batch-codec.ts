/**
 * The encoding of a micro-batch between the shim and the stage activity: one gzip'd JSON array of
 * compact tuples. The workflow never opens it; it enters history as one binary payload, several
 * times smaller than the records as JSON.
 */
import { gunzipSync, gzipSync } from "node:zlib";
import type { ConsumedMessage } from "./client.js";

/** A source record inside a batch: bytes kept as UTF-8 text when they are valid UTF-8, else base64. */
export interface BatchRecord {
  offset: number;
  key: string | null;
  /** True when `key` holds base64 (the key bytes were not UTF-8). */
  keyBase64: boolean;
  value: string | null;
  /** True when `value` holds base64 (the value bytes were not UTF-8). */
  valueBase64: boolean;
  timestamp: string;
  headers: Record<string, string>;
}

type Tuple = [offset: number, key: string | null, value: string | null, timestamp: string, flags: number, headers?: Record<string, string>];

const KEY_B64 = 1;
const VALUE_B64 = 2;
const utf8 = new TextDecoder("utf-8", { fatal: true });

function text(buf: Buffer | null): [string | null, boolean] {
  if (buf === null) return [null, false];
  try {
    return [utf8.decode(buf), false];
  } catch {
    return [buf.toString("base64"), true];
  }
}

/** Encodes consumed messages (gzip level 1: fast, and JSON of similar records still shrinks several-fold). */
export function encodeBatch(messages: readonly ConsumedMessage[]): Uint8Array {
  const tuples = messages.map((m): Tuple => {
    const [key, keyB64] = text(m.key);
    const [value, valueB64] = text(m.value);
    const flags = (keyB64 ? KEY_B64 : 0) | (valueB64 ? VALUE_B64 : 0);
    const t: Tuple = [Number(m.offset), key, value, m.timestamp, flags];
    if (Object.keys(m.headers).length > 0) t.push(m.headers);
    return t;
  });
  const gz = gzipSync(JSON.stringify(tuples), { level: 1 });
  return new Uint8Array(gz.buffer, gz.byteOffset, gz.byteLength);
}

/** Decodes a batch made by `encodeBatch`. */
export function decodeBatch(bytes: Uint8Array): BatchRecord[] {
  const tuples = JSON.parse(gunzipSync(bytes).toString("utf8")) as Tuple[];
  return tuples.map(([offset, key, value, timestamp, flags, headers]) => ({
    offset,
    key,
    keyBase64: (flags & KEY_B64) !== 0,
    value,
    valueBase64: (flags & VALUE_B64) !== 0,
    timestamp,
    headers: headers ?? {},
  }));
}

/** Bytes of keys and values of consumed messages (what batch limits count). */
export function messageBytes(m: ConsumedMessage): number {
  return (m.key?.length ?? 0) + (m.value?.length ?? 0);
}
