/**
 * The plain kafkajs baseline of the Kafka benchmarks: consume -> transform -> produce, with or
 * without a transaction per fetched batch (the offsets committed in it, the exactly-once form).
 * `bench/kafka.ts` runs it in process for throughput; run as a script it pipes until SIGTERM, as
 * the latency case's baseline in a process of its own (as the Sage job's worker and shim are):
 *
 *   npx tsx bench/plain-pipe.ts --brokers host:port --in <topic> --out <topic> [--transactional]
 */
import { pathToFileURL } from "node:url";
import { Kafka, Partitioners, logLevel } from "kafkajs";
import { transform, type BenchEvent } from "./kafka-pipeline.js";

/** Partitions of every benchmark topic. */
export const PARTITIONS = 4;

/** The outputs of a slice of fetched messages (the benchmark's transform) and the offset after it. */
export function transformSlice(slice: ReadonlyArray<{ value: Buffer | null; offset: string }>): { out: Array<{ key: string; value: string }>; next: string } {
  const out = slice
    .map((m) => transform(JSON.parse(m.value!.toString()) as BenchEvent))
    .filter((e): e is NonNullable<typeof e> => e !== null)
    .map((e) => ({ key: e.key, value: JSON.stringify(e) }));
  return { out, next: String(Number(slice[slice.length - 1]!.offset) + 1) };
}

/**
 * Plain kafkajs consume -> transform -> produce of `n` records (Infinity: until `stop` settles);
 * with `transactional`, one transaction per fetched batch. Resolves to the ms it took.
 */
export async function plainPipe(
  kafka: Kafka,
  input: string,
  output: string,
  n: number,
  transactional: boolean,
  stop: Promise<void> = new Promise(() => undefined),
): Promise<number> {
  const group = `plain-${transactional ? "txn" : "notxn"}-${Date.now()}`;
  // The same fetch wait as the Sage job's shim (`execution.buffer-timeout`, 50 ms).
  const consumer = kafka.consumer({ groupId: group, maxBytesPerPartition: 1024 * 1024, maxWaitTimeInMs: 50 });
  const producer = kafka.producer(
    transactional
      ? {
          transactionalId: `${group}-tx`,
          idempotent: true,
          maxInFlightRequests: 1,
          createPartitioner: Partitioners.DefaultPartitioner,
          retry: { initialRetryTime: 20 },
        }
      : { createPartitioner: Partitioners.DefaultPartitioner },
  );
  await Promise.all([consumer.connect(), producer.connect()]);
  await consumer.subscribe({ topics: [input], fromBeginning: true });
  let count = 0;
  let finish!: () => void;
  const done = new Promise<void>((r) => (finish = r));
  const started = performance.now();
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    // A transactional producer runs one transaction at a time.
    partitionsConsumedConcurrently: transactional ? 1 : PARTITIONS,
    eachBatch: async (payload) => {
      const { batch } = payload;
      for (let i = 0; i < batch.messages.length; i += 2000) {
        const slice = batch.messages.slice(i, i + 2000);
        const { out, next } = transformSlice(slice);
        const offsets = { topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] };
        if (transactional) {
          const t = await producer.transaction();
          await t.send({ topic: output, messages: out });
          await t.sendOffsets({ consumerGroupId: group, ...offsets });
          await t.commit();
        } else {
          await producer.send({ topic: output, messages: out });
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }]);
        }
        payload.resolveOffset(slice[slice.length - 1]!.offset);
        await payload.heartbeat();
        count += slice.length;
      }
      if (count >= n) finish();
    },
  });
  await Promise.race([done, stop]);
  const ms = performance.now() - started;
  await consumer.disconnect();
  await producer.disconnect();
  return ms;
}

/** Run as a script: pipes until SIGTERM or SIGINT. */
async function main(): Promise<void> {
  const arg = (name: string): string => {
    const i = process.argv.indexOf(`--${name}`);
    if (i < 0 || process.argv[i + 1] === undefined) throw new Error(`plain-pipe: --${name} is required`);
    return process.argv[i + 1]!;
  };
  const kafka = new Kafka({ clientId: "bench-plain-pipe", brokers: [arg("brokers")], logLevel: logLevel.NOTHING });
  const stop = new Promise<void>((r) => {
    process.once("SIGTERM", () => r());
    process.once("SIGINT", () => r());
  });
  await plainPipe(kafka, arg("in"), arg("out"), Infinity, process.argv.includes("--transactional"), stop);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await main();
  process.exit(0);
}
