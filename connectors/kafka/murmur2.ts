/**
 * The partition of a keyed Kafka record: murmur2 of the key's bytes, positive, modulo the
 * partition count, as the Java client and kafkajs's default partitioner compute it. Written with
 * 32-bit integer arithmetic (`Math.imul`): kafkajs's own murmur2 builds several 64-bit `Long`
 * objects per 4 key bytes and a Buffer per key, which cost the sink ~1 µs per record (profiled in
 * bench/RESULTS.md). The result is the same: only the low 32 bits ever reach the answer.
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Scratch space for a string key's UTF-8 bytes (keys longer than this get a buffer of their own). */
const scratch = new Uint8Array(256);
const utf8 = new TextEncoder();

/** murmur2 (Kafka's variant, seed 0x9747b28c) of `data`, as a signed 32-bit integer. */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = (SEED ^ length) | 0;
  const tail = length & ~3;
  for (let i = 0; i < tail; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) h = Math.imul(h ^ data[tail]!, M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  return h ^ (h >>> 15);
}

/** murmur2 of a key given as text (its UTF-8 bytes) or as bytes. */
export function murmur2OfKey(key: string | Uint8Array): number {
  if (typeof key !== "string") return murmur2(key);
  // A UTF-8 character takes at most 3 bytes per UTF-16 unit, so a key this short always fits.
  if (key.length * 3 <= scratch.length) return murmur2(scratch, utf8.encodeInto(key, scratch).written);
  return murmur2(utf8.encode(key));
}

/** The partition of a record with key `key` among `partitions`, as the default partitioners pick it. */
export function keyPartition(key: string | Uint8Array, partitions: number): number {
  return (murmur2OfKey(key) & 0x7fffffff) % partitions;
}
