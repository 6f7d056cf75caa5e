/**
 * Both implementations of our Kafka client interface (`kafka.client`: kafkajs and confluent) against
 * the real broker, call by call: topics, keyed placement (the same partition as the Java client's
 * murmur2), transactions with their offsets, fencing by a newer producer, reading to the end, a
 * group consumer's pause and commit, and setting a group's offsets.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { GroupActiveError, TransactionError } from "../../connectors/kafka/client.js";
import { createConfluentClient } from "../../connectors/kafka/confluent-client.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { defaultPartitionOf } from "../../connectors/kafka/send-chunks.js";
import { streamTopics, testBrokers } from "../support/kafka.js";
import { until } from "../support/harness.js";

const CLIENTS: Record<string, () => KafkaClient> = {
  kafkajs: () => createKafkajsClient({ brokers: [testBrokers()], clientId: "sage-clients" }),
  confluent: () => createConfluentClient({ brokers: [testBrokers()], clientId: "sage-clients" }),
};

const text = (b: Buffer | null): string => b?.toString("utf8") ?? "";

for (const [name, make] of Object.entries(CLIENTS)) {
  describe(`kafka.client: ${name}`, () => {
    test("topics, keyed placement, plain sends and reading to the end", async () => {
      const kafka = make();
      const t = streamTopics(`clients-${name}`);
      const admin = await kafka.admin();
      try {
        assert.equal(await admin.ensureTopic(t.input, 3), true, "created");
        assert.equal(await admin.ensureTopic(t.input, 3), false, "exists already");
        const producer = await kafka.producer();
        const keys = Array.from({ length: 60 }, (_, i) => `key-${i}`);
        await producer.send(
          t.input,
          keys.map((k, i) => ({ key: k, value: `v${i}`, headers: { h: `x${i}` } })),
        );
        await producer.close();
        const offsets = await admin.partitionOffsets(t.input);
        assert.deepEqual(
          offsets.map((o) => o.partition),
          [0, 1, 2],
        );
        assert.equal(
          offsets.reduce((n, o) => n + Number(o.high) - Number(o.low), 0),
          60,
        );
        const all = await kafka.readAll(t.input, { idleTimeoutMs: 3_000 });
        assert.equal(all.length, 60);
        for (const m of all) {
          const i = Number(text(m.value).slice(1));
          assert.equal(text(m.key), keys[i]);
          assert.equal(m.headers.h, `x${i}`);
          assert.equal(m.partition, defaultPartitionOf(keys[i]!, 3), `key ${keys[i]} lands where murmur2 puts it`);
        }
        // The tail of partition 0 from its second record; partitions 1 and 2 whole.
        const tail = await kafka.readToEnd(t.input, [0, 1], new Map([[0, 1]]));
        const p0 = all.filter((m) => m.partition === 0).length;
        const p1 = all.filter((m) => m.partition === 1).length;
        assert.equal(tail.filter((m) => m.partition === 0).length, p0 - 1);
        assert.equal(tail.filter((m) => m.partition === 1).length, p1);
        assert.equal(tail.filter((m) => m.partition === 2).length, 0);
      } finally {
        await admin.deleteTopics([t.input]).catch(() => undefined);
        await admin.close();
      }
    });

    test("transactions: committed with their offsets, aborted unseen, an older producer fenced", async () => {
      const kafka = make();
      const t = streamTopics(`clients-txn-${name}`);
      const admin = await kafka.admin();
      const id = `${t.group}.txn`;
      const first = kafka.transactionalProducer(id);
      let second: ReturnType<KafkaClient["transactionalProducer"]> | null = null;
      try {
        // Offsets are committed for partitions of a topic that exists.
        await admin.ensureTopic(t.input, 2);
        await admin.ensureTopic(t.output, 2);
        const marker = (nextOffset: string) => ({ group: id, positions: [{ topic: t.input, partition: 1, nextOffset }] });
        const txn = await first.begin();
        await txn.send([
          { topic: t.output, message: { key: "a", value: "committed", partition: 0 } },
          { topic: t.output, message: { key: "b", value: "committed", partition: 1 } },
        ]);
        await txn.sendOffsets({ ...marker("42"), note: '{"u":1}' });
        await txn.commit();
        assert.deepEqual(await admin.committedOffsets(id, t.input, [0, 1]), new Map([[1, "42"]]));
        // The marker's note is committed with it, as the offset's metadata.
        assert.deepEqual(await admin.committedMarkers(id, t.input, [1]), new Map([[1, { offset: "42", metadata: '{"u":1}' }]]));

        const aborted = await first.begin();
        await aborted.send([{ topic: t.output, message: { key: "c", value: "aborted", partition: 0 } }]);
        await aborted.sendOffsets(marker("99"));
        await aborted.abort();
        assert.deepEqual(await admin.committedOffsets(id, t.input, [1]), new Map([[1, "42"]]));
        const seen = await kafka.readToEnd(t.output);
        assert.deepEqual(seen.map((m) => text(m.value)).sort(), ["committed", "committed"]);

        // A second producer with the id claims it: the first one's next transaction is refused as fenced.
        const late = await first.begin();
        second = kafka.transactionalProducer(id);
        const winner = await second.begin();
        await assert.rejects(
          (async () => {
            await late.send([{ topic: t.output, message: { key: "d", value: "zombie", partition: 0 } }]);
            await late.sendOffsets(marker("7"));
            await late.commit();
          })(),
          (err: unknown) => err instanceof TransactionError && err.fenced,
        );
        await winner.send([{ topic: t.output, message: { key: "e", value: "winner", partition: 1 } }]);
        await winner.sendOffsets(marker("50"));
        await winner.commit();
        assert.deepEqual(await admin.committedOffsets(id, t.input, [1]), new Map([[1, "50"]]));
        const after = await kafka.readToEnd(t.output);
        assert.deepEqual(after.map((m) => text(m.value)).sort(), ["committed", "committed", "winner"]);
      } finally {
        await first.close();
        await second?.close();
        await admin.deleteTopics([t.input, t.output]).catch(() => undefined);
        await admin.close();
      }
    });

    test("aborted transactions that interleave on a partition and end in the other order stay unseen", async () => {
      // Two units failing at once (a broker kill) leave this on a partition. The broker lists aborted
      // transactions in the order they ended: kafkajs 2.2.4 unpatched took the list as sorted by first
      // offset, and handed out the transaction that began first and ended last.
      const kafka = make();
      const t = streamTopics(`clients-interleaved-${name}`);
      const admin = await kafka.admin();
      const first = kafka.transactionalProducer(`${t.group}.first`);
      const second = kafka.transactionalProducer(`${t.group}.second`);
      const to = (value: string) => [{ topic: t.output, message: { key: null, value, partition: 0 } }];
      try {
        await admin.ensureTopic(t.output, 1);
        const a = await first.begin();
        await a.send(to("first aborted"));
        const b = await second.begin();
        await b.send(to("second aborted"));
        await b.abort();
        await a.abort();
        const c = await first.begin();
        await c.send(to("committed"));
        await c.commit();
        const seen = await kafka.readToEnd(t.output);
        assert.deepEqual(
          seen.map((m) => text(m.value)),
          ["committed"],
        );
      } finally {
        await first.close();
        await second.close();
        await admin.deleteTopics([t.output]).catch(() => undefined);
        await admin.close();
      }
    });

    test("a group consumer: paused batches come again, commits, and group offsets set only without members", async () => {
      const kafka = make();
      const t = streamTopics(`clients-group-${name}`);
      const admin = await kafka.admin();
      try {
        await admin.ensureTopic(t.input, 2);
        const producer = await kafka.producer();
        await producer.send(
          t.input,
          Array.from({ length: 200 }, (_, i) => ({ key: null, value: String(i), partition: i % 2 })),
        );
        await producer.close();
        const consumer = kafka.consumer({
          groupId: t.group,
          topics: [t.input],
          fromBeginning: true,
          maxWaitMs: 200,
          minBytes: 1,
          maxBytesPerPartition: 1024 * 1024,
          concurrency: 2,
          sessionTimeoutMs: 6_000,
        });
        const got = new Map<number, number>();
        let paused = false;
        const ends = new Map<number, string>();
        await consumer.start(async (batch, control) => {
          if (!paused) {
            // The first batch is refused: it must be fetched again once resumed.
            paused = true;
            const resume = control.pause();
            setTimeout(resume, 300);
            return;
          }
          for (const m of batch.messages) got.set(Number(text(m.value)), (got.get(Number(text(m.value))) ?? 0) + 1);
          const last = batch.messages[batch.messages.length - 1]!.offset;
          control.resolve(last);
          ends.set(batch.partition, String(Number(last) + 1));
        });
        await until("all 200 records", async () => (got.size >= 200 ? true : undefined), 60_000);
        assert.deepEqual(
          [...got.values()].filter((n) => n > 1),
          [],
          "no record handled twice",
        );
        assert.deepEqual(consumer.assignment()[t.input]?.sort(), [0, 1]);
        await consumer.commit([...ends].map(([partition, nextOffset]) => ({ topic: t.input, partition, nextOffset })));
        assert.deepEqual(await admin.committedOffsets(t.group, t.input, [0, 1]), new Map([...ends].sort()));
        await assert.rejects(admin.setGroupOffsets(t.group, t.input, [{ partition: 0, offset: 5 }]), (err: unknown) => err instanceof GroupActiveError);
        await consumer.stop();
        await until(
          "the group to be empty",
          async () => {
            try {
              await admin.setGroupOffsets(t.group, t.input, [
                { partition: 0, offset: 5 },
                { partition: 1, offset: 7 },
              ]);
              return true;
            } catch (err) {
              if (err instanceof GroupActiveError) return undefined;
              throw err;
            }
          },
          30_000,
        );
        assert.deepEqual(
          await admin.committedOffsets(t.group, t.input, [0, 1]),
          new Map([
            [0, "5"],
            [1, "7"],
          ]),
        );
      } finally {
        await admin.deleteTopics([t.input]).catch(() => undefined);
        await admin.close();
      }
    });
  });
}
