/** Our murmur2 partitioning against kafkajs's default partitioner, which the Java client matches. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { Partitioners } from "kafkajs";
import { keyPartition, murmur2OfKey } from "../../../connectors/kafka/murmur2.js";
import { namedPartitioner } from "../../../connectors/kafka/send-chunks.js";

function kafkajsPartition(key: string | Buffer, partitions: number): number {
  const partitionMetadata = Array.from({ length: partitions }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
  return Partitioners.DefaultPartitioner()({ topic: "t", partitionMetadata, message: { key, value: null } });
}

test("keys of every length mod 4, text and bytes, land where kafkajs puts them", () => {
  const keys: Array<string | Buffer> = ["", "a", "ab", "abc", "abcd", "k17", "user-42", "ключ", "键值", "🙂x", "x".repeat(85), "é".repeat(200)];
  for (let n = 0; n < 300; n++) keys.push(randomBytes(n % 40), randomBytes(n % 7).toString("hex"));
  for (const key of keys) {
    for (const partitions of [1, 3, 4, 7, 12, 128]) {
      assert.equal(keyPartition(key, partitions), kafkajsPartition(key, partitions), `key ${JSON.stringify(key.toString())} over ${partitions}`);
    }
  }
});

test("the Java client's murmur2 of known keys", () => {
  // Values from org.apache.kafka.common.utils.UtilsTest#testMurmur2.
  const cases: Array<[string, number]> = [
    ["21", -973932308],
    ["foobar", -790332482],
    ["a-little-bit-long-string", -985981536],
    ["a-little-bit-longer-string", -1486304829],
    ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
  ];
  for (const [key, hash] of cases) assert.equal(murmur2OfKey(key), hash, key);
  assert.equal(murmur2OfKey(Buffer.from([97, 98, 99])), murmur2OfKey("abc"));
});

test("the named partitioner keeps a message's partition and hashes one without", () => {
  const partitionMetadata = Array.from({ length: 4 }, (_, partitionId) => ({ partitionId, leader: 0, partitionErrorCode: 0, replicas: [], isr: [] }));
  const partitioner = namedPartitioner();
  assert.equal(partitioner({ topic: "t", partitionMetadata, message: { key: "k1", value: null, partition: 3 } }), 3);
  assert.equal(partitioner({ topic: "t", partitionMetadata, message: { key: "k1", value: null } }), keyPartition("k1", 4));
});
