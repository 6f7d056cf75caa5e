/**
 * What the savepoint bench's jobs share: where they run, the environment of their `sage`
 * processes (one topic prefix; each job its own consumer group and output topic), the keys, and
 * how records reach the input topic.
 */
import { join } from "node:path";
import type { DevServer } from "../../dev/temporal-server.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { defaultPartitionOf } from "../../connectors/kafka/send-chunks.js";
import type { KeyRecord } from "./pipeline.js";

/** The module `sage worker` and `sage shim` load. */
export const PIPELINE_FILE = "bench/savepoint/pipeline.ts";
/** The keyed operator's uid. */
export const UID = "sum";

/** Where the bench runs and what size. */
export interface SavepointBenchOptions {
  server: DevServer;
  brokers: string;
  /** The broker's data dir: the changelog's bytes are measured on disk there. */
  brokerDataDir: string;
  /** Scratch dir: the workers' data and state dirs, the savepoints, the processes' logs. */
  dir: string;
  keys: number;
  /** Partition workflows (and changelog partitions). */
  parallelism: number;
  /** Partitions of the input topic. */
  partitions: number;
  /** Restore into a job on the embedded backend too, and restart its worker on the same disk. */
  embedded: boolean;
  log: (line: string) => void;
}

/** The output topic of job `jobId`. */
export function outputOf(input: string, jobId: string): string {
  return `${input}.${jobId}.out`;
}

/** Creates the input topic (kept forever) and the output topics of `jobIds`, unless they exist. */
export async function ensureTopics(kafka: KafkaClient, input: string, jobIds: readonly string[], partitions: number): Promise<void> {
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(input, partitions, { "retention.ms": "-1" });
    for (const id of jobIds) await admin.ensureTopic(outputOf(input, id), partitions);
  } finally {
    await admin.close();
  }
}

/** Environment of job `jobId`'s `sage` processes (and of this process when it compiles the job). */
export function jobEnv(o: SavepointBenchOptions, taskQueue: string, input: string, jobId: string): Record<string, string> {
  return {
    SAGE_TEMPORAL_ADDRESS: o.server.address,
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_DATA_DIR: join(o.dir, "data"),
    SAGE_KAFKA_BROKERS: o.brokers,
    SAGE_KAFKA_DEAD_LETTER_TOPIC: `${input}.dlq`,
    SAGE_EXECUTION_PARALLELISM: String(o.parallelism),
    // Info: the worker logs each rebuild from the changelog and each local recovery.
    SAGE_LOG_LEVEL: "info",
    SAGE_MONITORING_ENABLED: "false",
    SPBENCH_IN: input,
    SPBENCH_OUT: outputOf(input, jobId),
    SPBENCH_GROUP: `${input}.${jobId}`,
  };
}

/** The name of key `i`. */
export function keyOf(i: number): string {
  return `key-${String(i).padStart(7, "0")}`;
}

/** Writes `records` to `topic`, each to its key's partition (murmur2, as a source-partitioned keyBy requires). */
export async function produce(kafka: KafkaClient, topic: string, records: readonly KeyRecord[]): Promise<void> {
  const producer = await kafka.producer();
  try {
    for (let i = 0; i < records.length; i += 20_000)
      await producer.send(
        topic,
        records.slice(i, i + 20_000).map((r) => ({ key: r.k, value: JSON.stringify(r) })),
      );
  } finally {
    await producer.close();
  }
}

/** One existing key per input partition: each partition workflow then runs a unit. */
export function triggerKeys(keys: number, partitions: number): string[] {
  const byPartition = new Map<number, string>();
  for (let i = 0; i < keys && byPartition.size < partitions; i++) {
    const k = keyOf(i);
    const p = defaultPartitionOf(k, partitions);
    if (!byPartition.has(p)) byPartition.set(p, k);
  }
  return [...byPartition.values()];
}
