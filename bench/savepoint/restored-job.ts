/**
 * A job started from the savepoint, as `sage shim --from-savepoint` starts one but in this process,
 * so that seeding (`restoreSavepoint`) is timed alone: read and check the savepoint, seed the new
 * job's changelog partitions, set its source offsets. Then a fresh `sage worker` process on the
 * chosen state backend serves it; one record per input partition arrives (after those an earlier
 * job from the savepoint was sent, which this one reads too), and each partition workflow's first
 * unit rebuilds its state from the seeded changelog, as the worker logs. On the embedded backend
 * the worker is then restarted on the same disk (SIGTERM, a new process) and more records arrive:
 * the new worker recovers its stores locally instead, as it logs.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { loadConfig } from "../../client/config-loader.js";
import { SageClient } from "../../client/sage-client.js";
import type { DirectorySavepointStore } from "../../client/savepoint/store.js";
import { restoreSavepoint } from "../../client/savepoint/restore.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { changelogTopicOf } from "../../core/plan/stream.js";
import { KafkaShim, shimOptionsOf } from "../../streaming/shim.js";
import { StreamJob, type StreamJobProgress } from "../../streaming/stream-job.js";
import { waitForPollers } from "../cluster.js";
import { startSage, untilProgress, type SageProcess } from "../sage-process.js";
import { jobEnv, PIPELINE_FILE, produce, triggerKeys, UID, type SavepointBenchOptions } from "./job-env.js";
import pipeline, { type KeyRecord } from "./pipeline.js";

/** One changelog partition's state brought up to date by a unit, as the worker logged it. */
export interface StateOpen {
  partition: number;
  /** Changelog records read (none when a local store was current). */
  entries: number;
  ms: number;
  /** `rebuilt` from the whole changelog, or (embedded) recovered locally: `current`, `tail`. */
  recovery: string;
}

/** What a job from the savepoint measured. */
export interface RestoredJob {
  backend: "memory" | "embedded";
  /** `restoreSavepoint`, the whole call. */
  seedMs: number;
  /** From the call: savepoint read and checked, changelog partitions seeded, source offsets set (the end). */
  phases: { checkedMs: number; seededMs: number; offsetsSetMs: number };
  /** The first unit of each partition workflow on the fresh worker. */
  rebuilds: StateOpen[];
  /** Entries of the keyed operator the partition workflows report after those units. */
  stateEntries: number;
  /** The restarted worker's first units (embedded only): local recovery. */
  restart?: { opens: StateOpen[]; stateEntries: number };
  /** Records the job read: those after the savepoint, an earlier restored job's included (each a key's 1). */
  read: number;
  /** Every sum the job emitted, read_committed: 2, 3, ... for a key's records after the savepoint. */
  sums: number[];
}

/** What a job from the savepoint needs from the run. */
export interface RestoreContext {
  taskQueue: string;
  input: string;
  kafka: KafkaClient;
  logger: Logger;
  store: DirectorySavepointStore;
  savepointId: string;
  /** The savepoint's source offsets (`topic:partition` to the next offset). */
  offsets: Record<string, number>;
}

/** The changelog partitions the worker logged bringing up to date. */
function opensIn(logFile: string, changelog: string): StateOpen[] {
  return readFileSync(logFile, "utf8")
    .split("\n")
    .filter((l) => l.includes("keyed state rebuilt from the changelog") || l.includes("keyed state recovered locally"))
    .map((l) => JSON.parse(l) as Partial<StateOpen> & { changelog: string; partition: number; ms: number })
    .filter((r) => r.changelog === changelog)
    .map((r) => ({ partition: r.partition, entries: r.entries ?? 0, ms: r.ms, recovery: r.recovery ?? "rebuilt" }));
}

/** Keyed-state entries of the operator over every partition workflow. */
function stateEntries(p: StreamJobProgress): number {
  return p.workflows.reduce((n, w) => n + (w?.state?.[UID]?.entries ?? 0), 0);
}

/** Records in the input topic after the savepoint's offsets: what a job from it reads (earlier jobs' records included). */
async function afterSavepoint(c: RestoreContext): Promise<number> {
  const admin = await c.kafka.admin();
  try {
    const ends = await admin.partitionOffsets(c.input);
    return ends.reduce((n, p) => n + Number(p.high) - (c.offsets[`${c.input}:${p.partition}`] ?? 0), 0);
  } finally {
    await admin.close();
  }
}

/**
 * Sends one record to a key of each input partition, and waits until the job read every record
 * after the savepoint and the worker logged a state open for each partition; returns the progress
 * and how many records the job read.
 */
async function round(
  o: SavepointBenchOptions,
  c: RestoreContext,
  job: StreamJob,
  worker: SageProcess,
  changelog: string,
): Promise<{ progress: StreamJobProgress; read: number }> {
  await produce(
    c.kafka,
    c.input,
    triggerKeys(o.keys, o.partitions).map((k): KeyRecord => ({ k, v: 1 })),
  );
  const read = await afterSavepoint(c);
  const progress = await untilProgress(
    job,
    `job ${job.jobId}: first units`,
    [worker],
    (p) => (p.counts[UID]?.in ?? 0) >= read && p.pending === 0 && opensIn(worker.logFile, changelog).length >= o.parallelism,
    1_800_000,
  );
  return { progress, read };
}

/** Job `jobId` from the savepoint on a fresh worker with `backend` (see the module comment). */
export async function restoredJob(o: SavepointBenchOptions, c: RestoreContext, jobId: string, backend: RestoredJob["backend"]): Promise<RestoredJob> {
  const env = jobEnv(o, c.taskQueue, c.input, jobId);
  const workerEnv = backend === "embedded" ? { ...env, SAGE_STATE_BACKEND: "embedded", SAGE_STATE_DIR: join(o.dir, `${jobId}.state`) } : env;
  // The pipeline module reads its topics from the environment when compiled.
  Object.assign(process.env, env);
  const client = await SageClient.connect({ config: loadConfig({ env, overrides: {} }) });
  let worker = startSage(["worker", PIPELINE_FILE], workerEnv, join(o.dir, `${jobId}.worker-1.log`));
  let shim: KafkaShim | null = null;
  try {
    await waitForPollers(client, c.taskQueue, 1, 300_000);
    const job = StreamJob.create(client, pipeline, { jobId });
    const t0 = performance.now();
    const at: Record<string, number> = {};
    await restoreSavepoint(job, c.kafka, c.store, c.savepointId, {
      sessionTimeoutMs: client.config.kafka["session-timeout"],
      logger: c.logger,
      onPhase: (phase) => {
        if (phase.startsWith("restoring")) at.checked = performance.now() - t0;
        else if (phase.startsWith(`operator ${UID}:`)) at.seeded = performance.now() - t0;
      },
    });
    const seedMs = performance.now() - t0;
    o.log(`${o.keys} keys, ${backend}: seeded job ${jobId} in ${(seedMs / 1000).toFixed(1)} s`);
    shim = new KafkaShim(job, c.kafka, shimOptionsOf(client.config), c.logger.child({ component: "shim", jobId }));
    await shim.start();
    const changelog = changelogTopicOf(pipeline.name, jobId, UID);
    const first = await round(o, c, job, worker, changelog);
    const result: RestoredJob = {
      backend,
      seedMs,
      phases: { checkedMs: at.checked ?? NaN, seededMs: at.seeded ?? NaN, offsetsSetMs: seedMs },
      rebuilds: opensIn(worker.logFile, changelog),
      stateEntries: stateEntries(first.progress),
      read: first.read,
      sums: [],
    };
    if (backend === "embedded") {
      await worker.stop();
      worker = startSage(["worker", PIPELINE_FILE], workerEnv, join(o.dir, `${jobId}.worker-2.log`));
      await waitForPollers(client, c.taskQueue, 1, 300_000);
      const second = await round(o, c, job, worker, changelog);
      result.restart = { opens: opensIn(worker.logFile, changelog), stateEntries: stateEntries(second.progress) };
      result.read = second.read;
    }
    await job.stop();
    await job.result();
    result.sums = (await c.kafka.readAll(env.SPBENCH_OUT!, { idleTimeoutMs: 1_500 })).map((m) => (JSON.parse(m.value!.toString("utf8")) as KeyRecord).v);
    return result;
  } finally {
    await shim?.stop();
    await worker.stop();
    await client.close();
  }
}
