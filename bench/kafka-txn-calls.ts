/**
 * What a sink transaction costs with its sends as one kafkajs call per partition (the sink before
 * 5f37668) and as one call per partition leader (`Partitioning.send`, the sink now): each
 * transaction writes a unit's records, keyed over the output topic's partitions, plus one lineage
 * record, then its input offsets, and commits. The two forms alternate transaction by transaction,
 * each on its own transactional producer, so the machine's drift falls on both alike. It starts its
 * own broker.
 *
 *   npx tsx bench/kafka-txn-calls.ts [--records 70,1500] [--transactions 100] [--gap-ms 30] [--partitions 4]
 *
 * `--records`: records per transaction (70 is a unit at 1k records/s with 2 partition workflows,
 * 1,500 one at full speed); `--gap-ms`: the pause after each transaction (a steady rate's gap).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { freePort } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { Partitioning, kafkajsMessagesOf, leadersOf, topicMessagesOf } from "../connectors/kafka/send-chunks.js";
import { transactionalProducerConfig } from "../connectors/kafka/kafkajs-client.js";
import type { OutgoingMessage } from "../connectors/kafka/client.js";
import { machineLine, printTable, saveResult } from "./machine.js";
import { percentile } from "./timeline.js";

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1]! : fallback;
}
const SIZES = arg("records", "70,1500").split(",").map(Number);
const N = Number(arg("transactions", "100"));
const GAP_MS = Number(arg("gap-ms", "30"));
const PARTITIONS = Number(arg("partitions", "4"));
const OUT = "calls.out";
const LINEAGE = "calls.lineage";

type Form = "one call per partition" | "one call per leader";
const FORMS: Form[] = ["one call per partition", "one call per leader"];

/** A unit's output: `n` keyed records of ~186 bytes and one lineage record. */
function unitOf(t: number, n: number): Array<{ topic: string; message: OutgoingMessage }> {
  const out: Array<{ topic: string; message: OutgoingMessage }> = [];
  for (let i = 0; i < n; i++) {
    const value = JSON.stringify({ id: t * n + i, user: `u${i % 97}`, amount: i, note: "x".repeat(120) });
    out.push({ topic: OUT, message: { key: Buffer.from(`u${i % 97}`), value: Buffer.from(value) } });
  }
  out.push({ topic: LINEAGE, message: { key: null, value: Buffer.from(`unit ${t}: ${n} records`) } });
  return out;
}

/** One transaction in `form`: its send, offsets and commit times (ms). */
async function transaction(producer: Producer, form: Form, partitioning: Partitioning, t: number, n: number) {
  const started = performance.now();
  const txn = await producer.transaction();
  const messages = unitOf(t, n);
  if (form === "one call per leader") await partitioning.send(messages, (call) => txn.sendBatch(topicMessagesOf(call)));
  else for (const chunk of await partitioning.chunks(messages)) await txn.send({ topic: chunk.topic, messages: kafkajsMessagesOf(chunk) });
  const sent = performance.now();
  await txn.sendOffsets({
    consumerGroupId: `calls-${form.replace(/ /g, "-")}`,
    topics: [{ topic: OUT, partitions: [{ partition: 0, offset: String(t + 1) }] }],
  });
  const offsets = performance.now();
  await txn.commit();
  const done = performance.now();
  return { send: sent - started, offsets: offsets - sent, commit: done - offsets, total: done - started };
}

console.log(`sink transactions, per-partition calls against per-leader calls, alternating; ${N} each per size, ${GAP_MS} ms apart; ${machineLine()}`);
const dir = mkdtempSync(join(tmpdir(), "sage-bench-calls-"));
const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
try {
  const kafka = new Kafka({ brokers: [broker.address], logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: OUT, numPartitions: PARTITIONS },
      { topic: LINEAGE, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  const partitioning = new Partitioning(async (topic) => {
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    return leadersOf(topics[0]!.partitions);
  });
  const producers = new Map<Form, Producer>();
  for (const form of FORMS) {
    const p = kafka.producer(transactionalProducerConfig(`calls-${form.replace(/ /g, "-")}`));
    await p.connect();
    producers.set(form, p);
  }
  const rows: string[][] = [];
  const result: Record<string, unknown> = { machine: machineLine(), transactions: N, gapMs: GAP_MS, partitions: PARTITIONS, sizes: {} };
  for (const n of SIZES) {
    const times = new Map<Form, Array<Awaited<ReturnType<typeof transaction>>>>(FORMS.map((f) => [f, []]));
    // Warm-up: 10 of each, not counted.
    for (let t = -10; t < N; t++) {
      // Alternate which form goes first, so neither always follows the other's markers.
      const order = t % 2 === 0 ? FORMS : [...FORMS].reverse();
      for (const form of order) {
        const r = await transaction(producers.get(form)!, form, partitioning, t + 10, n);
        if (t >= 0) times.get(form)!.push(r);
        await new Promise((wake) => setTimeout(wake, GAP_MS));
      }
    }
    for (const form of FORMS) {
      const list = times.get(form)!;
      const p = (key: "send" | "offsets" | "commit" | "total", q: number) =>
        percentile(
          list.map((r) => r[key]).sort((a, b) => a - b),
          q,
        ).toFixed(1);
      rows.push([`${n}`, form, p("send", 50), p("send", 99), p("offsets", 50), p("commit", 50), p("total", 50), p("total", 90), p("total", 99)]);
      (result.sizes as Record<string, unknown>)[`${n} ${form}`] = { sendP50: p("send", 50), totalP50: p("total", 50), totalP99: p("total", 99) };
    }
  }
  printTable(["records", "form", "send p50 ms", "send p99", "offsets p50", "commit p50", "transaction p50", "p90", "p99"], rows);
  console.log(`result: ${saveResult("kafka-txn-calls", result)}`);
  for (const p of producers.values()) await p.disconnect();
  await admin.disconnect();
} finally {
  broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
