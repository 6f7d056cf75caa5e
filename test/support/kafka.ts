/**
 * Kafka test plumbing: the real broker `scripts/run-tests.ts` started, fresh topics per test, input
 * records with per-key sequence numbers, and exactly-once / per-key-order checks on the output
 * read with read_committed.
 */
import { parsePosition } from "../../core/plan/lineage.js";
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { SageConfig } from "../../core/config/schema.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { createConfluentClient } from "../../connectors/kafka/confluent-client.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { kafkaClientOf } from "../../connectors/kafka/index.js";
import { startBroker, type Broker } from "../../dev/kafka-broker.js";
import { StreamJob, type StreamJobProgress } from "../../streaming/stream-job.js";
import { KafkaShim, shimOptionsOf } from "../../streaming/shim.js";
import { createLogger } from "../../client/logger.js";
import type { Pipeline } from "../../core/api/pipeline.js";
import { REPO, cliEnv, sageCliBackground, startWorker, testConfig, until } from "./harness.js";
import { SageClient } from "../../client/sage-client.js";
import type { StreamRecord } from "../fixtures/stream-pipeline.js";

/** The streaming fixture module (for `sage worker` / `sage shim` children). */
export const STREAM_FIXTURE = join(REPO, "test", "fixtures", "stream-pipeline.ts");

/** Address of the test run's broker. */
export function testBrokers(): string {
  const b = process.env.SAGE_TEST_KAFKA;
  if (!b) throw new Error("SAGE_TEST_KAFKA is not set: run Kafka tests through `npm test` (it starts the broker)");
  return b;
}

/** The test run's broker, to kill and restart. */
export function testBroker(): Broker {
  const [, port] = testBrokers().split(":");
  return startBroker({ port: Number(port), controllerPort: Number(process.env.SAGE_TEST_KAFKA_CONTROLLER_PORT), dataDir: process.env.SAGE_TEST_KAFKA_DATA! });
}

/**
 * The Kafka client the streaming tests run with (`kafka.client`): SAGE_TEST_KAFKA_CLIENT, default
 * kafkajs. The `*-confluent` test files set it to run their file again with the other client.
 */
export function testKafkaClient(): "kafkajs" | "confluent" {
  const client = process.env.SAGE_TEST_KAFKA_CLIENT ?? "kafkajs";
  if (client !== "kafkajs" && client !== "confluent") throw new Error(`SAGE_TEST_KAFKA_CLIENT = "${client}": kafkajs or confluent`);
  return client;
}

/** A Kafka client on the test broker (quiet), of the tests' client library. */
export function testKafka(): KafkaClient {
  const options = { brokers: [testBrokers()], clientId: "sage-test" };
  return testKafkaClient() === "confluent" ? createConfluentClient(options) : createKafkajsClient(options);
}

let counter = 0;
/** Fresh topic names, consumer group and environment of the streaming fixture for one test. */
export function streamTopics(label: string) {
  const tag = `${label.replace(/[^A-Za-z0-9]/g, "-")}-${process.pid}-${++counter}`;
  const t = { input: `${tag}.in`, output: `${tag}.out`, group: `${tag}.group`, dlq: `${tag}.dlq` };
  return { ...t, env: { STREAM_IN: t.input, STREAM_OUT: t.output, STREAM_GROUP: t.group } as Record<string, string> };
}

/** Test config with the broker and small batches (many batches from few records). */
export function streamConfig(label: string, dlq: string, overrides: Record<string, unknown> = {}): SageConfig & { dir: string } {
  return testConfig(label, {
    "kafka.brokers": testBrokers(),
    "kafka.dead-letter-topic": dlq,
    "kafka.session-timeout": "6s",
    "kafka.max-batch-records": 500,
    "kafka.client": testKafkaClient(),
    ...overrides,
  });
}

/**
 * Points the streaming fixture (compiled in this process) at `topics`: their environment goes into
 * this process's, and a slow stage (`STREAM_SLOW_MS`) only if `topics.env` sets it, so an earlier
 * test's does not carry over. Children get `topics.env` (`streamCliEnv`).
 */
export function useStreamTopics(topics: { env: Record<string, string> }): void {
  if (!("STREAM_SLOW_MS" in topics.env)) delete process.env.STREAM_SLOW_MS;
  Object.assign(process.env, topics.env);
}

/** What `prepareStream` sets up: `topics`, `config` over them, and a client on the test broker. */
export interface PreparedStream {
  topics: ReturnType<typeof streamTopics>;
  config: SageConfig & { dir: string };
  kafka: KafkaClient;
}

/**
 * One streaming test's start: fresh topics (the input with `partitions`), the fixture pointed at them
 * (`useStreamTopics`, with `STREAM_SLOW_MS` as given), its config, and records `0..records-1`
 * produced.
 */
export async function prepareStream(
  label: string,
  options: { partitions: number; records?: number; slowMs?: number; overrides?: Record<string, unknown> },
): Promise<PreparedStream> {
  const topics = streamTopics(label);
  if (options.slowMs !== undefined) topics.env.STREAM_SLOW_MS = String(options.slowMs);
  useStreamTopics(topics);
  const config = streamConfig(label, topics.dlq, options.overrides);
  const kafka = testKafka();
  await createTopics(kafka, topics, options.partitions);
  if (options.records) await produceRange(kafka, topics.input, 0, options.records);
  return { topics, config, kafka };
}

/** Environment for a `sage worker`/`sage shim` child on this config. */
export function streamCliEnv(config: SageConfig, topics: { env: Record<string, string> }): Record<string, string> {
  return {
    ...cliEnv(config),
    SAGE_KAFKA_BROKERS: config.kafka.brokers,
    SAGE_KAFKA_CLIENT: config.kafka.client,
    SAGE_KAFKA_DEAD_LETTER_TOPIC: config.kafka["dead-letter-topic"] ?? "",
    SAGE_KAFKA_SESSION_TIMEOUT: String(config.kafka["session-timeout"]),
    SAGE_KAFKA_MAX_BATCH_RECORDS: String(config.kafka["max-batch-records"]),
    SAGE_KAFKA_MAX_UNACKED_BATCHES: String(config.kafka["max-unacked-batches"]),
    SAGE_EXECUTION_PARALLELISM: String(config.execution.parallelism),
    ...topics.env,
  };
}

/** Creates the input (with `partitions`), output and dead-letter topics. */
export async function createTopics(kafka: KafkaClient, t: { input: string; output: string; dlq: string }, partitions: number): Promise<void> {
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(t.input, partitions);
    await admin.ensureTopic(t.output, partitions);
    await admin.ensureTopic(t.dlq, 1);
  } finally {
    await admin.close();
  }
}

/** Record `id` of the test stream: 97 keys, `seq` increasing per key with id. */
export function recordOf(id: number): StreamRecord {
  return { id, key: `k${id % 97}`, seq: Math.floor(id / 97) };
}

/** Produces records `from..to-1` keyed by their key (so a key stays in one partition). */
export async function produceRange(kafka: KafkaClient, topic: string, from: number, to: number, poison: (id: number) => boolean = () => false): Promise<void> {
  const producer = await kafka.producer();
  try {
    for (let start = from; start < to; start += 5_000) {
      const batch = [];
      for (let id = start; id < Math.min(to, start + 5_000); id++) {
        const r = recordOf(id);
        batch.push({ key: r.key, value: JSON.stringify(poison(id) ? { ...r, poison: true } : r) });
      }
      await producer.send(topic, batch);
    }
  } finally {
    await producer.close();
  }
}

/** Records out of the sink plus dead letters reach `n`. A timeout names the last progress seen (CI shows only the error). */
export async function waitForRecords(job: { progress(): Promise<StreamJobProgress> }, n: number, guardMs = 240_000): Promise<StreamJobProgress> {
  let last: StreamJobProgress | Error | undefined;
  try {
    return await until(
      `${n} records through the job`,
      async () => {
        const p = await job.progress().catch((err: unknown) => {
          last = err as Error;
          throw err;
        });
        last = p;
        const done = (p.counts["out"]?.out ?? 0) + p.deadLetters;
        return done >= n ? p : undefined;
      },
      guardMs,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last progress: ${progressLine(last)}`, { cause: err });
  }
}

/** One line of a job's progress: totals, then per partition workflow its batches, records, pending batches and runs. */
function progressLine(p: StreamJobProgress | Error | undefined): string {
  if (p === undefined) return "none (no query answered)";
  if (p instanceof Error) return `the query failed: ${p.message}`;
  const out = p.counts["out"]?.out ?? 0;
  const workflows = p.workflows.map((w, i) => (w ? `p${i} ${w.phase} ${w.batches}b/${w.records}r pending ${w.pending} run ${w.runs}` : `p${i} not started`));
  return `${out} out, ${p.deadLetters} dead letters, ${p.records} records in ${p.batches} batches accepted, ${p.duplicatesDropped} duplicates dropped; ${workflows.join("; ")}`;
}

/** Output records read with read_committed, parsed. */
export async function readOutput(kafka: KafkaClient, topic: string): Promise<Array<StreamRecord & { double: number; partition: number }>> {
  const messages = await kafka.readAll(topic);
  return messages.map((m) => ({ ...(JSON.parse(m.value!.toString("utf8")) as StreamRecord & { double: number }), partition: m.partition }));
}

/** What `exactlyOnce` gives when every expected id is there once and nothing else is. */
export const EXACTLY_ONCE = { missing: 0, duplicated: 0, unexpected: 0, sampleMissing: [], sampleDuplicated: [] };

/** Ids missing from and duplicated in `out`, against the expected ids `from..to-1` minus `skip`. */
export function exactlyOnce(out: Array<{ id: number }>, from: number, to: number, skip: (id: number) => boolean = () => false) {
  const seen = new Map<number, number>();
  for (const r of out) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
  const missing: number[] = [];
  for (let id = from; id < to; id++) if (!skip(id) && !seen.has(id)) missing.push(id);
  const duplicated = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  const unexpected = [...seen.keys()].filter((id) => id < from || id >= to || skip(id));
  return {
    missing: missing.length,
    duplicated: duplicated.length,
    unexpected: unexpected.length,
    sampleMissing: missing.slice(0, 5),
    sampleDuplicated: duplicated.slice(0, 5),
  };
}

/** Keys whose records do not come out in increasing `seq` order. */
export function keysOutOfOrder(out: Array<{ key: string; seq: number }>): string[] {
  const last = new Map<string, number>();
  const bad = new Set<string>();
  for (const r of out) {
    if ((last.get(r.key) ?? -1) >= r.seq) bad.add(r.key);
    last.set(r.key, r.seq);
  }
  return [...bad];
}

/** Reads `topic` with read_committed and asserts ids `0..n-1` came out once each, and every key in order; gives the records. */
export async function assertExactlyOnceInOrder(topic: string, n: number, kafka: KafkaClient = testKafka()) {
  const out = await readOutput(kafka, topic);
  assert.deepEqual(exactlyOnce(out, 0, n), EXACTLY_ONCE);
  assert.deepEqual(keysOutOfOrder(out), []);
  return out;
}

/** An in-process shim for a job of `pipeline` on `config`. */
export async function startShim(client: SageClient, pipeline: Pipeline, config: SageConfig, jobId: string) {
  const job = StreamJob.create(client, pipeline, { jobId });
  const shim = new KafkaShim(job, kafkaClientOf(config), shimOptionsOf(config), createLogger(config.log.level));
  await shim.start();
  return { job, shim };
}

/** An in-process worker, a client and a shim for one streaming job; `finish` stops the job cleanly, `close` tears everything down. */
export async function runStreaming(pipeline: Pipeline, config: SageConfig, jobId: string) {
  const worker = await startWorker(pipeline, config);
  const client = await SageClient.connect({ config });
  const { job, shim } = await startShim(client, pipeline, config, jobId);
  return {
    worker,
    client,
    job,
    shim,
    /** `sage stop`: the workflows finish what they accepted, the shim drains; their totals. */
    async finish() {
      await job.stop();
      await shim.done;
      return job.result();
    },
    async close() {
      await shim.stop();
      await client.close();
      await worker.stop();
    },
  };
}

/** A `sage shim` child process. */
export interface ShimProcess {
  child: ChildProcess;
  log(): string;
  /** Resident memory of the process in KiB (from /proc). */
  rssKb(): number;
  kill(): Promise<void>;
}

/** Starts `sage shim <fixture> --job-id <jobId>` as a child process (the streaming test fixture unless told). */
export function startShimProcess(config: SageConfig, topics: { env: Record<string, string> }, jobId: string, fixture = STREAM_FIXTURE): ShimProcess {
  const child = sageCliBackground(["shim", fixture, "--job-id", jobId], { env: streamCliEnv(config, topics) });
  let output = "";
  child.stdout?.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr?.on("data", (d: Buffer) => (output += d.toString()));
  const exited = new Promise<void>((done) => child.once("exit", () => done()));
  return {
    child,
    log: () => output,
    rssKb() {
      const status = readFileSync(`/proc/${child.pid}/status`, "utf8");
      return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** How the stage runs of a partition workflow's current run were recorded: local activity markers, activity tasks. */
export async function stageRuns(client: SageClient, workflowId: string): Promise<{ local: number; activities: number }> {
  const events = (await client.temporal.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  return {
    local: events.filter((e) => e.markerRecordedEventAttributes?.markerName === "core_local_activity").length,
    activities: events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name?.startsWith("stage:")).length,
  };
}

/** True when `source` lies in one of a batch line's slices (`topic[partition]@from-to`). */
export function inSlices(source: string, slices: readonly string[]): boolean {
  const at = parsePosition(source)!;
  return slices.some((s) => {
    const dash = s.lastIndexOf("-");
    const from = parsePosition(s.slice(0, dash))!;
    return from.topic === at.topic && from.partition === at.partition && at.offset >= from.offset && at.offset <= Number(s.slice(dash + 1));
  });
}
