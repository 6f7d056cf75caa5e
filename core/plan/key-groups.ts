/**
 * Keys and key groups. A key is encoded once, as canonical JSON, so equal keys meet whatever object
 * they came in; its key group is a hash of that encoding modulo the plan's key groups, and a key
 * group belongs to one instance of a keyed operator: a contiguous range per instance (as in Flink),
 * so state can later move between parallelisms by key group.
 */
import { canonicalJson } from "./hash.js";

/** A key that has no stable encoding: the record goes to the dead letters with this reason. */
export class KeyEncodingError extends Error {}

function check(value: unknown, path: string): void {
  if (value === null || typeof value === "string" || typeof value === "boolean") return;
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new KeyEncodingError(`the key${path} is ${String(value)}, which has no stable encoding`);
    return;
  }
  if (value === undefined) throw new KeyEncodingError(`the key${path} is undefined`);
  if (typeof value !== "object") throw new KeyEncodingError(`the key${path} is a ${typeof value}, which has no stable encoding`);
  if (Array.isArray(value)) {
    value.forEach((v, i) => check(v, `${path}[${i}]`));
    return;
  }
  const proto = Object.getPrototypeOf(value) as unknown;
  if (proto !== Object.prototype && proto !== null) {
    const name = (value as { constructor?: { name?: string } }).constructor?.name ?? "object";
    throw new KeyEncodingError(`the key${path} is a ${name}, which has no stable encoding (use a string, a number or a plain object)`);
  }
  for (const [k, v] of Object.entries(value)) check(v, `${path}.${k}`);
}

/** The canonical encoding of `key` (JSON, so the string "1" and the number 1 differ); a `KeyEncodingError` when it has none. */
export function encodeKey(key: unknown): string {
  check(key, "");
  return canonicalJson(key);
}

/** The key group of an encoded key (FNV-1a over its UTF-16 code units). */
export function keyGroupOf(encoded: string, keyGroups: number): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < encoded.length; i++) {
    h ^= encoded.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % keyGroups;
}

/** The instance of an operator of `parallelism` that serves `keyGroup`. */
export function instanceOfKeyGroup(keyGroup: number, parallelism: number, keyGroups: number): number {
  return Math.floor((keyGroup * parallelism) / keyGroups);
}

/** The key groups `[from, to)` instance `index` of `parallelism` serves. */
export function keyGroupRange(index: number, parallelism: number, keyGroups: number): [number, number] {
  return [Math.ceil((index * keyGroups) / parallelism), Math.ceil(((index + 1) * keyGroups) / parallelism)];
}

/**
 * A record on a keyed edge: its encoded key and key group, its event time, and the value. Bounded
 * jobs add `w`, the largest event time before it in the unit that wrote it (for the watermark).
 * Streaming repartition records add `o`, their source partition (`topic:partition`), and with
 * lineage on `p`, their source offset (what a keyed output's input summary names).
 */
export interface KeyedRecord {
  k: string;
  g: number;
  t?: number;
  w?: number;
  o?: string;
  p?: number;
  v: unknown;
}
