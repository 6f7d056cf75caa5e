/**
 * Parts of a unit sent ahead of its commit (`SinkSession.ahead`), on the real broker with both
 * Kafka clients: they are visible to read_committed readers only with the commit, in order; a unit
 * that fails after parts went ahead leaves nothing behind, and the session after it commits on the
 * same producer; an attempt fenced by another process after its parts went ahead fails its commit,
 * and only the newer attempt's records are read.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { KafkaSinkHost, type SinkSession } from "../../connectors/kafka/sink.js";
import type { KafkaClient, OutgoingMessage } from "../../connectors/kafka/client.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { createConfluentClient } from "../../connectors/kafka/confluent-client.js";
import { SinkError } from "../../core/errors.js";
import { createTopics, streamTopics, testBrokers } from "../support/kafka.js";

const logger = pino({ level: process.env.SAGE_TEST_LOG ?? "warn" });

const clients: Record<string, () => KafkaClient> = {
  kafkajs: () => createKafkajsClient({ brokers: [testBrokers()], clientId: "sage-test" }),
  confluent: () => createConfluentClient({ brokers: [testBrokers()], clientId: "sage-test" }),
};

/** Messages `from`..`to` (inclusive) for `topic`, keyed so that they spread over its partitions. */
function range(topic: string, from: number, to: number, tag: string): Array<{ topic: string; message: OutgoingMessage }> {
  const out = [];
  for (let i = from; i <= to; i++) out.push({ topic, message: { key: `k${i % 7}`, value: JSON.stringify({ id: i, tag }) } });
  return out;
}

/** Sends `parts` ahead, then commits `last` with the marker at `next`. */
async function unit(session: SinkSession, parts: Array<ReturnType<typeof range>>, last: ReturnType<typeof range>, input: string, next: number) {
  for (const part of parts) void session.ahead!.send(part);
  await session.commit(last, [{ topic: input, partition: 0, nextOffset: next }]);
}

for (const [name, make] of Object.entries(clients)) {
  test(`parts sent ahead (${name}): committed with the unit in order, aborted with a failed unit, refused once fenced`, async () => {
    const t = streamTopics(`send-ahead-${name}`);
    const kafka = make();
    await createTopics(kafka, t, 3);
    const admin = await kafka.admin();
    const hosts = [new KafkaSinkHost(make(), logger), new KafkaSinkHost(make(), logger)];
    const [first, second] = hosts as [KafkaSinkHost, KafkaSinkHost];
    const id = `sage.sendahead.${t.input}.s0.p0`;
    try {
      // Unit 0: three parts ahead and the rest with the commit.
      await first.withSession(id, [t.output], (s) =>
        unit(s, [range(t.output, 0, 99, "u0"), range(t.output, 100, 199, "u0"), range(t.output, 200, 299, "u0")], range(t.output, 300, 349, "u0"), t.input, 1),
      );
      // Unit 1 fails after two parts went ahead (its chain threw): nothing of it may be read.
      await assert.rejects(
        first.withSession(id, [t.output], async (s) => {
          await s.ahead!.send(range(t.output, 1000, 1099, "failed"));
          await s.ahead!.send(range(t.output, 1100, 1199, "failed"));
          throw new Error("the chain failed");
        }),
        /the chain failed/,
      );
      // Unit 1 again on the same host and producer: committed.
      await first.withSession(id, [t.output], (s) => unit(s, [range(t.output, 350, 449, "u1")], range(t.output, 450, 499, "u1"), t.input, 2));
      // Unit 2: its parts go ahead on the first host, then the second host takes the id over and commits it;
      // the first host's commit is refused.
      let fenced: Promise<void> | null = null;
      const late = first.withSession(id, [t.output], async (s) => {
        await s.ahead!.send(range(t.output, 2000, 2099, "fenced"));
        fenced = second.withSession(id, [t.output], (s2) => unit(s2, [range(t.output, 500, 599, "u2")], range(t.output, 600, 649, "u2"), t.input, 3));
        await fenced;
        await s.commit(range(t.output, 2100, 2149, "fenced"), [{ topic: t.input, partition: 0, nextOffset: 3 }]);
      });
      await assert.rejects(late, (err: unknown) => err instanceof SinkError);
      assert.ok(fenced, "the second host ran");

      const out = await kafka.readAll(t.output);
      const values = out.map((m) => ({ partition: m.partition, ...(JSON.parse(m.value!.toString("utf8")) as { id: number; tag: string }) }));
      assert.deepEqual(
        values.filter((v) => v.tag === "failed" || v.tag === "fenced"),
        [],
        "nothing of the failed or the fenced attempt",
      );
      assert.deepEqual(
        values.map((v) => v.id).sort((a, b) => a - b),
        Array.from({ length: 650 }, (_, i) => i),
        "every committed record once",
      );
      for (const p of [0, 1, 2]) {
        const ids = values.filter((v) => v.partition === p).map((v) => v.id);
        assert.deepEqual(
          ids,
          [...ids].sort((a, b) => a - b),
          `partition ${p} in the order sent`,
        );
      }
      const markers = await admin.committedMarkers(id, t.input, [0]);
      assert.equal(markers.get(0)?.offset, "3");
    } finally {
      await Promise.allSettled([...hosts.map((h) => h.close()), admin.close()]);
    }
  });
}
