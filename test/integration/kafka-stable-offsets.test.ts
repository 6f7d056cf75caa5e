/**
 * The sink's progress marker is read with require_stable: while a transaction that commits offsets
 * for the group is open, the read waits (UNSTABLE_OFFSET_COMMIT) instead of answering the older
 * offset, which kafkajs's own fetchOffsets (OffsetFetch v4) does.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Kafka, logLevel } from "kafkajs";
import { fetchStableOffsets, KafkaProtocolError } from "../../connectors/kafka/stable-offsets.js";
import { createTopics, streamTopics, testBrokers, testKafka } from "../support/kafka.js";

test("committed offsets read with require_stable wait for an open transaction; kafkajs's read does not", async () => {
  const t = streamTopics("stable-offsets");
  await createTopics(testKafka(), t, 2);
  const brokers = [testBrokers()];
  const group = `${t.group}.marker`;
  const kafka = new Kafka({ brokers, clientId: "stable-test", logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ transactionalId: `${group}.txn`, idempotent: true, maxInFlightRequests: 1 });
  const admin = kafka.admin();
  await producer.connect();
  await admin.connect();
  const opts = { brokers, clientId: "stable-test" };
  try {
    assert.deepEqual(await fetchStableOffsets(opts, group, t.input, [0, 1]), new Map(), "nothing committed yet");

    const commitAt = async (offset: number, commit: boolean) => {
      const txn = await producer.transaction();
      await txn.send({ topic: t.output, messages: [{ key: "k", value: String(offset) }] });
      await txn.sendOffsets({ consumerGroupId: group, topics: [{ topic: t.input, partitions: [{ partition: 1, offset: String(offset) }] }] });
      if (commit) await txn.commit();
      return txn;
    };
    await commitAt(100, true);
    assert.deepEqual(await fetchStableOffsets(opts, group, t.input, [0, 1]), new Map([[1, { offset: 100n, metadata: null }]]));

    // A transaction moving the offset to 200 is open: the stable read is refused until it ends.
    const open = await commitAt(200, false);
    const plain = await admin.fetchOffsets({ groupId: group, topics: [t.input] });
    assert.equal(plain[0]!.partitions.find((p) => p.partition === 1)!.offset, "100", "kafkajs's read answers the older offset");
    await assert.rejects(
      fetchStableOffsets({ ...opts, deadlineMs: 1_000 }, group, t.input, [1]),
      (err: unknown) => err instanceof KafkaProtocolError && err.code === 88,
    );
    const waiting = fetchStableOffsets({ ...opts, deadlineMs: 20_000 }, group, t.input, [1]);
    await new Promise((r) => setTimeout(r, 300));
    await open.commit();
    assert.deepEqual(await waiting, new Map([[1, { offset: 200n, metadata: null }]]), "the read waited for the commit");
  } finally {
    await producer.disconnect();
    await admin.disconnect();
  }
});
