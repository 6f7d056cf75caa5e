/**
 * One chaos run of the Kafka -> Kafka exactly-once job (`bench/kafka-pipeline.ts`): a worker and a
 * shim as `sage` processes, N records produced at a steady rate (a live stream, so that a stall
 * shows as a gap in the output), a read_committed reader timing each new output record, the fault
 * injected once 30% of the records are out, then the job stopped and both topics read back to
 * count every id.
 */
import { Kafka, logLevel } from "kafkajs";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { partitionWorkflowId } from "../../core/plan/stream.js";
import { sleep, stopChild, waitFor, type ChaosEnv, type SageChild, type StreamRun } from "./env.js";

export type { StreamRun } from "./env.js";
import { stallAround, tally, type Stall, type Tally } from "./tally.js";

/** Partitions of the input and output topics; partition workflows of the job. */
const PARTITIONS = 4;
const WORKFLOWS = 2;
const PAD = "x".repeat(120);

/** A fault under the running job. */
export interface StreamFault {
  name: string;
  summary: string;
  /** Checks what the fault needs on this machine; a reason when it cannot run. */
  unavailable?(): string | null;
  /** Breaks something and repairs it; resolves once the repair is done, with what it did. */
  inject(run: StreamRun): Promise<Record<string, unknown>>;
}

/** What one fault run measured. */
export interface FaultResult extends Tally, Stall {
  fault: string;
  summary: string;
  ok: boolean;
  /** Seconds from the shim's start to the last output record. */
  jobSeconds: number;
  /** Seconds the fault took, from its start to its repair. */
  faultSeconds: number;
  /** Records the partition workflows counted out of the sink. */
  countedByJob: number | null;
  details: Record<string, unknown>;
  problems: string[];
}

/** Options of a run. */
export interface StreamRunOptions {
  records: number;
  /** Records produced per second. */
  rate: number;
  /** Share of the output committed before the fault (0.3). */
  faultAfter: number;
  /** Give up waiting for more output after this long without a new record (s). */
  idleSeconds: number;
  sessionTimeoutSeconds: number;
}

function event(id: number): { key: string; value: string } {
  const key = `k${id % 101}`;
  return { key, value: JSON.stringify({ id, key, sentAt: Date.now(), amount: (id * 7) % 1000, payload: PAD }) };
}

/** Produces records 0..n-1 at `rate` per second (idempotent: a retried send is not written twice) until done or stopped. */
function startProducer(brokers: string, topic: string, n: number, rate: number) {
  const kafka = new Kafka({ clientId: "chaos-producer", brokers: [brokers], logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 100 } });
  const state = { sent: 0, stopped: false, slowestSendMs: 0 };
  const tickMs = 50;
  const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
  const done = (async () => {
    await producer.connect();
    try {
      for (let next = Date.now(); state.sent < n && !state.stopped;) {
        const batch = Array.from({ length: Math.min(perTick, n - state.sent) }, (_, j) => event(state.sent + j));
        const at = Date.now();
        await producer.send({ topic, messages: batch });
        state.slowestSendMs = Math.max(state.slowestSendMs, Date.now() - at);
        state.sent += batch.length;
        next += tickMs;
        await sleep(Math.max(0, next - Date.now()));
      }
    } finally {
      await producer.disconnect();
    }
  })();
  return { state, done };
}

/** Tails the output topic with read_committed: the first time each id was seen. */
async function startReader(brokers: string, topic: string) {
  const kafka = new Kafka({ clientId: "chaos-reader", brokers: [brokers], logLevel: logLevel.NOTHING });
  const consumer = kafka.consumer({ groupId: `${topic}.reader`, maxWaitTimeInMs: 100, sessionTimeout: 30_000 });
  const seen = new Set<number>();
  const arrivals: number[] = [];
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const now = Date.now();
      for (const m of batch.messages) {
        const id = (JSON.parse(m.value!.toString("utf8")) as { id: number }).id;
        if (!seen.has(id)) {
          seen.add(id);
          arrivals.push(now);
        }
      }
    },
  });
  return { seen, arrivals, stop: () => consumer.disconnect() };
}

/** Ids of every record of `topic`, read_committed from the beginning. */
async function idsOf(env: ChaosEnv, topic: string): Promise<number[]> {
  const { client } = await env.kafka();
  const messages = await client.readAll(topic, { idleTimeoutMs: 20_000 });
  return messages.map((m) => (JSON.parse(m.value!.toString("utf8")) as { id: number }).id);
}

/** Runs the job through `fault` and counts what came out. */
export async function runStreamFault(env: ChaosEnv, fault: StreamFault, options: StreamRunOptions): Promise<FaultResult> {
  const { broker, client: kafka } = await env.kafka();
  const tag = `chaos-${fault.name}-${Date.now()}`;
  const topics = { input: `${tag}.in`, output: `${tag}.out`, dlq: `${tag}.dlq` };
  const admin = await kafka.admin();
  try {
    await admin.ensureTopic(topics.input, PARTITIONS);
    await admin.ensureTopic(topics.output, PARTITIONS);
    await admin.ensureTopic(topics.dlq, 1);
  } finally {
    await admin.close();
  }
  const taskQueue = tag;
  const sageEnv = {
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_DATA_DIR: `${env.dir}/data-${fault.name}`,
    SAGE_KAFKA_BROKERS: broker.address,
    SAGE_KAFKA_DEAD_LETTER_TOPIC: topics.dlq,
    SAGE_KAFKA_SESSION_TIMEOUT: `${options.sessionTimeoutSeconds}s`,
    SAGE_EXECUTION_PARALLELISM: String(WORKFLOWS),
    SAGE_LOG_LEVEL: "warn",
    SAGE_MONITORING_ENABLED: "false",
    BENCH_IN: topics.input,
    BENCH_OUT: topics.output,
    BENCH_GROUP: `${tag}.group`,
  };
  // The dev server's address is read when a child starts: after a restart it is the same one.
  const childEnv = (extra: Record<string, string> = {}) => ({ ...sageEnv, SAGE_TEMPORAL_ADDRESS: env.server.address, ...extra });
  const { run, everyWorker } = env.jobWorkers(broker, taskQueue, "bench/kafka-pipeline.ts", childEnv);
  const reader = await startReader(broker.address, topics.output);
  await run.startWorker("worker");
  const shim = env.sage("shim", ["shim", "bench/kafka-pipeline.ts", "--job-id", tag], childEnv());
  const started = Date.now();
  const producer = startProducer(broker.address, topics.input, options.records, options.rate);
  let produceError: unknown = null;
  producer.done.catch((err: unknown) => (produceError = err));
  const problems: string[] = [];
  let faultAt = NaN;
  let faultEnd = NaN;
  let details: Record<string, unknown> = {};
  let countedByJob: number | null = null;
  try {
    const before = Math.ceil(options.records * options.faultAfter);
    await waitFor(`${before} records out before the fault`, () => (reader.seen.size >= before ? true : undefined), 300_000, 50);
    env.log(`${fault.name}: ${reader.seen.size} records out after ${((Date.now() - started) / 1000).toFixed(1)} s; fault starts`);
    faultAt = Date.now();
    details = await fault.inject(run);
    faultEnd = Date.now();
    env.log(`${fault.name}: fault over after ${((faultEnd - faultAt) / 1000).toFixed(1)} s; ${reader.seen.size} records out`);
    // Every record out, or none new for a long while (then some are lost, or the job is stuck).
    let last = { n: reader.seen.size, at: Date.now() };
    await waitFor(
      "the rest of the output",
      () => {
        if (reader.seen.size >= options.records) return true;
        if (reader.seen.size !== last.n) last = { n: reader.seen.size, at: Date.now() };
        return Date.now() - last.at > options.idleSeconds * 1000 ? false : undefined;
      },
      3_600_000,
      100,
    );
    if (produceError) problems.push(`the producer failed: ${(produceError as Error).message}`);
    if (reader.seen.size < options.records) problems.push(`no new output for ${options.idleSeconds} s with ${reader.seen.size} of ${options.records} out`);
    countedByJob = await stopJob(env, tag, problems);
    details = { ...details, workflowTasksByWorker: await tasksByWorker(env, tag, everyWorker) };
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
  const counted = tally(await idsOf(env, topics.input), await idsOf(env, topics.output));
  if (problems.length > 0) for (const c of [shim]) problems.push(`${c.label} log: ${env.tail(c, 5)}`);
  return {
    fault: fault.name,
    summary: fault.summary,
    ok: problems.length === 0 && counted.lost === 0 && counted.duplicated === 0 && counted.unexpected === 0,
    ...counted,
    ...stallAround(reader.arrivals, Number.isNaN(faultAt) ? endAt : faultAt, endAt),
    jobSeconds: (endAt - started) / 1000,
    faultSeconds: (faultEnd - faultAt) / 1000,
    countedByJob,
    details: { ...details, producedPerSecond: options.rate, slowestProducerSendMs: producer.state.slowestSendMs },
    problems,
  };
}

/**
 * Workflow tasks each worker completed, over every run of every partition workflow (a run
 * continued as new names the run before it): which workers did the job's work.
 */
async function tasksByWorker(env: ChaosEnv, jobId: string, workers: SageChild[]): Promise<Record<string, number>> {
  const labels = new Map(workers.map((w) => [`sage-worker@${w.child.pid}`, w.label]));
  const counts: Record<string, number> = {};
  const client = await env.client();
  try {
    for (let i = 0; i < WORKFLOWS; i++) {
      const id = partitionWorkflowId("kafkabench", jobId, i);
      for (let runId: string | undefined = undefined; ;) {
        const history = await client.temporal.workflow.getHandle(id, runId).fetchHistory();
        for (const e of history.events ?? []) {
          const who = e.workflowTaskCompletedEventAttributes?.identity;
          if (who) counts[labels.get(who) ?? who] = (counts[labels.get(who) ?? who] ?? 0) + 1;
        }
        runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
        if (!runId) break;
      }
    }
  } finally {
    await client.close();
  }
  return counts;
}

/** `sage stop` of the job and its final counts (null, and a problem, when it did not stop within 2 min). */
async function stopJob(env: ChaosEnv, jobId: string, problems: string[]): Promise<number | null> {
  const client = await env.client();
  try {
    const job = new StreamJobHandle(
      client,
      "kafkabench",
      jobId,
      Array.from({ length: WORKFLOWS }, (_, i) => partitionWorkflowId("kafkabench", jobId, i)),
    );
    await job.stop();
    const result = await Promise.race([job.result(), new Promise<null>((r) => setTimeout(() => r(null), 120_000))]);
    if (!result) problems.push("the job did not stop within 120 s of `sage stop`");
    return result?.counts["out"]?.out ?? null;
  } finally {
    await client.close();
  }
}
