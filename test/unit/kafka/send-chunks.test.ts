/**
 * How the kafkajs producers group a send: calls of one partition leader each, at most one chunk per
 * partition per call, each partition's chunks in order; and the partitioner that stops a call whose
 * partition kafkajs sees led by another broker than the call was grouped by.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { LeaderMovedError } from "../../../connectors/kafka/client.js";
import { kafkajsMessagesOf, leaderMovedIn, namedPartitioner, Partitioning, produceCalls, type SendChunk } from "../../../connectors/kafka/send-chunks.js";

function chunk(topic: string, partition: number, leader: number, values: string[]): SendChunk {
  return { topic, partition, leader, messages: values.map((v) => ({ key: null, value: Buffer.from(v) })), bytes: 64 * values.length };
}

test("a send's chunks go in one call per leader, a partition's chunks in calls one after another", () => {
  const calls = produceCalls([
    chunk("out", 0, 1, ["a"]),
    chunk("out", 1, 2, ["b"]),
    chunk("out", 2, 1, ["c"]),
    chunk("lineage", 0, 2, ["d"]),
    chunk("out", 0, 1, ["e"]),
    chunk("out", 3, 1, ["f"]),
  ]);
  const shape = calls.map((call) => call.map((c) => `${c.topic}/${c.partition}@${c.leader}:${c.messages.map((m) => String(m.value)).join("")}`));
  assert.deepEqual(shape, [["out/0@1:a", "out/2@1:c", "out/3@1:f"], ["out/1@2:b", "lineage/0@2:d"], ["out/0@1:e"]]);
  for (const call of calls) assert.equal(new Set(call.map((c) => c.leader)).size, 1);
});

test("chunks of one leader on one broker make one call", async () => {
  const partitioning = new Partitioning(async (topic) => (topic === "out" ? [7, 7, 7, 7] : [7]));
  const messages = Array.from({ length: 40 }, (_, i) => ({ topic: i % 5 === 0 ? "lineage" : "out", message: { key: `k${i}`, value: Buffer.from(String(i)) } }));
  const calls = produceCalls(await partitioning.chunks(messages));
  assert.equal(calls.length, 1);
  assert.equal(
    calls[0]!.reduce((n, c) => n + c.messages.length, 0),
    40,
  );
});

test("the partitioner stops a chunk whose partition kafkajs sees led by another broker", () => {
  const partitioner = namedPartitioner();
  const partitionMetadata = [0, 1].map((partitionId) => ({ partitionId, leader: partitionId === 1 ? 3 : 2, partitionErrorCode: 0, replicas: [], isr: [] }));
  const [first, second] = kafkajsMessagesOf(chunk("out", 1, 2, ["x", "y"]));
  assert.throws(
    () => partitioner({ topic: "out", partitionMetadata, message: first! }),
    // Not retriable, or kafkajs' retrier would retry the attempt as grouped instead of giving it back.
    (err: unknown) => err instanceof LeaderMovedError && !err.retriable && err.partition === 1 && err.expected === 2 && err.leaders.join() === "2,3",
  );
  // Only a chunk's first message is checked: its partition is the chunk's.
  assert.equal(partitioner({ topic: "out", partitionMetadata, message: second! }), 1);
  const [kept] = kafkajsMessagesOf(chunk("out", 0, 2, ["z"]));
  assert.equal(partitioner({ topic: "out", partitionMetadata, message: kept! }), 0);
});

test("a send regroups by the leaders kafkajs saw and sends the rest, nothing twice", async () => {
  const partitioning = new Partitioning(async () => [1, 1, 1, 1]);
  const messages = Array.from({ length: 8 }, (_, i) => ({ topic: "out", message: { key: null, value: Buffer.from(String(i)), partition: i % 4 } }));
  const sent: string[] = [];
  let attempts = 0;
  await partitioning.send(messages, async (call) => {
    attempts++;
    if (call.some((c) => c.partition === 2 && c.leader === 1))
      // As kafkajs' retrier wraps what it does not retry.
      throw Object.assign(new Error("non-retriable"), { cause: new LeaderMovedError("out", 2, 1, [1, 1, 5, 1]) });
    for (const c of call) for (const m of c.messages) sent.push(`${c.partition}@${c.leader}:${String(m.value)}`);
  });
  assert.equal(attempts, 3);
  assert.deepEqual(sent.sort(), ["0@1:0", "0@1:4", "1@1:1", "1@1:5", "2@5:2", "2@5:6", "3@1:3", "3@1:7"]);
  assert.ok(leaderMovedIn(new Error("x", { cause: new Error("y", { cause: new LeaderMovedError("t", 0, 1, [2]) }) })));
  assert.equal(leaderMovedIn(new Error("other")), null);
});
