/**
 * One chaos run of the keyed, event-time windowed job (the stateful bench's `bench/stateful/pipeline.ts`:
 * a tumbling 10 s count and a sliding 30 s / 10 s latency aggregate per service, Kafka -> Kafka,
 * exactly once): a worker and a shim as `sage` processes, deterministic events produced at a steady
 * rate (event time runs `EVENT_TIME_SPEED` times as fast as the wall clock, so windows close every
 * couple of seconds), a read_committed reader timing each new window result, the fault injected
 * once 30% of the expected windows are out, then the job stopped and both output topics read back
 * and compared with the reference computed from the input: every window once, with equal values.
 */
import { readFileSync } from "node:fs";
import { loadavg } from "node:os";
import { Kafka, logLevel, type ConfigResourceTypes } from "kafkajs";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { partitionWorkflowId } from "../../core/plan/stream.js";
import type { Broker } from "../../dev/kafka-broker.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { EVENT_TIME_TOPIC_CONFIG, eventMessage, flushEvents, FLUSH_SERVICE, generateEvents, partitionOf, type StatefulEvent } from "../stateful/events.js";
import { compareResults, parseResult, referenceWindows, windowKey, type ResultDiff, type TumblingResult } from "../stateful/results.js";
import { sleep, stopChild, waitFor, type ChaosEnv, type SageChild } from "./env.js";
import { stallAround } from "./tally.js";
import type { FaultResult, StreamFault, StreamRun } from "./stream-run.js";

/** The module the keyed job's workers and shim load, and its pipeline name. */
const PIPELINE_FILE = "bench/stateful/pipeline.ts";
const PIPELINE = "statefulbench";
/** Partitions of the input and output topics; partition workflows of the job. */
const PARTITIONS = 4;
const WORKFLOWS = 2;
/** Event time runs this many times as fast as the producer's wall clock. */
const EVENT_TIME_SPEED = 5;

/** The brokers a keyed run uses: the run's one broker, or a cluster a fault starts. */
export interface KeyedKafka {
  /** The broker a fault acts on (a cluster's first node). */
  broker: Broker;
  /** Bootstrap servers, comma-separated. */
  brokers: string;
  client: KafkaClient;
  /** Replicas of every topic of the job. */
  replicationFactor: number;
}

/** What a fault under the keyed job acts on: a stream run, and the job's topics. */
export interface KeyedRun extends StreamRun {
  readonly topics: string[];
}

/** A fault under the keyed job, which may bring its own brokers (started before the run, released after it). */
export interface KeyedFault extends StreamFault {
  kafka?(env: ChaosEnv): Promise<KeyedKafka>;
  inject(run: KeyedRun): Promise<Record<string, unknown>>;
  release?(): void;
}

/** Options of a keyed run. */
export interface KeyedRunOptions {
  records: number;
  /** Events produced per second. */
  rate: number;
  /** Distinct keys (services). */
  services: number;
  /** Share of the expected windows committed before the fault (0.3). */
  faultAfter: number;
  /** Give up waiting for more output after this long without a new window (s). */
  idleSeconds: number;
  sessionTimeoutSeconds: number;
}

/**
 * The input of a run: events whose event time starts two hours back (aligned to 30 s), so that
 * neither they nor the flush events an hour after the last one lie in the broker's future.
 */
function inputEvents(o: KeyedRunOptions): StatefulEvent[] {
  const epochMs = Math.floor((Date.now() - 7_200_000) / 30_000) * 30_000;
  const spanMs = Math.round((o.records / o.rate) * 1000 * EVENT_TIME_SPEED);
  return generateEvents({ events: o.records, services: o.services, seed: 20, epochMs, spanMs });
}

/** kafkajs's `ConfigResourceTypes.TOPIC` (the CommonJS package does not export the enum to ES modules). */
const TOPIC_RESOURCE = 2 as ConfigResourceTypes;

/**
 * Creates `topic` with `EVENT_TIME_TOPIC_CONFIG` and `replicationFactor` replicas (or sets that
 * config on the existing topic), tried again on a retriable broker error: on the loaded 2-core
 * machine a topic's metadata can lag its creation ("This server does not host this topic-partition").
 */
async function ensureTopic(kafka: KeyedKafka, topic: string, partitions: number): Promise<void> {
  const configEntries = [...EVENT_TIME_TOPIC_CONFIG];
  for (let attempt = 1; ; attempt++) {
    const admin = new Kafka({ clientId: "chaos-keyed-admin", brokers: kafka.brokers.split(","), logLevel: logLevel.NOTHING }).admin();
    try {
      await admin.connect();
      const topics = [{ topic, numPartitions: partitions, replicationFactor: kafka.replicationFactor, configEntries }];
      if (!(await admin.createTopics({ topics, waitForLeaders: true })))
        await admin.alterConfigs({ validateOnly: false, resources: [{ type: TOPIC_RESOURCE, name: topic, configEntries }] });
      return;
    } catch (err) {
      if (attempt >= 8 || !(err as { retriable?: boolean }).retriable) throw err;
      await sleep(1_000 * attempt);
    } finally {
      await admin.disconnect();
    }
  }
}

/**
 * Produces `events` in order at `rate` per second, then the flush events (idempotent: a retried
 * send is not written twice). When a send fails for good (kafkajs's idempotent producer gives up
 * with "out of order sequence number" after a partition leader moves), a new producer sends that
 * batch again: it may then be in the input twice, which the reference read back from the input counts.
 */
function startProducer(brokers: string, topic: string, events: readonly StatefulEvent[], rate: number) {
  const kafka = new Kafka({ clientId: "chaos-keyed-producer", brokers: brokers.split(","), logLevel: logLevel.NOTHING });
  const fresh = () => kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 100 } });
  let producer = fresh();
  const state = { sent: 0, stopped: false, slowestSendMs: 0, restarts: [] as string[] };
  const tickMs = 50;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  const message = (e: StatefulEvent, partition: number) => {
    const m = eventMessage(e, partition);
    return { key: m.key ?? null, value: m.value, timestamp: m.timestamp, partition };
  };
  const send = async (messages: ReturnType<typeof message>[]) => {
    for (let reconnect = false; ;) {
      try {
        if (reconnect) await producer.connect();
        return await producer.send({ topic, messages });
      } catch (err) {
        if (state.stopped || state.restarts.length >= 10) throw err;
        state.restarts.push(`${state.sent}: ${(err as Error).message}`);
        await producer.disconnect().catch(() => undefined);
        await sleep(1_000);
        producer = fresh();
        reconnect = true;
      }
    }
  };
  const done = (async () => {
    await producer.connect();
    try {
      for (let next = Date.now(); state.sent < events.length && !state.stopped;) {
        const batch = events.slice(state.sent, state.sent + perTick).map((e) => message(e, partitionOf(e.service, PARTITIONS)));
        const at = Date.now();
        await send(batch);
        state.slowestSendMs = Math.max(state.slowestSendMs, Date.now() - at);
        state.sent += batch.length;
        next += tickMs;
        await sleep(Math.max(0, next - Date.now()));
      }
      // Only after every event: the flush must be the last record of its partition.
      if (!state.stopped) await send(flushEvents(events, PARTITIONS).map((e) => message(e, e.partition)));
    } finally {
      await producer.disconnect();
    }
  })();
  return { state, done };
}

/** Tails both output topics with read_committed: the first time each window was seen. */
async function startReader(brokers: string, topics: string[], group: string) {
  const kafka = new Kafka({ clientId: "chaos-keyed-reader", brokers: brokers.split(","), logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: group, maxWaitTimeInMs: 100, sessionTimeout: 30_000 });
  const seen = new Set<string>();
  const arrivals: number[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages) {
        const key = `${batch.topic}|${windowKey(parseResult<TumblingResult>(m.value!.toString("utf8")))}`;
        if (!seen.has(key)) {
          seen.add(key);
          arrivals.push(now);
        }
      }
    },
  });
  return { seen, arrivals, stop: () => consumer.disconnect() };
}

/**
 * Window results of `topic`, read_committed from the beginning to the end offsets it has now (the job
 * has stopped: no transaction is open), the flush key's, which no reference has, left out. Not
 * `readAll`: it stops after 1.5 s without a new record, and on the loaded three-broker cluster it
 * returned half of the input.
 */
async function windowsOf(client: KafkaClient, topic: string): Promise<TumblingResult[]> {
  const messages = await client.readToEnd(topic);
  return messages.map((m) => parseResult<TumblingResult>(m.value!.toString("utf8"))).filter((r) => r.service !== FLUSH_SERVICE);
}

/** Runs the keyed job through `fault` and compares every window read back with the reference. */
export async function runKeyedFault(env: ChaosEnv, fault: KeyedFault, options: KeyedRunOptions): Promise<FaultResult> {
  try {
    return await runKeyed(env, fault, options, (await fault.kafka?.(env)) ?? (await runBroker(env)));
  } finally {
    fault.release?.();
  }
}

/** The run's one broker. */
async function runBroker(env: ChaosEnv): Promise<KeyedKafka> {
  const { broker, client } = await env.kafka();
  return { broker, brokers: broker.address, client, replicationFactor: 1 };
}

async function runKeyed(env: ChaosEnv, fault: KeyedFault, options: KeyedRunOptions, kafka: KeyedKafka): Promise<FaultResult> {
  const { broker } = kafka;
  const tag = `chaos-keyed-${fault.name}-${Date.now()}`;
  const topics = { input: `${tag}.in`, tumbling: `${tag}.tumbling`, sliding: `${tag}.sliding`, dlq: `${tag}.dlq` };
  for (const t of [topics.input, topics.tumbling, topics.sliding]) await ensureTopic(kafka, t, PARTITIONS);
  await ensureTopic(kafka, topics.dlq, 1);
  const events = inputEvents(options);
  const planned = referenceWindows(events);
  const expected = planned.tumbling.length + planned.sliding.length;
  env.log(
    `${fault.name}: ${events.length} events, ${options.services} services; reference ${planned.tumbling.length} tumbling + ${planned.sliding.length} sliding windows`,
  );
  const taskQueue = tag;
  const sageEnv = {
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_DATA_DIR: `${env.dir}/data-keyed-${fault.name}`,
    SAGE_KAFKA_BROKERS: kafka.brokers,
    SAGE_KAFKA_REPLICATION_FACTOR: String(kafka.replicationFactor),
    SAGE_KAFKA_DEAD_LETTER_TOPIC: topics.dlq,
    SAGE_KAFKA_SESSION_TIMEOUT: `${options.sessionTimeoutSeconds}s`,
    SAGE_EXECUTION_PARALLELISM: String(WORKFLOWS),
    // Info: a worker logs each rebuild of keyed state from the changelog (and little else).
    SAGE_LOG_LEVEL: "info",
    SAGE_MONITORING_ENABLED: "false",
    STATEFUL_IN: topics.input,
    STATEFUL_TUMBLING: topics.tumbling,
    STATEFUL_SLIDING: topics.sliding,
    STATEFUL_GROUP: `${tag}.group`,
  };
  const childEnv = (extra: Record<string, string> = {}) => ({ ...sageEnv, SAGE_TEMPORAL_ADDRESS: env.server.address, ...extra });
  const job = env.jobWorkers(broker, taskQueue, PIPELINE_FILE, childEnv);
  const { everyWorker } = job;
  const run: KeyedRun = { ...job.run, topics: [topics.input, topics.tumbling, topics.sliding] };
  const reader = await startReader(kafka.brokers, [topics.tumbling, topics.sliding], `${tag}.reader`);
  await run.startWorker("worker");
  const shim = env.sage("shim", ["shim", PIPELINE_FILE, "--job-id", tag], childEnv());
  const started = Date.now();
  const producer = startProducer(kafka.brokers, topics.input, events, options.rate);
  let produceError: unknown = null;
  producer.done.catch((err: unknown) => (produceError = err));
  const problems: string[] = [];
  let faultAt = NaN;
  let faultEnd = NaN;
  let details: Record<string, unknown> = {};
  let final: { out: number | null; deadLetters: number; restores: number } | null = null;
  try {
    const before = Math.ceil(expected * options.faultAfter);
    await waitFor(`${before} windows out before the fault`, () => (reader.seen.size >= before ? true : undefined), 600_000, 50);
    env.log(
      `${fault.name}: ${reader.seen.size} windows out, ${producer.state.sent} events sent after ${((Date.now() - started) / 1000).toFixed(1)} s; fault starts`,
    );
    faultAt = Date.now();
    const loadAverageAtFault = Number(loadavg()[0]!.toFixed(1));
    details = { sentAtFault: producer.state.sent, loadAverageAtFault, ...(await fault.inject(run)) };
    faultEnd = Date.now();
    env.log(`${fault.name}: fault over after ${((faultEnd - faultAt) / 1000).toFixed(1)} s; ${reader.seen.size} windows out`);
    let last = { n: reader.seen.size, at: Date.now() };
    await waitFor(
      "the rest of the output",
      () => {
        if (reader.seen.size >= expected) return true;
        if (reader.seen.size !== last.n) last = { n: reader.seen.size, at: Date.now() };
        return Date.now() - last.at > options.idleSeconds * 1000 ? false : undefined;
      },
      3_600_000,
      100,
    );
    if (produceError) problems.push(`the producer failed: ${(produceError as Error).message}`);
    if (reader.seen.size < expected) problems.push(`no new window for ${options.idleSeconds} s with ${reader.seen.size} of ${expected} out`);
    final = await stopJob(env, tag, problems);
    if (final && final.deadLetters > 0) problems.push(`${final.deadLetters} dead letter(s)`);
  } catch (err) {
    problems.push((err as Error).message);
  } finally {
    producer.state.stopped = true;
    await producer.done.catch(() => undefined);
    await stopChild(shim);
    for (const w of [...run.workers]) await run.retireWorker(w);
    await reader.stop().catch(() => undefined);
  }
  const endAt = reader.arrivals.reduce((m, t) => Math.max(m, t), started);
  // The reference is computed from the input as the topic holds it (a re-sent batch counts twice there, as in the job).
  const input = (await kafka.client.readToEnd(topics.input)).map((m) => JSON.parse(m.value!.toString("utf8")) as StatefulEvent);
  const reference = referenceWindows(input);
  const sentTwice = input.length - events.length - PARTITIONS;
  if (input.length < events.length + PARTITIONS)
    problems.push(`the input holds ${input.length} records, not the ${events.length} events and ${PARTITIONS} flush events`);
  const diffs = {
    tumbling: compareResults(reference.tumbling, await windowsOf(kafka.client, topics.tumbling)),
    sliding: compareResults(reference.sliding, await windowsOf(kafka.client, topics.sliding)),
  };
  for (const [what, d] of Object.entries(diffs)) if (!d.equal) problems.push(`${what}: ${d.summary}`);
  if (problems.length > 0) problems.push(`shim log: ${env.tail(shim, 5)}`);
  const sum = (f: (d: ResultDiff<TumblingResult>) => number) => f(diffs.tumbling) + f(diffs.sliding);
  const restoresLogged = everyWorker.map((w) => ({ worker: w.label, rebuilt: linesWith(w, "keyed state rebuilt from the changelog") }));
  return {
    fault: fault.name,
    summary: fault.summary,
    ok: problems.length === 0,
    recordsIn: expected,
    readBack: sum((d) => d.actual),
    lost: sum((d) => d.missing.length),
    duplicated: sum((d) => d.duplicates.length),
    unexpected: sum((d) => d.extra.length + d.different.length),
    sampleLost: [],
    sampleDuplicated: [],
    ...stallAround(reader.arrivals, Number.isNaN(faultAt) ? endAt : faultAt, endAt),
    jobSeconds: (endAt - started) / 1000,
    faultSeconds: (faultEnd - faultAt) / 1000,
    countedByJob: final?.out ?? null,
    details: {
      ...details,
      events: events.length,
      services: options.services,
      windows: { tumbling: diffs.tumbling.summary, sliding: diffs.sliding.summary },
      restoresCountedByJob: final?.restores ?? null,
      restoresLogged,
      producedPerSecond: options.rate,
      slowestProducerSendMs: producer.state.slowestSendMs,
      inputRecords: input.length,
      inputRecordsSentTwice: sentTwice,
      inputMissing: missingFrom(events, input),
      producerRestarts: producer.state.restarts,
    },
    problems,
  };
}

/** Events produced but absent from the input as read back: how many, per partition, and the first and last index. */
function missingFrom(events: readonly StatefulEvent[], input: readonly StatefulEvent[]) {
  const id = (e: StatefulEvent) => `${e.service}|${e.ts}|${e.latency}`;
  const left = new Map<string, number>();
  for (const e of input) left.set(id(e), (left.get(id(e)) ?? 0) + 1);
  const missing: number[] = [];
  events.forEach((e, i) => {
    const n = left.get(id(e)) ?? 0;
    if (n > 0) left.set(id(e), n - 1);
    else missing.push(i);
  });
  const byPartition: Record<number, number> = {};
  for (const i of missing) byPartition[partitionOf(events[i]!.service, PARTITIONS)] = (byPartition[partitionOf(events[i]!.service, PARTITIONS)] ?? 0) + 1;
  return { count: missing.length, byPartition, firstIndex: missing[0] ?? null, lastIndex: missing[missing.length - 1] ?? null };
}

/** Lines of a child's log that hold `text` (0 when it has no log). */
function linesWith(c: SageChild, text: string): number {
  try {
    return readFileSync(c.log, "utf8")
      .split("\n")
      .filter((l) => l.includes(text)).length;
  } catch {
    return 0;
  }
}

/** `sage stop` of the job: the windows its sinks counted, its dead letters and restores (null, and a problem, when it did not stop within 2 min). */
async function stopJob(env: ChaosEnv, jobId: string, problems: string[]): Promise<{ out: number | null; deadLetters: number; restores: number } | null> {
  const client = await env.client();
  try {
    const ids = Array.from({ length: WORKFLOWS }, (_, i) => partitionWorkflowId(PIPELINE, jobId, i));
    const job = new StreamJobHandle(client, PIPELINE, jobId, ids);
    await job.stop();
    const result = await Promise.race([job.result(), new Promise<null>((r) => setTimeout(() => r(null), 120_000))]);
    if (!result) {
      problems.push("the job did not stop within 120 s of `sage stop`");
      return null;
    }
    const out = (result.counts["tumbling-out"]?.out ?? 0) + (result.counts["sliding-out"]?.out ?? 0);
    const restores = result.workflows.reduce((n, w) => n + (w?.restores ?? 0), 0);
    return { out, deadLetters: result.deadLetters, restores };
  } finally {
    await client.close();
  }
}
