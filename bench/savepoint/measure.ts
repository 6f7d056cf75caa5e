/**
 * One size of the savepoint bench: a job (`pipeline.ts`, `sage worker` and `sage shim` processes)
 * reads one record for each of N keys; a savepoint is taken of it while it runs (`takeSavepoint`,
 * what `sage savepoint` calls) and the job is stopped; the changelog it read is read once more with
 * the project's Kafka client (the baseline, the floor of both savepoint and restore); then a new
 * job from the savepoint on each state backend (`restored-job.ts`).
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import { loadConfig } from "../../client/config-loader.js";
import { SageClient } from "../../client/sage-client.js";
import { DirectorySavepointStore } from "../../client/savepoint/store.js";
import { takeSavepoint, type TakenSavepoint } from "../../client/savepoint/take.js";
import type { KafkaClient } from "../../connectors/kafka/client.js";
import { kafkaClientOf } from "../../connectors/kafka/index.js";
import { changelogTopicOf, partitionWorkflowId } from "../../core/plan/stream.js";
import { StreamJobHandle } from "../../streaming/stream-job.js";
import { waitForPollers } from "../cluster.js";
import { startSage, topicBytes, untilProgress, type SageProcess, type TopicBytes } from "../sage-process.js";
import { ensureTopics, jobEnv, keyOf, PIPELINE_FILE, produce, UID, type SavepointBenchOptions } from "./job-env.js";
import pipeline, { type KeyRecord } from "./pipeline.js";
import { restoredJob, type RestoredJob } from "./restored-job.js";

/** What one size measured. */
export interface SavepointBenchRun {
  keys: number;
  feed: { produceMs: number; jobMs: number };
  savepoint: {
    id: string;
    /** The barrier signal to the manifest on disk (its mtime): what `sage savepoint` waits for. */
    ms: number;
    /** The whole `takeSavepoint` call (the barrier's release included). */
    callMs: number;
    /** From the barrier: sources paused (the shim's ack), drained, state read and written. */
    phases: { pausedMs: number; drainedMs: number; writtenMs: number };
    /** Files on disk: all, the state file, the manifest. */
    bytes: number;
    stateBytes: number;
    manifestBytes: number;
    entries: number;
  };
  changelog: TopicBytes & { records: number; readMs: number };
  /** The jobs from the savepoint: memory backend, then (when asked) embedded. */
  restores: RestoredJob[];
}

/** Bytes of the files under `dir`. */
function bytesUnder(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) n += e.isDirectory() ? bytesUnder(join(dir, e.name)) : statSync(join(dir, e.name)).size;
  return n;
}

/** Measures one size (see the module comment). */
export async function measureSavepoint(o: SavepointBenchOptions): Promise<SavepointBenchRun> {
  const stamp = Date.now();
  const input = `spbench.${o.keys}.${stamp}.in`;
  const jobId = (name: string) => `spbench-${o.keys}-${stamp}-${name}`;
  const taskQueue = `spbench-${stamp}`;
  const env = jobEnv(o, taskQueue, input, jobId("a"));
  const logger: Logger = pino({ level: "info" }, pino.destination({ dest: join(o.dir, `${jobId("a")}.bench.log`), sync: true }));
  const kafka = kafkaClientOf(loadConfig({ env, overrides: {} }), logger);
  const client = await SageClient.connect({ config: loadConfig({ env, overrides: {} }) });
  const procs: SageProcess[] = [];
  try {
    await ensureTopics(
      kafka,
      input,
      ["a", "b", "c"].map((name) => jobId(name)),
      o.partitions,
    );
    const t0 = performance.now();
    await produce(
      kafka,
      input,
      Array.from({ length: o.keys }, (_, i): KeyRecord => ({ k: keyOf(i), v: 1 })),
    );
    const produceMs = performance.now() - t0;
    o.log(`${o.keys} keys: produced in ${(produceMs / 1000).toFixed(1)} s; running job A`);

    // Job A reads one record per key: one state entry per key.
    procs.push(startSage(["worker", PIPELINE_FILE], env, join(o.dir, `${jobId("a")}.worker.log`)));
    await waitForPollers(client, taskQueue, 1, 300_000);
    const jobA = new StreamJobHandle(
      client,
      pipeline.name,
      jobId("a"),
      Array.from({ length: o.parallelism }, (_, i) => partitionWorkflowId(pipeline.name, jobId("a"), i)),
    );
    const fedAt = performance.now();
    procs.push(startSage(["shim", PIPELINE_FILE, "--job-id", jobId("a")], env, join(o.dir, `${jobId("a")}.shim.log`)));
    await untilProgress(jobA, "job A: state built", procs, (p) => (p.counts[UID]?.in ?? 0) >= o.keys && p.pending === 0, 3_600_000);
    const jobMs = performance.now() - fedAt;
    o.log(`${o.keys} keys: job A read them in ${(jobMs / 1000).toFixed(1)} s; savepoint`);

    const store = new DirectorySavepointStore(join(o.dir, "savepoints"));
    const savepoint = await timeSavepoint(jobA, kafka, store, logger);
    await jobA.stop();
    await jobA.result();
    for (const p of procs.splice(0).reverse()) await p.stop();

    const changelog = changelogTopicOf(pipeline.name, jobId("a"), UID);
    const t1 = performance.now();
    const read = await kafka.readToEnd(changelog);
    const readMs = performance.now() - t1;
    const onDisk = await topicBytes(kafka, o.brokerDataDir, [changelog]);
    o.log(`${o.keys} keys: savepoint ${(savepoint.ms / 1000).toFixed(1)} s, changelog read ${(readMs / 1000).toFixed(1)} s; restoring`);

    const context = { taskQueue, input, kafka, logger, store, savepointId: savepoint.taken.id, offsets: savepoint.taken.manifest.sources.offsets };
    const restores = [await restoredJob(o, context, jobId("b"), "memory")];
    if (o.embedded) restores.push(await restoredJob(o, context, jobId("c"), "embedded"));
    return {
      keys: o.keys,
      feed: { produceMs, jobMs },
      savepoint: {
        id: savepoint.taken.id,
        ms: savepoint.ms,
        callMs: savepoint.callMs,
        phases: savepoint.phases,
        bytes: bytesUnder(savepoint.taken.path),
        stateBytes: savepoint.taken.manifest.operators[UID]?.bytes ?? 0,
        manifestBytes: statSync(join(savepoint.taken.path, "manifest.json")).size,
        entries: savepoint.taken.manifest.operators[UID]?.entries ?? 0,
      },
      changelog: { ...onDisk, records: read.length, readMs },
      restores,
    };
  } finally {
    for (const p of procs.reverse()) await p.stop();
    await client.close();
  }
}

/** A savepoint taken and how long it took. */
interface TimedSavepoint {
  taken: TakenSavepoint;
  ms: number;
  callMs: number;
  phases: SavepointBenchRun["savepoint"]["phases"];
}

/** `takeSavepoint` of the running job, timed from the barrier to the manifest's mtime and by phase. */
async function timeSavepoint(job: StreamJobHandle, kafka: KafkaClient, store: DirectorySavepointStore, logger: Logger): Promise<TimedSavepoint> {
  const at: Record<string, number> = {};
  const started = Date.now();
  const taken = await takeSavepoint(job, kafka, {
    store,
    logger,
    onPhase: (phase) => {
      if (phase.startsWith("sources paused")) at.paused = Date.now() - started;
      else if (phase.startsWith("drained")) at.drained = Date.now() - started;
    },
  });
  const callMs = Date.now() - started;
  const ms = statSync(join(taken.path, "manifest.json")).mtimeMs - started;
  return { taken, ms, callMs, phases: { pausedMs: at.paused ?? NaN, drainedMs: at.drained ?? NaN, writtenMs: ms } };
}
