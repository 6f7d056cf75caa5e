/**
 * The stateful bench's Sage side. The streaming job runs as deployed (`sage worker` and `sage shim`
 * processes on the bench's dev server and broker) and is measured as the Java peers are; then its
 * workflow history, changelog and checkpoints. Also: the restore of a cold worker from the
 * changelog, and the bounded variant over a JSON Lines file.
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { defaultPayloadConverter } from "@temporalio/common";
import proto from "@temporalio/proto";
import type { DevServer } from "../../dev/temporal-server.js";
import { loadConfig } from "../../client/config-loader.js";
import { SageClient } from "../../client/sage-client.js";
import { createKafkajsClient } from "../../connectors/kafka/kafkajs-client.js";
import { BATCH_SIGNAL, changelogTopicOf, partitionWorkflowId, repartitionTopicOf, type BatchDescription } from "../../core/plan/stream.js";
import { StreamJobHandle, type StreamJobProgress } from "../../streaming/stream-job.js";
import { waitForPollers } from "../cluster.js";
import { cpuSeconds } from "../cpu.js";
import { guard, startSage, topicBytes, untilProgress, type SageProcess, type TopicBytes } from "../sage-process.js";
import { runSageJob, type SageJobRun } from "../sage-job.js";
import { streamTimeline } from "../timeline.js";
import { ensureEventTimeTopic, eventMessage, generateEvents, partitionOf, STATEFUL_EPOCH_MS, type StatefulEvent } from "./events.js";
import { peakRssMb, readWindows } from "./peers.js";
import { parseResult, type SlidingResult, type TumblingResult, type WindowResults } from "./results.js";
import pipeline from "./pipeline.js";

type History = proto.temporal.api.history.v1.IHistory;

/** The module `sage worker` and `sage shim` load. */
const PIPELINE_FILE = "bench/stateful/pipeline.ts";
/** The keyed operators (their uids), each with a repartition and a changelog topic. */
const KEYED_UIDS = ["tumbling", "sliding"] as const;

/** Where a Sage run happens and what it reads and writes. */
export interface SageClusterOptions {
  server: DevServer;
  brokers: string;
  /** The broker's data dir (`startBroker`): the changelog's bytes are measured on disk there. */
  brokerDataDir: string;
  /** Partition workflows, and so instances of each keyed operator (the machine has 2 cores). */
  parallelism: number;
  /** Scratch dir: the workers' data dir and the processes' logs. */
  dir: string;
  /** Where the workers keep keyed state (default memory); embedded: each worker in its own state.dir under `dir`. */
  backend?: "memory" | "embedded";
  log?: (line: string) => void;
}

/** What the streaming run reads, writes and must produce (the peers' contract). */
export interface SageStreamingOptions extends SageClusterOptions {
  /** The input topic, already produced (`produceEvents`). */
  input: string;
  outputs: { tumbling: string; sliding: string };
  jobId: string;
  expected: { tumbling: number; sliding: number };
  inputRecords: number;
  /** Partitions of the output topics (default 4). */
  partitions?: number;
  /** `sage worker` processes (default 1): one process runs its activities on one event loop, so one core. */
  workers?: number;
  /** Give up after this long (default 15 min). */
  timeoutMs?: number;
  /** After the last expected window, how long to keep reading to catch duplicates (default 2 s; not timed). */
  settleMs?: number;
}

/** What the streaming run measured. */
export interface SageStreamingRun {
  inputRecords: number;
  recordsPerSecond: number;
  /** From the first input batch the shim signalled (its cut time) to the read of the last expected window (read_committed). */
  jobMs: number;
  /** From the worker processes' start to the last expected window. */
  wallMs: number;
  /** From the worker processes' start to the first input batch (workflow code bundled, shim in its group). */
  startupMs: number;
  /** CPU of the workers and the shim from the shim's start to the last window (and the dev server's, apart). */
  cpuMs: { sage: number; server: number };
  /** Peak resident memory, MB (the workers' summed). */
  rssPeakMb: { workers: number; shim: number };
  results: WindowResults;
  /** Workflow history over every run of every partition workflow. */
  history: { runs: number; events: number; bytes: number };
  /** Continue-as-new as batches feel it (the last stage activity of a run to the first of the next), ms: p50 over workflows, max. */
  checkpoint: { count: number; p50Ms: number; maxMs: number; holdToCloseP50Ms: number };
  changelog: TopicBytes;
  repartition: TopicBytes;
  final: StreamJobProgress;
  logs: { workers: string[]; shim: string };
}

/** Environment of the job's `sage` processes: settings, and the topics the pipeline module reads when compiled. */
function jobEnv(o: SageClusterOptions, taskQueue: string, topics: { input: string; tumbling: string; sliding: string }): Record<string, string> {
  return {
    SAGE_TEMPORAL_ADDRESS: o.server.address,
    SAGE_TEMPORAL_TASK_QUEUE: taskQueue,
    SAGE_DATA_DIR: join(o.dir, "data"),
    SAGE_KAFKA_BROKERS: o.brokers,
    SAGE_KAFKA_DEAD_LETTER_TOPIC: `${topics.input}.dlq`,
    SAGE_EXECUTION_PARALLELISM: String(o.parallelism),
    // Info: the worker then logs each restore from the changelog (and little else).
    SAGE_LOG_LEVEL: "info",
    // The worker and the shim would both take the default /metrics port.
    SAGE_MONITORING_ENABLED: "false",
    STATEFUL_IN: topics.input,
    STATEFUL_TUMBLING: topics.tumbling,
    STATEFUL_SLIDING: topics.sliding,
    // Each backend's run reads the input from the start in its own group.
    STATEFUL_GROUP: `${topics.input}.sage${o.backend === "embedded" ? "-embedded" : ""}`,
  };
}

/** The state settings of a worker: the backend, and for an embedded one its state.dir `<dir>/<name>` (a worker restarted on the same one recovers locally). */
function stateEnv(o: SageClusterOptions, name: string): Record<string, string> {
  if (o.backend !== "embedded") return {};
  return { SAGE_STATE_BACKEND: "embedded", SAGE_STATE_DIR: join(o.dir, name) };
}

/** A client on the bench's dev server for the job's task queue. */
function connect(env: Record<string, string>): Promise<SageClient> {
  return SageClient.connect({ config: loadConfig({ env, overrides: {} }) });
}

/** The partition workflows of job `jobId`. */
function jobHandle(client: SageClient, jobId: string, parallelism: number): StreamJobHandle {
  const ids = Array.from({ length: parallelism }, (_, i) => partitionWorkflowId(pipeline.name, jobId, i));
  return new StreamJobHandle(client, pipeline.name, jobId, ids);
}

/**
 * `ensureEventTimeTopic`, tried again on a retriable broker error: on the loaded 2-core machine a
 * topic's metadata can lag its creation ("This server does not host this topic-partition").
 */
async function ensureTopic(brokers: string, topic: string, partitions: number): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await ensureEventTimeTopic([brokers], topic, partitions);
    } catch (err) {
      if (attempt >= 5 || !(err as { retriable?: boolean }).retriable) throw err;
      await new Promise((r) => setTimeout(r, 1_000 * attempt));
    }
  }
}

/** Runs the Sage streaming job over `o.input` until every expected window was read (read_committed), then stops it and measures what it left. */
export async function runSageStreaming(o: SageStreamingOptions): Promise<SageStreamingRun> {
  const log = o.log ?? (() => {});
  const taskQueue = `stateful-${o.jobId}`;
  const env = jobEnv(o, taskQueue, { input: o.input, ...o.outputs });
  for (const topic of [o.outputs.tumbling, o.outputs.sliding]) await ensureTopic(o.brokers, topic, o.partitions ?? 4);
  const kafka = createKafkajsClient({ brokers: [o.brokers], clientId: "stateful-sage" });
  const client = await connect(env);
  const workers = Array.from({ length: o.workers ?? 1 }, (_, i) =>
    startSage(["worker", PIPELINE_FILE], { ...env, ...stateEnv(o, `${o.jobId}.state-${i + 1}`) }, join(o.dir, `${o.jobId}.worker-${i + 1}.log`)),
  );
  const startedAt = Math.min(...workers.map((w) => w.startedAt));
  let shim: SageProcess | null = null;
  try {
    await waitForPollers(client, taskQueue, workers.length);
    const reader = await readWindows(kafka, { ...o, brokers: o.brokers, appId: `stateful-sage-${o.jobId}` });
    shim = startSage(["shim", PIPELINE_FILE, "--job-id", o.jobId], env, join(o.dir, `${o.jobId}.shim.log`));
    const pids = [...workers.map((w) => w.pid), shim.pid];
    log(`sage: worker pid(s) ${workers.map((w) => w.pid).join(", ")}, shim pid ${shim.pid}, logs in ${o.dir}`);
    const cpu0 = { sage: cpuSeconds(pids) ?? 0, server: cpuSeconds([o.server.pid]) ?? 0 };
    const lastAt = await Promise.race([reader.complete, guard("sage", [...workers, shim], o.timeoutMs ?? 900_000, reader.progress)]);
    const rssPeakMb = { workers: workers.reduce((mb, w) => mb + peakRssMb(w.pid), 0), shim: peakRssMb(shim.pid) };
    const cpu1 = { sage: cpuSeconds(pids) ?? 0, server: cpuSeconds([o.server.pid]) ?? 0 };
    await new Promise((r) => setTimeout(r, o.settleMs ?? 2_000));
    log(`sage: ${reader.progress()}`);
    const results = reader.results();
    await reader.stop();
    // `sage stop`: the partition workflows finish what they accepted; the shim sees it and exits.
    const job = jobHandle(client, o.jobId, o.parallelism);
    await job.stop();
    const final = await job.result();
    await Promise.race([shim.exited, new Promise((r) => setTimeout(r, 30_000))]);
    const histories = await Promise.all(job.workflowIds.map((id) => runHistories(client, id)));
    const firstInputAt = Math.min(...histories.map(firstBatchCutAt));
    if (!Number.isFinite(firstInputAt)) throw new Error("sage: no batch signal in the first run of any partition workflow");
    const jobMs = lastAt - firstInputAt;
    return {
      inputRecords: o.inputRecords,
      recordsPerSecond: o.inputRecords / (jobMs / 1000),
      jobMs,
      wallMs: lastAt - startedAt,
      startupMs: firstInputAt - startedAt,
      cpuMs: { sage: (cpu1.sage - cpu0.sage) * 1000, server: (cpu1.server - cpu0.server) * 1000 },
      rssPeakMb,
      results,
      ...historySummary(histories),
      changelog: await topicBytes(
        kafka,
        o.brokerDataDir,
        KEYED_UIDS.map((uid) => changelogTopicOf(pipeline.name, o.jobId, uid)),
      ),
      repartition: await topicBytes(
        kafka,
        o.brokerDataDir,
        KEYED_UIDS.map((uid) => repartitionTopicOf(pipeline.name, o.jobId, uid)),
      ),
      final,
      logs: { workers: workers.map((w) => w.logFile), shim: shim.logFile },
    };
  } finally {
    await shim?.stop();
    for (const w of workers) await w.stop();
    await client.close();
  }
}

/** The histories of every run of workflow `id`, oldest first (following continue-as-new back from the current run). */
async function runHistories(client: SageClient, id: string): Promise<History[]> {
  const runs: History[] = [];
  for (let runId: string | undefined = undefined; ;) {
    const history = await client.temporal.workflow.getHandle(id, runId).fetchHistory();
    runs.unshift(history);
    runId = history.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    if (!runId) return runs;
  }
}

/** When the shim cut the first batch of a workflow's first run (ms; Infinity when it has none). */
function firstBatchCutAt(histories: History[]): number {
  for (const e of histories[0]?.events ?? []) {
    const sig = e.workflowExecutionSignaledEventAttributes;
    if (sig?.signalName !== BATCH_SIGNAL || !sig.input?.payloads?.[0]) continue;
    const metas = defaultPayloadConverter.fromPayload<BatchDescription[]>(sig.input.payloads[0]);
    return Math.min(...metas.map((m) => m.cutAt));
  }
  return Infinity;
}

/** History bytes and events over every run, and the checkpoints between runs. */
function historySummary(histories: History[][]): Pick<SageStreamingRun, "history" | "checkpoint"> {
  const all = histories.flat();
  const timelines = histories.map((h) => streamTimeline(h, () => null)).filter((t) => t.runs > 1);
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
  return {
    history: {
      runs: all.length,
      events: all.reduce((n, h) => n + (h.events?.length ?? 0), 0),
      bytes: all.reduce((n, h) => n + proto.temporal.api.history.v1.History.encode(h).finish().length, 0),
    },
    checkpoint: {
      count: all.length - histories.length,
      p50Ms: median(timelines.map((t) => t.runToFirstActivity[0])),
      maxMs: Math.max(...timelines.map((t) => t.runToFirstActivity[1])),
      holdToCloseP50Ms: median(timelines.map((t) => t.holdToClose[0])),
    },
  };
}

/** What the restore measured. */
export interface SageRestore {
  /** Keys with live state (every key's windows are open when the worker is replaced). */
  keys: number;
  events: number;
  /** What the fresh worker logged, one line per keyed operator and partition it rebuilt (or, embedded, recovered locally: `recovery`). */
  restores: Array<{ changelog: string; partition: number; entries?: number; ms: number; recovery?: string }>;
  /** Restores the partition workflows counted (their progress). */
  counted: number;
  changelog: TopicBytes;
}

/**
 * The restore of `keys` keys: a job reads `8 x keys` events that all lie in the first 9 s of event
 * time, so no window fires and every key's tumbling window and three sliding windows stay in state.
 * Then the worker is replaced by a fresh process, a few more events arrive, and the fresh worker
 * brings each keyed operator's partitions up to date, as it logs: from the changelog when it has no
 * local copy, or (`sameDisk`, embedded backend) by local recovery of the stores its predecessor left.
 */
export async function measureRestore(o: SageClusterOptions & { keys: number; seed: number; sameDisk?: boolean }): Promise<SageRestore> {
  const log = o.log ?? (() => {});
  const jobId = `restore-${Date.now()}`;
  const topics = { input: `stateful.${jobId}.in`, tumbling: `stateful.${jobId}.tumbling`, sliding: `stateful.${jobId}.sliding` };
  const events = generateEvents({ events: 8 * o.keys, services: o.keys, seed: o.seed, spanMs: 9_000 });
  const triggers = generateEvents({ events: 64, services: o.keys, seed: o.seed + 1, spanMs: 1_000, epochMs: STATEFUL_EPOCH_MS + 8_000 });
  const kafka = createKafkajsClient({ brokers: [o.brokers], clientId: "stateful-restore" });
  for (const t of Object.values(topics)) await ensureTopic(o.brokers, t, 4);
  const produce = async (batch: StatefulEvent[]) => {
    const producer = await kafka.producer();
    try {
      for (let i = 0; i < batch.length; i += 20_000)
        await producer.send(
          topics.input,
          batch.slice(i, i + 20_000).map((e) => eventMessage(e, partitionOf(e.service, 4))),
        );
    } finally {
      await producer.close();
    }
  };
  await produce(events);
  const taskQueue = `stateful-${jobId}`;
  const env = jobEnv(o, taskQueue, topics);
  const client = await connect(env);
  const job = jobHandle(client, jobId, o.parallelism);
  const procs: SageProcess[] = [startSage(["worker", PIPELINE_FILE], { ...env, ...stateEnv(o, `${jobId}.state-1`) }, join(o.dir, `${jobId}.worker-1.log`))];
  try {
    await waitForPollers(client, taskQueue, 1);
    procs.push(startSage(["shim", PIPELINE_FILE, "--job-id", jobId], env, join(o.dir, `${jobId}.shim.log`)));
    const inOf = (p: StreamJobProgress, uid: string) => p.counts[uid]?.in ?? 0;
    await untilProgress(job, "restore: state built", procs, (p) => KEYED_UIDS.every((uid) => inOf(p, uid) >= events.length) && p.pending === 0);
    log(`restore: ${events.length} events in state; replacing the worker with a fresh process`);
    await procs[0]!.stop();
    const fresh = startSage(
      ["worker", PIPELINE_FILE],
      { ...env, ...stateEnv(o, `${jobId}.state-${o.sameDisk ? 1 : 2}`) },
      join(o.dir, `${jobId}.worker-2.log`),
    );
    procs[0] = fresh;
    await produce(triggers);
    // Each partition workflow's first unit on the fresh worker opens both keyed operators' state (they share its stage).
    const counted = (p: StreamJobProgress) => p.workflows.reduce((n, w) => n + (w?.restores ?? 0), 0);
    const opened = (): SageRestore["restores"] =>
      readFileSync(fresh.logFile, "utf8")
        .split("\n")
        .filter((l) => l.includes("keyed state rebuilt from the changelog") || l.includes("keyed state recovered locally"))
        .map((l) => JSON.parse(l) as SageRestore["restores"][number]);
    const done = await untilProgress(job, "restore: fresh worker restored", [fresh, procs[1]!], () => opened().length >= KEYED_UIDS.length * o.parallelism);
    const restores = opened();
    if (restores.length < KEYED_UIDS.length * o.parallelism)
      throw new Error(
        `restore: the fresh worker logged ${restores.length} rebuilds, not one per keyed operator and partition (${KEYED_UIDS.length * o.parallelism})`,
      );
    const changelog = await topicBytes(
      kafka,
      o.brokerDataDir,
      KEYED_UIDS.map((uid) => changelogTopicOf(pipeline.name, jobId, uid)),
    );
    await job.stop();
    await job.result();
    return { keys: new Set(events.map((e) => e.service)).size, events: events.length, restores, counted: counted(done), changelog };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await client.close();
  }
}

/** What the bounded variant measured. */
export interface SageBoundedRun {
  run: SageJobRun;
  results: WindowResults;
}

/** The bounded variant: the same job over `input` (JSON Lines, no flush events: a bounded job's watermark ends at +infinity). */
export async function runSageBounded(server: DevServer, o: { input: string; dir: string; parallelism: number }): Promise<SageBoundedRun> {
  const out = { tumbling: join(o.dir, "bounded-tumbling.jsonl"), sliding: join(o.dir, "bounded-sliding.jsonl") };
  const run = await runSageJob(server, {
    pipeline,
    pipelineFile: PIPELINE_FILE,
    params: { input: o.input, ...out },
    workers: 1,
    settings: { SAGE_EXECUTION_PARALLELISM: String(o.parallelism) },
    dir: join(o.dir, "bounded"),
    label: "stateful-bounded",
  });
  const read = <T extends TumblingResult>(path: string): T[] =>
    existsSync(path)
      ? readFileSync(path, "utf8")
          .split("\n")
          .filter((l) => l.length > 0)
          .map((l) => parseResult<T>(l))
      : [];
  return { run, results: { tumbling: read<TumblingResult>(out.tumbling), sliding: read<SlidingResult>(out.sliding) } };
}
