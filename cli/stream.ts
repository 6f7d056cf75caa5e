/** Streaming jobs on the command line: `sage shim`, `sage run` of a Kafka pipeline, `sage stop`/`status` of one. */
import type { Logger } from "pino";
import type { Pipeline } from "../core/api/pipeline.js";
import type { SageConfig } from "../core/config/schema.js";
import { kafkaSourceOf } from "../core/plan/stream.js";
import { deadLetterTopicOf, kafkaClientOf } from "../connectors/kafka/index.js";
import { KafkaShim, shimOptionsOf } from "../streaming/shim.js";
import { SageClient } from "../client/sage-client.js";
import { StreamJob, StreamJobHandle, type StreamJobProgress } from "../streaming/stream-job.js";
import { loadPipeline } from "./module-loader.js";
import { cliLogger, configFrom, parseParams, startInProcessWorker, uiLink, type GlobalFlags } from "./common.js";
import { watchPauses } from "./pauses.js";
import { BrokerUnavailableError, SageError, UsageError } from "../core/errors.js";
import { prepareFromSavepoint, type FromSavepointFlags } from "./savepoint.js";

/** Flags of `sage shim` and of `sage run` for a streaming pipeline. */
export interface StreamFlags extends GlobalFlags, FromSavepointFlags {
  jobId?: string;
  param?: string[];
  pipeline?: string;
  worker?: boolean;
  json?: boolean;
}

/** One line per operator: in, out, dead. */
export function renderStreamProgress(p: StreamJobProgress): string {
  const lines = [`batches ${p.batches}, records ${p.records}, pending ${p.pending}, duplicates dropped ${p.duplicatesDropped}, dead letters ${p.deadLetters}`];
  for (const [op, c] of Object.entries(p.counts)) lines.push(`  ${op}: in ${c.in}, out ${c.out}, dead ${c.dead}`);
  for (const w of p.workflows) {
    if (!w) continue;
    const cp = w.lastCheckpoint;
    lines.push(
      `  p${w.index}: run ${w.runs}, ` +
        (cp ? `last checkpoint ${cp.at} (run ${cp.run}: ${cp.historyEvents} events, ${cp.historyBytes} history bytes, ${cp.ms} ms)` : "no checkpoint yet") +
        (w.restores ? `, state restored ${w.restores} time(s)` : ""),
    );
    const pause = w.llmBudgetPause;
    if (pause) lines.push(`    paused by llm budget until ${pause.until}: ${pause.reason}`);
    for (const [uid, wm] of Object.entries(w.watermarks ?? {})) lines.push(`    watermark ${uid}: ${new Date(wm).toISOString()}`);
    for (const [uid, size] of Object.entries(w.state ?? {}))
      lines.push(`    state ${uid}: ${size.entries} entries, ${size.bytes} bytes, ${size.timers} timers`);
  }
  return lines.join("\n");
}

/** Prepares the job and its shim (the dead-letter topic is created if missing). */
async function prepare(pipeline: Pipeline, config: SageConfig, flags: StreamFlags, defaultJobId: string | undefined, logger: Logger) {
  const client = await SageClient.connect({ config });
  const kafka = kafkaClientOf(config, logger);
  const job = StreamJob.create(client, pipeline, {
    ...((flags.jobId ?? defaultJobId) ? { jobId: flags.jobId ?? defaultJobId } : {}),
    params: parseParams(flags.param),
  });
  const admin = await kafka.admin().catch((err: unknown) => {
    // A refused password or certificate says so itself; anything else most likely means no broker.
    if (err instanceof SageError && err.input) throw err;
    throw new BrokerUnavailableError(
      `no Kafka broker answers at ${config.kafka.brokers} (${(err as Error).message}); start one with \`sage dev --kafka\` or set kafka.brokers`,
      { cause: err },
    );
  });
  try {
    await admin.ensureTopic(deadLetterTopicOf(config, pipeline.name), 1);
  } finally {
    await admin.close();
  }
  await prepareFromSavepoint(job, config, flags, logger);
  const shim = new KafkaShim(job, kafka, shimOptionsOf(config), logger.child({ component: "shim" }));
  return { client, job, shim };
}

/** Reports shim and job progress every few seconds until `done`. */
async function report(job: StreamJobHandle, shim: KafkaShim | null, done: Promise<unknown>, logger: Logger): Promise<void> {
  let settled = false;
  void done.finally(() => (settled = true)).catch(() => undefined);
  let last = { records: 0, at: Date.now() };
  while (!settled) {
    await Promise.race([done.catch(() => undefined), new Promise((r) => setTimeout(r, 5_000))]);
    if (settled) break;
    // With a shim, its own last answers: a query of the report's own would compete with the shim's.
    const p = shim ? shim.progress() : await job.progress().catch(() => null);
    if (!p) continue;
    const now = Date.now();
    const rate = Math.round(((p.records - last.records) * 1000) / Math.max(1, now - last.at));
    last = { records: p.records, at: now };
    logger.info(
      { records: p.records, recordsPerSecond: rate, batches: p.batches, pending: p.pending, deadLetters: p.deadLetters, ...(shim ? { shim: shim.stats } : {}) },
      "streaming",
    );
  }
}

/** `sage shim <module>`: feeds a streaming job from Kafka until the job is stopped or the process is interrupted. */
export async function shimCommand(modulePath: string, flags: StreamFlags): Promise<void> {
  const config = configFrom(flags);
  const logger = cliLogger(config, "shim");
  const pipeline = await loadPipeline(modulePath, flags.pipeline);
  const { plan } = pipeline.compile({ parallelism: config.execution.parallelism, fusion: config.execution.fusion });
  const source = kafkaSourceOf(plan);
  if (!source) throw new UsageError(`pipeline "${pipeline.name}" has no Kafka source; run bounded pipelines with \`sage run\``);
  // A restarted shim must find the same job: the default job id is the consumer group (a job from a savepoint is new: its id is given).
  if (flags.fromSavepoint && !flags.jobId)
    throw new UsageError("a job started from a savepoint is a new job: give it a --job-id, which a restarted shim gives again");
  const { client, job, shim } = await prepare(pipeline, config, flags, source.groupId, logger);
  watchPauses(logger);
  const interrupt = () => {
    logger.info("interrupted: the shim stops (the job keeps its accepted batches; `sage stop` stops the job)");
    void shim.stop();
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    await shim.start();
    process.stderr.write(`shim feeding ${job.workflowIds.join(", ")} from ${source.topics.join(", ")} (group ${source.groupId})\n`);
    await report(job, shim, shim.done, logger);
  } finally {
    await client.close();
  }
}

/** `sage run` of a streaming pipeline: worker and shim in this process until the job is stopped (Ctrl-C or `sage stop`). */
export async function runStreaming(pipeline: Pipeline, config: SageConfig, flags: StreamFlags, logger: Logger): Promise<void> {
  const say = (m: string) => process.stderr.write(`${m}\n`);
  const worker = flags.worker !== false ? await startInProcessWorker(pipeline, config, logger) : null;
  const { client, job, shim } = await prepare(pipeline, config, flags, undefined, logger);
  watchPauses(logger);
  const started = Date.now();
  let stopping = false;
  const interrupt = () => {
    if (stopping) return;
    stopping = true;
    say("stopping the job: partition workflows finish the batches they accepted; the shim drains");
    void job.stop().catch((err: unknown) => logger.error({ err }, "stop failed"));
  };
  process.once("SIGINT", interrupt);
  process.once("SIGTERM", interrupt);
  try {
    await shim.start();
    const link = uiLink(config, { jobId: job.jobId });
    say(`streaming job ${job.jobId}: ${job.workflowIds.length} partition workflow(s) ${job.workflowIds.join(", ")}${link ? `\nWeb UI: ${link}` : ""}`);
    say(`stop it with \`sage stop ${job.jobId}\` or Ctrl-C`);
    await report(job, shim, shim.done, logger);
    const result = await job.result();
    const wall = Date.now() - started;
    process.stdout.write(
      flags.json
        ? `${JSON.stringify({ jobId: job.jobId, workflowIds: job.workflowIds, wallMs: wall, shim: shim.stats, ...result })}\n`
        : `streaming job ${job.jobId} stopped after ${(wall / 1000).toFixed(1)} s\n${renderStreamProgress(result)}\n`,
    );
  } finally {
    process.removeListener("SIGINT", interrupt);
    process.removeListener("SIGTERM", interrupt);
    await shim.stop();
    await client.close();
    await worker?.stop();
  }
}

/** Stops the streaming jobs named by pipeline or job id; false when there is none. */
export async function stopStreaming(client: SageClient, name: string, say: (m: string) => void): Promise<boolean> {
  const jobs = await StreamJobHandle.find(client, name);
  for (const job of jobs) {
    await job.stop();
    say(`stop requested for streaming job ${job.jobId} (${job.workflowIds.join(", ")}); waiting for the last batches to commit`);
    const result = await job.result();
    say(`streaming job ${job.jobId} stopped\n${renderStreamProgress(result)}`);
  }
  return jobs.length > 0;
}

/** Progress of the running streaming jobs named by pipeline or job id (null when there is none). */
export async function streamingStatus(
  client: SageClient,
  name: string,
): Promise<Array<{ jobId: string; workflowIds: string[]; progress: StreamJobProgress }> | null> {
  const jobs = await StreamJobHandle.find(client, name);
  if (jobs.length === 0) return null;
  return Promise.all(jobs.map(async (j) => ({ jobId: j.jobId, workflowIds: j.workflowIds, progress: await j.progress() })));
}
