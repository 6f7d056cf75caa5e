/**
 * The transactional sink alone (no Temporal) under repeated kill -9 of the broker, with attempts that
 * overlap the way abandoned activity attempts do: an attempt still running after a few seconds is
 * given up and another one starts, in the same host (its lock serialises them) or, every few units,
 * in a second host, as a second worker process would. Each unit writes its records and advances the
 * progress marker in one transaction, skipping what the marker says is written; half of a unit's
 * records go ahead of its commit (`SinkSession.ahead`), as a streaming unit's parts do. The output, read
 * with read_committed, must hold every record exactly once.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { pino } from "pino";
import { KafkaSinkHost } from "../../connectors/kafka/sink.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { createTopics, EXACTLY_ONCE, exactlyOnce, streamTopics, testBroker, testKafka } from "../support/kafka.js";

const UNITS = Number(process.env.SINK_KILLS_UNITS ?? 60);
const PER_UNIT = 100;
/** Every KILL_EVERY-th unit's first attempt is cut by a kill -9 late in its commit, where the outcome is in doubt. */
const KILL_EVERY = Number(process.env.SINK_KILLS_EVERY ?? 10);

test("sink under repeated broker kill -9, with overlapping attempts in one and two hosts: each record exactly once", async () => {
  const t = streamTopics("sink-kills");
  const admin = testKafka();
  await createTopics(admin, t, 1);
  const logger = pino({ level: process.env.SAGE_TEST_LOG ?? "warn" });
  const broker = testBroker();
  // Commits are timed, and an armed one has the broker killed a random time into it, mostly near its end.
  const durations: number[] = [];
  let armed: number | null = null;
  let kills = 0;
  const killing = (base: KafkaClient): KafkaClient => ({
    ...base,
    transactionalProducer(id) {
      const p = base.transactionalProducer(id);
      return {
        transactionalId: p.transactionalId,
        close: () => p.close(),
        async begin() {
          const txn = await p.begin();
          let started: number | null = null;
          return {
            async send(messages) {
              if (started === null && armed !== null) {
                setTimeout(() => {
                  broker.kill();
                  kills++;
                }, armed);
                armed = null;
              }
              started ??= performance.now();
              await txn.send(messages);
            },
            sendOffsets: (marker) => txn.sendOffsets(marker),
            async commit() {
              await txn.commit();
              if (started !== null) durations.push(performance.now() - started);
            },
            abort: () => txn.abort(),
          };
        },
      };
    },
  });
  const hosts = [new KafkaSinkHost(killing(testKafka()), logger), new KafkaSinkHost(killing(testKafka()), logger)];
  const id = `sage.sinktest.${t.input}.s0.p0`;
  let attempts = 0;

  /** One attempt of unit `u` on `host`: read the marker, write what is past it, advance it. */
  const attempt = (host: KafkaSinkHost, u: number): Promise<void> =>
    host.withSession(id, [t.output], async (session) => {
      attempts++;
      const from = u * PER_UNIT;
      const to = from + PER_UNIT - 1;
      const upTo = await session.committedUpTo(t.input, 0);
      if (upTo >= to + 1) return;
      const messages = [];
      for (let i = Math.max(from, upTo); i <= to; i++) messages.push({ topic: t.output, message: { key: String(i), value: JSON.stringify({ id: i }) } });
      // Half goes ahead of the commit, as a streaming unit's parts do while its chain runs.
      const half = Math.floor(messages.length / 2);
      await session.ahead!.send(messages.slice(0, half));
      await session.commit(messages.slice(half), [{ topic: t.input, partition: 0, nextOffset: to + 1 }]);
    });

  try {
    for (let u = 0; u < UNITS; u++) {
      if (u > 0 && u % KILL_EVERY === 0) {
        const sorted = [...durations.slice(-20)].sort((a, b) => a - b);
        const median = sorted[Math.floor(sorted.length / 2)] ?? 10;
        armed = median * (0.5 + Math.random() * 0.7);
        const before = kills;
        const first = attempt(hosts[0]!, u).catch(() => undefined);
        while (kills === before) await new Promise((r) => setTimeout(r, 2));
        await new Promise((r) => setTimeout(r, 3_000));
        broker.restart();
        void first;
      }
      // Attempts until one succeeds; one still running after 4 s is abandoned (it goes on) and the next starts.
      for (let n = 0; ; n++) {
        const host = u % 3 === 0 ? hosts[n % 2]! : hosts[0]!;
        const run = attempt(host, u).then(
          () => true,
          () => false,
        );
        const ok = await Promise.race([run, new Promise<boolean>((r) => setTimeout(() => r(false), 4_000))]);
        if (ok) break;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const out = await admin.readAll(t.output);
    const ids = out.map((m) => JSON.parse(m.value!.toString("utf8")) as { id: number });
    assert.deepEqual(exactlyOnce(ids, 0, UNITS * PER_UNIT), EXACTLY_ONCE);
    assert.ok(attempts > UNITS, `attempts were retried (${attempts} for ${UNITS} units)`);
    assert.equal(kills, Math.floor((UNITS - 1) / KILL_EVERY));
  } finally {
    broker.restart();
    await Promise.allSettled(hosts.map((h) => h.close()));
  }
});
