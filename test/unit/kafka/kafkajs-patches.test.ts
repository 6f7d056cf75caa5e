/**
 * Our fixes to kafkajs 2.2.4 (`patches/kafkajs+2.2.4.patch`, applied by patch-package at install):
 * they are applied, and what kafkajs encodes with them decodes with kafkajs' own decoders to what
 * was sent. Varints are checked against a zig-zag LEB128 written here, not kafkajs'.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";

const require = createRequire(import.meta.url);

interface EncoderLike {
  writeVarInt(v: number): EncoderLike;
  writeInt32(v: number): EncoderLike;
  buffer: Buffer;
}
interface DecoderLike {
  readVarInt(): number;
  readString(): string | null;
  readInt16(): number;
  readInt32(): number;
}
const Encoder = require("kafkajs/src/protocol/encoder") as new (size?: number) => EncoderLike;
const Decoder = require("kafkajs/src/protocol/decoder") as new (b: Buffer) => DecoderLike;
const decodeRecordBatch = require("kafkajs/src/protocol/recordBatch/v0/decoder") as (d: DecoderLike) => Promise<{
  firstTimestamp: string;
  maxTimestamp: string;
  records: Array<{ key: Buffer | null; value: Buffer | null; timestamp: string; headers: Record<string, Buffer> }>;
}>;
const produceV3 = require("kafkajs/src/protocol/requests/produce/v3/request") as (args: unknown) => { encode(): Promise<EncoderLike> };
const groupMessagesPerPartition = require("kafkajs/src/producer/groupMessagesPerPartition") as (args: {
  topic: string;
  partitionMetadata: unknown[];
  messages: Array<{ value: string; partition: number }>;
  partitioner: (a: { message: { partition: number } }) => number;
}) => Record<string, Array<{ value: string }>>;
/** A fetched record as kafkajs' consumer filters it: control records are among them until then. */
interface FetchedLike {
  offset: string;
  key: Buffer | null;
  value: string;
  batchContext: { producerId: string; inTransaction: boolean };
}
const filterAbortedMessages = require("kafkajs/src/consumer/filterAbortedMessages") as (args: {
  messages: FetchedLike[];
  abortedTransactions: Array<{ producerId: string; firstOffset: string }>;
}) => FetchedLike[];

/** Zig-zag, then LEB128: the Kafka protocol's varint. */
function varint(n: number): number[] {
  let v = ((n << 1) ^ (n >> 31)) >>> 0;
  const out: number[] = [];
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v >>>= 7;
  }
  out.push(v);
  return out;
}

test("the patch is applied to the installed kafkajs", () => {
  const source = (path: string) => readFileSync(require.resolve(`kafkajs/src/${path}`), "utf8");
  assert.doesNotMatch(
    source("producer/groupMessagesPerPartition.js"),
    /\[\.\.\.current, message\]/,
    "groupMessagesPerPartition still copies per message: run npm ci (postinstall: patch-package)",
  );
  assert.doesNotMatch(source("protocol/requests/produce/v3/request.js"), /\.sort\(\)/, "the produce request still sorts timestamps as strings");
  assert.doesNotMatch(
    source("protocol/encoder.js"),
    /Buffer\.from\(byteArray\)\)\s*\n\s*return this\s*\n\s*}\s*\n\s*\n\s*writeVarLong/,
    "writeUVarInt still allocates a Buffer per varint",
  );
  assert.match(source("consumer/filterAbortedMessages.js"), /\.sort\(/, "read_committed still takes the aborted transactions as sorted");
});

test("varints of every length, written after other fields and past the first buffer's end", () => {
  const values = [0, 1, -1, 2, -2, 63, -64, 64, -65, 127, 128, 300, 8191, 8192, 16383, 16384, 1_048_575, 1_048_576, 2 ** 27, 2 ** 31 - 1, -(2 ** 31)];
  const encoder = new Encoder(1);
  const expected: number[] = [];
  for (let round = 0; round < 40; round++) {
    for (const v of values) {
      encoder.writeVarInt(v);
      expected.push(...varint(v));
    }
    encoder.writeInt32(round);
    expected.push(0, 0, 0, round);
  }
  assert.deepEqual([...encoder.buffer], expected);
  const decoder = new Decoder(encoder.buffer);
  for (let round = 0; round < 40; round++) {
    for (const v of values) assert.equal(decoder.readVarInt(), v);
    assert.equal(decoder.readInt32(), round);
  }
});

test("grouping by partition keeps each partition's order", () => {
  const messages = Array.from({ length: 5_000 }, (_, i) => ({ value: `m${i}`, partition: (i * 7) % 3 }));
  const grouped = groupMessagesPerPartition({ topic: "t", partitionMetadata: [{}, {}, {}], messages, partitioner: ({ message }) => message.partition });
  assert.deepEqual(Object.keys(grouped).sort(), ["0", "1", "2"]);
  for (const [partition, list] of Object.entries(grouped))
    assert.deepEqual(
      list.map((m) => m.value),
      messages.filter((m) => m.partition === Number(partition)).map((m) => m.value),
    );
});

test("a produce request's record batch decodes to what was sent: keys, values, headers, timestamps", async () => {
  // Timestamps of different lengths as strings (kafkajs' own type): the first is the least by number, not by text.
  const timestamps = ["1733300000123", "999999999999", "1733300000999", "1733300000005"];
  const messages = Array.from({ length: 300 }, (_, i) => ({
    key: i % 5 === 0 ? null : Buffer.from(`k${i}`),
    value: i % 11 === 0 ? null : Buffer.from(`value ${i} ${"é".repeat(i % 90)}`),
    headers: i % 2 === 0 ? { "sage-lineage": `p0:${i}`, other: Buffer.from([i % 256]) } : undefined,
    timestamp: timestamps[i % timestamps.length],
  }));
  const request = produceV3({
    acks: -1,
    timeout: 30_000,
    transactionalId: "tx",
    topicData: [{ topic: "out", partitions: [{ partition: 3, firstSequence: 0, messages }] }],
  });
  const decoder = new Decoder((await request.encode()).buffer);
  assert.equal(decoder.readString(), "tx");
  assert.equal(decoder.readInt16(), -1);
  assert.equal(decoder.readInt32(), 30_000);
  assert.equal(decoder.readInt32(), 1, "one topic");
  assert.equal(decoder.readString(), "out");
  assert.equal(decoder.readInt32(), 1, "one partition");
  assert.equal(decoder.readInt32(), 3);
  decoder.readInt32(); // the record set's size
  const batch = await decodeRecordBatch(decoder);
  assert.equal(batch.firstTimestamp, "999999999999");
  assert.equal(batch.maxTimestamp, "1733300000999");
  assert.equal(batch.records.length, messages.length);
  batch.records.forEach((r, i) => {
    const m = messages[i]!;
    assert.deepEqual(r.key, m.key, `key ${i}`);
    assert.deepEqual(r.value, m.value, `value ${i}`);
    assert.equal(r.timestamp, m.timestamp, `timestamp ${i}`);
    const headers = Object.fromEntries(Object.entries(r.headers).map(([k, v]) => [k, v.toString("latin1")]));
    const sent = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, Buffer.from(v).toString("latin1")]));
    assert.deepEqual(headers, sent, `headers ${i}`);
  });
});

test("read_committed drops every aborted transaction, listed in the order they ended, and keeps the rest", () => {
  // Offsets 0-9 on one partition: producer 1 and 2 interleave and abort in the other order (2 first),
  // producer 3 commits between them, then producer 1 commits a second transaction.
  const ABORT = Buffer.from([0, 0, 0, 0]);
  const COMMIT = Buffer.from([0, 0, 0, 1]);
  const at = (offset: number, producerId: number, value: string, key: Buffer | null = null): FetchedLike => ({
    offset: String(offset),
    key,
    value,
    batchContext: { producerId: String(producerId), inTransaction: true },
  });
  const messages = [
    at(0, 1, "p1 aborted"),
    at(1, 2, "p2 aborted"),
    at(2, 3, "p3 committed"),
    at(3, 1, "p1 aborted too"),
    at(4, 3, "", COMMIT),
    at(5, 2, "", ABORT),
    at(6, 1, "", ABORT),
    at(7, 1, "p1 committed"),
    at(8, 1, "", COMMIT),
    at(9, 4, "p4 aborted"),
  ];
  const kept = filterAbortedMessages({
    messages,
    abortedTransactions: [
      { producerId: "2", firstOffset: "1" },
      { producerId: "1", firstOffset: "0" },
      { producerId: "4", firstOffset: "9" },
    ],
  });
  assert.deepEqual(
    kept.filter((m) => m.value !== "").map((m) => m.value),
    ["p3 committed", "p1 committed"],
  );
});
