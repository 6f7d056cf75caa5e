/**
 * How often each Kafka client's transactions meet CONCURRENT_TRANSACTIONS ("concurrent operation on
 * the same transaction": AddPartitionsToTxn or AddOffsetsToTxn sent while the coordinator still
 * writes the previous transaction's markers) and what back-to-back small transactions cost, the
 * pattern of the sink under load. It starts its own broker.
 *
 *   npx tsx bench/kafka-txn-retries.ts [--transactions 300] [--gap-ms 0]
 *
 * `--gap-ms`: a pause between transactions (the sink's pattern at a steady rate, where the next
 * batch's transaction starts after its workflow task). kafkajs runs as is and with its coordinator
 * lookups remembered as the sink does (connectors/kafka/coordinator-cache.ts), twice each, alternating.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Kafka, logLevel, type LogEntry } from "kafkajs";
import type { KafkaJS } from "@confluentinc/kafka-javascript";
import { freePort } from "../dev/temporal-server.js";
import { startBroker } from "../dev/kafka-broker.js";
import { machineLine, printTable } from "./machine.js";
import { rememberCoordinators } from "../connectors/kafka/coordinator-cache.js";

const i = process.argv.indexOf("--transactions");
const N = i > 0 ? Number(process.argv[i + 1]) : 300;
const g = process.argv.indexOf("--gap-ms");
const GAP_MS = g > 0 ? Number(process.argv[g + 1]) : 0;
const pause = (): Promise<void> => (GAP_MS > 0 ? new Promise((r) => setTimeout(r, GAP_MS)) : Promise.resolve());
const CONCURRENT = /CONCURRENT_TRANSACTIONS|concurrent operation on the same transaction/i;
const messages = (t: number) => Array.from({ length: 20 }, (_, j) => ({ key: `k${j}`, value: `t${t}-${j}`, partition: j % 2 }));

/** kafkajs: every log line (debug included) that names the error, and the time of N transactions. */
async function kafkajsRun(brokers: string, remember = false): Promise<{ ms: number; concurrent: number }> {
  let concurrent = 0;
  const kafka = (remember ? rememberCoordinators : (k: Kafka) => k)(
    new Kafka({
      brokers: [brokers],
      logLevel: logLevel.DEBUG,
      logCreator: () => (e: LogEntry) => {
        if (CONCURRENT.test(JSON.stringify(e.log))) concurrent++;
      },
    }),
  );
  const producer = kafka.producer({
    transactionalId: `retries-kafkajs${remember ? "-remembered" : ""}`,
    idempotent: true,
    maxInFlightRequests: 1,
    retry: { initialRetryTime: 5, retries: 12 },
  });
  await producer.connect();
  const started = performance.now();
  for (let t = 0; t < N; t++) {
    const txn = await producer.transaction();
    await txn.send({ topic: "retries.out", messages: messages(t) });
    await txn.sendOffsets({ consumerGroupId: "retries-kafkajs", topics: [{ topic: "retries.out", partitions: [{ partition: 0, offset: String(t) }] }] });
    await txn.commit();
    await pause();
  }
  const ms = performance.now() - started - N * GAP_MS;
  await producer.disconnect();
  return { ms, concurrent };
}

/** confluent: librdkafka's eos and protocol debug lines that name the error (it retries them itself after 20 ms). */
async function confluentRun(brokers: string): Promise<{ ms: number; concurrent: number }> {
  const { KafkaJS: K } = createRequire(import.meta.url)("@confluentinc/kafka-javascript") as { KafkaJS: typeof KafkaJS };
  let concurrent = 0;
  const count = (message: string) => {
    if (CONCURRENT.test(message)) concurrent++;
  };
  const logger: KafkaJS.Logger = { info: count, error: count, warn: count, debug: count, namespace: () => logger, setLogLevel: () => undefined };
  const kafka = new K.Kafka({ debug: "eos,protocol", kafkaJS: { brokers: [brokers], logLevel: K.logLevel.DEBUG, logger } });
  const producer = kafka.producer({ "linger.ms": 5, partitioner: "murmur2_random", kafkaJS: { transactionalId: "retries-confluent", idempotent: true } });
  const offsets = kafka.consumer({ kafkaJS: { groupId: "retries-confluent" } });
  await Promise.all([producer.connect(), offsets.connect()]);
  const started = performance.now();
  for (let t = 0; t < N; t++) {
    await producer.transaction();
    await producer.send({ topic: "retries.out", messages: messages(t) });
    await producer.sendOffsets({ consumer: offsets, topics: [{ topic: "retries.out", partitions: [{ partition: 0, offset: String(t) }] }] });
    await producer.commit();
    await pause();
  }
  const ms = performance.now() - started - N * GAP_MS;
  await Promise.all([producer.disconnect(), offsets.disconnect()]);
  return { ms, concurrent };
}

console.log(`transactions (20 records on 2 partitions + offsets each, ${GAP_MS} ms apart), ${N} per client; ${machineLine()}`);
const dir = mkdtempSync(join(tmpdir(), "sage-bench-txn-"));
const broker = startBroker({ port: await freePort(), controllerPort: await freePort(), dataDir: join(dir, "kafka") });
try {
  const admin = new Kafka({ brokers: [broker.address], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic: "retries.out", numPartitions: 2 }], waitForLeaders: true });
  await admin.disconnect();
  const rows: string[][] = [];
  for (const [name, run] of [
    ["kafkajs 2.2.4", (b: string) => kafkajsRun(b)],
    ["kafkajs 2.2.4, coordinator lookups remembered", (b: string) => kafkajsRun(b, true)],
    ["kafkajs 2.2.4 (again)", (b: string) => kafkajsRun(b)],
    ["kafkajs 2.2.4, coordinator lookups remembered (again)", (b: string) => kafkajsRun(b, true)],
    ["confluent 1.10.1 (librdkafka 2.15.1)", confluentRun],
  ] as const) {
    const r = await run(broker.address);
    rows.push([name, String(N), (r.ms / 1000).toFixed(2), ((r.ms / N) | 0).toString(), String(r.concurrent)]);
  }
  printTable(["client", "transactions", "wall s", "ms per transaction", "log lines naming CONCURRENT_TRANSACTIONS"], rows);
} finally {
  broker.stop();
  rmSync(dir, { recursive: true, force: true });
}
process.exit(0);
